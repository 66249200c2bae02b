namespace Emc.Core.Hardware;

/// <summary>What a node says it has. The coordinator validates it and checks it against the benchmark.</summary>
public sealed record HardwareProfile
{
    public string Hostname { get; init; } = "";
    public string OperatingSystem { get; init; } = "";
    public string CpuModel { get; init; } = "";
    public int LogicalCores { get; init; }
    public long MemoryBytes { get; init; }
    public long DiskBytes { get; init; }
    public long DiskFreeBytes { get; init; }
    public IReadOnlyList<GpuInfo> Gpus { get; init; } = [];
    public bool CudaAvailable { get; init; }
    public int CudaDeviceCount { get; init; }
}

/// <summary>One GPU as nvidia-smi reports it.</summary>
public sealed record GpuInfo
{
    public int Index { get; init; }
    public string Name { get; init; } = "";
    public long MemoryBytes { get; init; }
    public string DriverVersion { get; init; } = "";
    public string CudaVersion { get; init; } = "";
    public string Uuid { get; init; } = "";
}

/// <summary>The admission benchmark: per-device compute and memory speed, and the link to the coordinator.</summary>
public sealed record BenchmarkReport
{
    public IReadOnlyList<DeviceBenchmark> Devices { get; init; } = [];
    public double LinkRttMs { get; init; }
    public double LinkDownloadMbps { get; init; }
    public double LinkUploadMbps { get; init; }
}

/// <summary>Measured speed of one device (a device string such as "cpu" or "cuda:0").</summary>
public sealed record DeviceBenchmark
{
    public string Device { get; init; } = "";
    public double MatmulGflops { get; init; }
    public double MemoryBandwidthGBps { get; init; }
}
