using System.Text.Json;
using Emc.Node.Work;

namespace Emc.Node.Tests.Work;

public sealed class BenchmarkExecutorTests
{
    [Fact]
    public async Task RunAsync_BenchmarksTheLeasesDevice_AndReturnsCamelCaseJson()
    {
        var probe = new FakeProbe();

        var output = await new BenchmarkExecutor(probe).RunAsync(new TaskContext("t#1", "t", "j", "", "cuda:0"), CancellationToken.None);

        Assert.Equal(["cuda:0"], probe.Benchmarked);
        using var json = JsonDocument.Parse(output);
        var names = json.RootElement.EnumerateObject().Select(p => p.Name).ToList();
        Assert.Equal(["device", "matmulGflops", "memoryBandwidthGBps"], names);
        Assert.Equal("cuda:0", json.RootElement.GetProperty("device").GetString());
        Assert.Equal(12.5, json.RootElement.GetProperty("matmulGflops").GetDouble());
        Assert.Equal(3.25, json.RootElement.GetProperty("memoryBandwidthGBps").GetDouble());
    }

    [Fact]
    public async Task RunAsync_Cancelled_DoesNotBenchmark()
    {
        var probe = new FakeProbe();

        await Assert.ThrowsAnyAsync<OperationCanceledException>(
            () => new BenchmarkExecutor(probe).RunAsync(new TaskContext("t#1", "t", "j", "", "cpu"), new CancellationToken(canceled: true)));

        Assert.Empty(probe.Benchmarked);
    }
}
