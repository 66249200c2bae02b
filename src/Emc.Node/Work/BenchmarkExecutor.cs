using System.Text.Json;
using Emc.Core;
using Emc.Core.Hardware;

namespace Emc.Node.Work;

/// <summary>
/// <c>benchmark</c>: runs the admission benchmark again on the lease's device and returns
/// <c>{"device","matmulGflops","memoryBandwidthGBps"}</c>. The network uses it to spot-check the
/// speed a node claimed when it registered. The input is ignored.
/// </summary>
public sealed class BenchmarkExecutor(IDeviceProbe probe) : ITaskExecutor
{
    /// <summary>The kind name, "benchmark".</summary>
    public const string KindName = "benchmark";

    /// <inheritdoc />
    public string Kind => KindName;

    /// <inheritdoc />
    public async Task<string> RunAsync(TaskContext context, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(context);
        // The probe is synchronous and compute-bound: keep it off the caller's thread.
        var result = await Task.Run(() => probe.Benchmark(context.Device, cancellationToken), cancellationToken);
        return JsonSerializer.Serialize(result, EmcJson.Options);
    }
}
