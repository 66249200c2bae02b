using Emc.Core.Hardware;
using Proto = Emc.Contracts.Node.V1;

namespace Emc.Coordinator.Gateway;

/// <summary>Maps wire messages to domain records.</summary>
internal static class ProtoMapping
{
    public static HardwareProfile ToDomain(this Proto.HardwareProfile? hardware) => hardware is null
        ? new HardwareProfile()
        : new HardwareProfile
        {
            Hostname = hardware.Hostname,
            OperatingSystem = hardware.OperatingSystem,
            CpuModel = hardware.CpuModel,
            LogicalCores = hardware.LogicalCores,
            MemoryBytes = hardware.MemoryBytes,
            DiskBytes = hardware.DiskBytes,
            DiskFreeBytes = hardware.DiskFreeBytes,
            CudaAvailable = hardware.CudaAvailable,
            CudaDeviceCount = hardware.CudaDeviceCount,
            Gpus = hardware.Gpus.Select(g => new GpuInfo
            {
                Index = g.Index,
                Name = g.Name,
                MemoryBytes = g.MemoryBytes,
                DriverVersion = g.DriverVersion,
                CudaVersion = g.CudaVersion,
                Uuid = g.Uuid,
            }).ToList(),
        };

    public static BenchmarkReport ToDomain(this Proto.BenchmarkReport? benchmark) => benchmark is null
        ? new BenchmarkReport()
        : new BenchmarkReport
        {
            LinkRttMs = benchmark.LinkRttMs,
            LinkDownloadMbps = benchmark.LinkDownloadMbps,
            LinkUploadMbps = benchmark.LinkUploadMbps,
            Devices = benchmark.Devices.Select(d => new DeviceBenchmark
            {
                Device = d.Device,
                MatmulGflops = d.MatmulGflops,
                MemoryBandwidthGBps = d.MemoryBandwidthGbps,
            }).ToList(),
        };
}
