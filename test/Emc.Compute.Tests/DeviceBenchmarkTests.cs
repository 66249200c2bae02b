namespace Emc.Compute.Tests;

[Collection(TorchCollection.Name)]
public sealed class DeviceBenchmarkTests
{
    [Fact]
    public void Run_CpuWithDefaults_ReturnsPositiveFiniteFigures()
    {
        var result = DeviceBenchmark.Run("cpu");

        Assert.Equal("cpu", result.Device);
        Assert.True(double.IsFinite(result.MatmulGflops) && result.MatmulGflops > 0, $"matmul {result.MatmulGflops} GFLOP/s");
        Assert.True(double.IsFinite(result.MemoryBandwidthGBps) && result.MemoryBandwidthGBps > 0, $"bandwidth {result.MemoryBandwidthGBps} GB/s");
        Assert.True(result.Elapsed > TimeSpan.Zero);
    }

    [Fact]
    public void Run_CpuWithSmallOptions_NormalizesDeviceName()
    {
        var options = new DeviceBenchmarkOptions
        {
            MatrixSize = 64,
            TensorSizeMiB = 1,
            Repetitions = 2,
            MinSampleTime = TimeSpan.FromMilliseconds(5),
        };

        var result = DeviceBenchmark.Run(" CPU ", options);

        Assert.Equal("cpu", result.Device);
        Assert.True(result.MatmulGflops > 0);
        Assert.True(result.MemoryBandwidthGBps > 0);
    }

    [Theory]
    [InlineData("")]
    [InlineData("gpu")]
    [InlineData("cuda:x")]
    [InlineData("cuda:-1")]
    [InlineData("tpu:0")]
    public void Run_MalformedDevice_ThrowsArgumentException(string device)
    {
        var ex = Assert.Throws<ArgumentException>(() => DeviceBenchmark.Run(device));

        Assert.Equal("device", ex.ParamName);
    }

    [Fact]
    public void Run_CudaDeviceThatIsNotPresent_ThrowsArgumentException()
    {
        var ex = Assert.Throws<ArgumentException>(() => DeviceBenchmark.Run("cuda:1000"));

        Assert.Equal("device", ex.ParamName);
        Assert.Contains("not available", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Run_ZeroMatrixSize_ThrowsArgumentOutOfRangeException()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => DeviceBenchmark.Run("cpu", new DeviceBenchmarkOptions { MatrixSize = 0 }));
    }

    [Fact]
    public void Run_CancelledToken_ThrowsOperationCanceledException()
    {
        using var cancellation = new CancellationTokenSource();
        cancellation.Cancel();

        Assert.ThrowsAny<OperationCanceledException>(() => DeviceBenchmark.Run("cpu", cancellationToken: cancellation.Token));
    }
}
