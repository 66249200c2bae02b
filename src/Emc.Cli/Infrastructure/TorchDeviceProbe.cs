using Emc.Compute;
using Emc.Core.Hardware;

namespace Emc.Cli.Infrastructure;

/// <summary>
/// The node agent's view of the compute runtime, over TorchSharp. Given the node's training threads, the
/// admission benchmark runs with that many libtorch threads, the node's training threads: its torch work,
/// hardware challenges included, gets no more (it is a setting of the whole process), and challenges are
/// held to the benchmark.
/// </summary>
internal sealed class TorchDeviceProbe : IDeviceProbe
{
    public TorchDeviceProbe(int threads = 0)
    {
        TorchRuntime.EnsureInitialized();
        if (threads > 0)
        {
            TorchSharp.torch.set_num_threads(threads);
        }
    }

    public int CudaDeviceCount => TorchRuntime.CudaDeviceCount;

    public Core.Hardware.DeviceBenchmark Benchmark(string device, CancellationToken cancellationToken)
    {
        var result = Compute.DeviceBenchmark.Run(device, options: null, cancellationToken);
        return new Core.Hardware.DeviceBenchmark
        {
            Device = result.Device,
            MatmulGflops = result.MatmulGflops,
            MemoryBandwidthGBps = result.MemoryBandwidthGBps,
        };
    }
}
