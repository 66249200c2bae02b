namespace Emc.Compute;

/// <summary>What <see cref="DeviceBenchmark.Run"/> measured on one device.</summary>
/// <param name="Device">The device, in canonical form (<c>cpu</c>, <c>cuda:0</c>).</param>
/// <param name="MatmulGflops">Dense fp32 square matrix multiplication throughput, in GFLOP/s (2·n³ per product).</param>
/// <param name="MemoryBandwidthGBps">Device memory bandwidth of a tensor copy, in GB/s (10⁹ bytes; bytes read plus bytes written).</param>
/// <param name="Elapsed">Wall time of the whole benchmark, allocation and warm-up included.</param>
public sealed record DeviceBenchmarkResult(
    string Device,
    double MatmulGflops,
    double MemoryBandwidthGBps,
    TimeSpan Elapsed);
