using Emc.Compute;
using Emc.Core.Hardware;

namespace Emc.Cli.Infrastructure;

/// <summary>The node agent's view of the compute runtime, over TorchSharp.</summary>
internal sealed class TorchDeviceProbe : IDeviceProbe
{
    public TorchDeviceProbe() => TorchRuntime.EnsureInitialized();

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
