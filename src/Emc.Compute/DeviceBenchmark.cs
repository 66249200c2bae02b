using System.Diagnostics;
using TorchSharp;
using static TorchSharp.torch;

namespace Emc.Compute;

/// <summary>
/// A short admission benchmark: dense fp32 matrix multiplication throughput and memory copy
/// bandwidth of one device, selected by device string so the same code measures CPUs and GPUs.
/// </summary>
public static class DeviceBenchmark
{
    private const double BytesPerGigabyte = 1e9;

    // Bounds the operations per sample so that a tiny MatrixSize on a fast GPU cannot queue an
    // unbounded number of kernels before the sample's synchronisation.
    private const int MaxOperationsPerSample = 100_000;

    /// <summary>
    /// Measures <paramref name="device"/>. Each figure is the best of
    /// <see cref="DeviceBenchmarkOptions.Repetitions"/> timed samples taken after a warm-up;
    /// the best rather than the median because node agents starting together on one machine
    /// disturb each other, and the quietest sample is the closest to what the device can do.
    /// </summary>
    /// <param name="device"><c>cpu</c>, <c>cuda</c> or <c>cuda:N</c>.</param>
    /// <param name="options">Sizes; <see cref="DeviceBenchmarkOptions"/> defaults when null.</param>
    /// <param name="cancellationToken">Checked between samples.</param>
    /// <exception cref="ArgumentException">The device string is malformed or names a CUDA device that is not present.</exception>
    /// <exception cref="ArgumentOutOfRangeException">An option is out of range.</exception>
    /// <exception cref="OperationCanceledException">The token was cancelled.</exception>
    public static DeviceBenchmarkResult Run(
        string device,
        DeviceBenchmarkOptions? options = null,
        CancellationToken cancellationToken = default)
    {
        // Validate everything before touching libtorch, so bad input fails fast and cheaply.
        var target = TorchRuntime.ParseDevice(device);
        var name = TorchRuntime.NormalizeDevice(device);
        options ??= new DeviceBenchmarkOptions();
        options.Validate();
        cancellationToken.ThrowIfCancellationRequested();

        var elapsed = Stopwatch.StartNew();
        TorchRuntime.EnsureInitialized();
        if (target.type == DeviceType.CUDA)
        {
            var count = TorchRuntime.CudaDeviceCount;
            if (count == 0 || target.index >= count)
            {
                throw new ArgumentException(
                    $"CUDA device '{name}' is not available: libtorch sees {count} CUDA device(s).", nameof(device));
            }
        }

        using var noGrad = torch.no_grad();
        var gflops = MeasureMatmulGflops(target, options, cancellationToken);
        var bandwidth = MeasureCopyBandwidth(target, options, cancellationToken);
        return new DeviceBenchmarkResult(name, gflops, bandwidth, elapsed.Elapsed);
    }

    private static double MeasureMatmulGflops(Device device, DeviceBenchmarkOptions options, CancellationToken cancellationToken)
    {
        var n = options.MatrixSize;
        using var a = torch.rand(n, n, ScalarType.Float32, device);
        using var b = torch.rand(n, n, ScalarType.Float32, device);
        using var c = torch.empty(n, n, ScalarType.Float32, device);

        // addmm_ with beta 0 is a plain product written into c: one GEMM per operation and no
        // allocation, so allocator and page-fault costs stay out of the timing.
        var secondsPerProduct = BestSecondsPerOperation(device, () => c.addmm_(a, b, beta: 0f, alpha: 1f), options, cancellationToken);
        return 2.0 * n * n * (double)n / secondsPerProduct / 1e9;
    }

    private static double MeasureCopyBandwidth(Device device, DeviceBenchmarkOptions options, CancellationToken cancellationToken)
    {
        var bytes = (long)options.TensorSizeMiB * 1024 * 1024;
        var elements = bytes / sizeof(float);
        using var source = torch.ones(elements, ScalarType.Float32, device);
        using var destination = torch.empty(elements, ScalarType.Float32, device);

        // The warm-up copy also touches every destination page, so first-touch faults are not timed.
        var secondsPerCopy = BestSecondsPerOperation(device, () => destination.copy_(source), options, cancellationToken);
        return 2.0 * bytes / secondsPerCopy / BytesPerGigabyte;
    }

    private static double BestSecondsPerOperation(
        Device device,
        Func<Tensor> operation,
        DeviceBenchmarkOptions options,
        CancellationToken cancellationToken)
    {
        // The first call pays one-off costs (thread pool start, BLAS or cuBLAS set-up, page faults).
        TimeBatch(device, operation, 1);
        cancellationToken.ThrowIfCancellationRequested();

        var single = TimeBatch(device, operation, 1);
        var perSample = single >= options.MinSampleTime.TotalSeconds
            ? 1
            : (int)Math.Clamp(Math.Ceiling(options.MinSampleTime.TotalSeconds / Math.Max(single, 1e-9)), 1, MaxOperationsPerSample);

        var best = double.PositiveInfinity;
        for (var i = 0; i < options.Repetitions; i++)
        {
            cancellationToken.ThrowIfCancellationRequested();
            best = Math.Min(best, TimeBatch(device, operation, perSample) / perSample);
        }

        return best;
    }

    /// <summary>Runs <paramref name="count"/> operations as one step and returns its wall time in seconds.</summary>
    private static double TimeBatch(Device device, Func<Tensor> operation, int count)
    {
        using var scope = torch.NewDisposeScope();
        Synchronize(device);
        var stopwatch = Stopwatch.StartNew();
        for (var i = 0; i < count; i++)
        {
            operation();
        }

        // CUDA kernels run asynchronously; without this the clock would measure only the launches.
        Synchronize(device);
        return stopwatch.Elapsed.TotalSeconds;
    }

    private static void Synchronize(Device device)
    {
        if (device.type == DeviceType.CUDA)
        {
            torch.cuda.synchronize(device);
        }
    }
}
