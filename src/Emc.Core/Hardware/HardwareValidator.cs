namespace Emc.Core.Hardware;

/// <summary>
/// Refuses hardware claims that cannot be true. A node is untrusted: what it claims feeds placement
/// and pricing, so nonsense is turned away at the door with the first reason found.
/// </summary>
public static class HardwareValidator
{
    /// <summary>Longest accepted text field.</summary>
    public const int MaxTextLength = 256;

    /// <summary>Most GPUs accepted on one node.</summary>
    public const int MaxGpus = 64;

    private const long TiB = 1L << 40;

    /// <summary>Returns null when the profile and benchmark are plausible, or the reason they are not.</summary>
    public static string? Validate(string name, HardwareProfile hardware, BenchmarkReport benchmark, IReadOnlyList<string> devices)
    {
        if (string.IsNullOrWhiteSpace(name) || name.Length > 64 || name.Any(char.IsControl))
        {
            return "name must be 1-64 printable characters";
        }

        foreach (var (field, value) in new[]
        {
            ("hostname", hardware.Hostname), ("operating system", hardware.OperatingSystem), ("cpu model", hardware.CpuModel),
        })
        {
            if (value.Length > MaxTextLength || value.Any(char.IsControl))
            {
                return $"{field} must be at most {MaxTextLength} printable characters";
            }
        }

        if (hardware.LogicalCores is < 1 or > 4096)
        {
            return $"logical cores must be between 1 and 4096, not {hardware.LogicalCores}";
        }

        if (hardware.MemoryBytes is < 64L << 20 or > 64 * TiB)
        {
            return $"memory must be between 64 MiB and 64 TiB, not {hardware.MemoryBytes} bytes";
        }

        if (hardware.DiskBytes is < 0 or > 1024 * TiB || hardware.DiskFreeBytes < 0 || hardware.DiskFreeBytes > hardware.DiskBytes)
        {
            return "disk size and free space must be non-negative, and free space no more than the size";
        }

        if (hardware.Gpus.Count > MaxGpus)
        {
            return $"at most {MaxGpus} GPUs per node";
        }

        var indexes = new HashSet<int>();
        foreach (var gpu in hardware.Gpus)
        {
            if (gpu.Index < 0 || !indexes.Add(gpu.Index))
            {
                return $"GPU index {gpu.Index} is negative or repeated";
            }

            if (gpu.MemoryBytes is < 0 or > 4 * TiB)
            {
                return $"GPU {gpu.Index} memory must be between 0 and 4 TiB";
            }

            if (gpu.Name.Length == 0 || !IsPrintable(gpu.Name) || !IsPrintable(gpu.DriverVersion)
                || !IsPrintable(gpu.CudaVersion) || !IsPrintable(gpu.Uuid))
            {
                return $"GPU {gpu.Index} needs a name, and its text fields at most {MaxTextLength} printable characters";
            }
        }

        if (hardware.CudaDeviceCount < 0 || hardware.CudaDeviceCount > MaxGpus || (hardware.CudaAvailable != (hardware.CudaDeviceCount > 0)))
        {
            return "CUDA device count must be 0-64 and agree with CUDA availability";
        }

        if (devices.Count == 0 || devices.Count > MaxGpus + 1)
        {
            return "a node offers between 1 and 65 devices";
        }

        foreach (var device in devices)
        {
            if (!DeviceName.TryParse(device, out var kind, out var index))
            {
                return $"device '{device}' is not cpu or cuda:N";
            }

            // One spelling per device, so that "cuda" and "cuda:0" cannot be offered (and paid) twice.
            if (DeviceName.Normalize(device) != device)
            {
                return $"device '{device}' must be written as '{DeviceName.Normalize(device)}'";
            }

            if (kind == DeviceKind.Cuda && index >= hardware.CudaDeviceCount)
            {
                return $"device '{device}' is offered but the node reports {hardware.CudaDeviceCount} CUDA devices";
            }
        }

        if (devices.Distinct(StringComparer.Ordinal).Count() != devices.Count)
        {
            return "devices are repeated";
        }

        return ValidateBenchmark(benchmark, devices);
    }

    private static string? ValidateBenchmark(BenchmarkReport benchmark, IReadOnlyList<string> devices)
    {
        foreach (var device in devices)
        {
            if (!benchmark.Devices.Any(d => d.Device == device))
            {
                return $"no benchmark for device '{device}'";
            }
        }

        if (benchmark.Devices.Count != devices.Count)
        {
            return "benchmarks are given for devices the node does not offer";
        }

        foreach (var result in benchmark.Devices)
        {
            // 10 PFLOP/s fp32 and 100 TB/s are far above any single device today.
            if (!IsInRange(result.MatmulGflops, 1e7) || !IsInRange(result.MemoryBandwidthGBps, 1e5))
            {
                return $"benchmark of '{result.Device}' must be positive and finite (matmul {result.MatmulGflops} GFLOP/s, memory {result.MemoryBandwidthGBps} GB/s)";
            }
        }

        if (!double.IsFinite(benchmark.LinkRttMs) || benchmark.LinkRttMs < 0 || benchmark.LinkRttMs > 60_000
            || !IsInRange(benchmark.LinkDownloadMbps, 1e7) || !IsInRange(benchmark.LinkUploadMbps, 1e7))
        {
            return "link figures must be finite: round trip 0-60000 ms, bandwidths positive";
        }

        return null;
    }

    private static bool IsPrintable(string value) => value.Length <= MaxTextLength && !value.Any(char.IsControl);

    private static bool IsInRange(double value, double max) => double.IsFinite(value) && value > 0 && value <= max;
}
