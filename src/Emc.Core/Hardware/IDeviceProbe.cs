namespace Emc.Core.Hardware;

/// <summary>
/// The compute runtime as the node agent sees it: whether CUDA is there and how fast each device is.
/// Implemented over TorchSharp by the CLI so that the agent itself does not carry libtorch.
/// </summary>
public interface IDeviceProbe
{
    /// <summary>Number of CUDA devices the runtime can use (0 when none).</summary>
    int CudaDeviceCount { get; }

    /// <summary>Runs the admission benchmark on one device.</summary>
    DeviceBenchmark Benchmark(string device, CancellationToken cancellationToken);
}
