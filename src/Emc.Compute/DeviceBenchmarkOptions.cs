namespace Emc.Compute;

/// <summary>
/// Sizes for <see cref="DeviceBenchmark"/>. The defaults keep one run to roughly 0.5 s per
/// figure (about 1 s in all) on a 2-core CPU, because every node agent runs the benchmark at
/// start-up and several may start at once on one machine.
/// </summary>
public sealed class DeviceBenchmarkOptions
{
    /// <summary>
    /// Side of the square fp32 matrices multiplied. Default 1024 (2.1 GFLOP per product, about
    /// 4 MiB per matrix): large enough to reach BLAS peak on a CPU without long single products.
    /// </summary>
    public int MatrixSize { get; init; } = 1024;

    /// <summary>
    /// Size in MiB of the tensor copied for the bandwidth figure. Default 64: bigger than the
    /// last-level cache of ordinary CPUs, so the copy measures memory rather than cache.
    /// </summary>
    public int TensorSizeMiB { get; init; } = 64;

    /// <summary>Timed samples per figure after warm-up; the best is reported. Default 5.</summary>
    public int Repetitions { get; init; } = 5;

    /// <summary>
    /// Minimum duration of one timed sample. A sample repeats the operation until it lasts
    /// about this long, so fast devices (GPUs finish a 1024 product in well under a
    /// millisecond) are timed over many operations rather than timer noise. Default 80 ms.
    /// </summary>
    public TimeSpan MinSampleTime { get; init; } = TimeSpan.FromMilliseconds(80);

    /// <summary>Throws <see cref="ArgumentOutOfRangeException"/> for a size or count that cannot work.</summary>
    public void Validate()
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(MatrixSize, 1, nameof(MatrixSize));
        ArgumentOutOfRangeException.ThrowIfGreaterThan(MatrixSize, 32_768, nameof(MatrixSize));
        ArgumentOutOfRangeException.ThrowIfLessThan(TensorSizeMiB, 1, nameof(TensorSizeMiB));
        ArgumentOutOfRangeException.ThrowIfGreaterThan(TensorSizeMiB, 16_384, nameof(TensorSizeMiB));
        ArgumentOutOfRangeException.ThrowIfLessThan(Repetitions, 1, nameof(Repetitions));
        ArgumentOutOfRangeException.ThrowIfGreaterThan(Repetitions, 1_000, nameof(Repetitions));
        ArgumentOutOfRangeException.ThrowIfLessThan(MinSampleTime, TimeSpan.Zero, nameof(MinSampleTime));
        ArgumentOutOfRangeException.ThrowIfGreaterThan(MinSampleTime, TimeSpan.FromMinutes(1), nameof(MinSampleTime));
    }
}
