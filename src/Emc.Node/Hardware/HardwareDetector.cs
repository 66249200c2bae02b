using System.Diagnostics;
using System.Globalization;
using Emc.Core.Hardware;

namespace Emc.Node.Hardware;

/// <summary>Reads what this machine has: CPU, memory, disk, and NVIDIA GPUs through nvidia-smi.</summary>
public static class HardwareDetector
{
    /// <summary>Detects the machine. <paramref name="dataDirectory"/> decides which disk is reported.</summary>
    public static HardwareProfile Detect(string dataDirectory, int cudaDeviceCount)
    {
        var (gpus, cudaVersion) = DetectNvidiaGpus();
        var disk = new DriveInfo(Path.GetFullPath(dataDirectory));
        return new HardwareProfile
        {
            Hostname = Environment.MachineName,
            OperatingSystem = System.Runtime.InteropServices.RuntimeInformation.OSDescription,
            CpuModel = ReadCpuModel(),
            LogicalCores = Environment.ProcessorCount,
            MemoryBytes = ReadMemoryBytes(),
            DiskBytes = disk.TotalSize,
            DiskFreeBytes = disk.AvailableFreeSpace,
            Gpus = gpus.Select(g => g with { CudaVersion = cudaVersion }).ToList(),
            CudaAvailable = cudaDeviceCount > 0,
            CudaDeviceCount = cudaDeviceCount,
        };
    }

    /// <summary>The "model name" of the first processor in /proc/cpuinfo text.</summary>
    internal static string ParseCpuModel(string cpuinfo)
    {
        foreach (var line in cpuinfo.Split('\n'))
        {
            var colon = line.IndexOf(':', StringComparison.Ordinal);
            if (colon > 0 && line[..colon].Trim() is "model name" or "Model" or "cpu model")
            {
                return line[(colon + 1)..].Trim();
            }
        }

        return "unknown";
    }

    /// <summary>MemTotal from /proc/meminfo text, in bytes; 0 when absent.</summary>
    internal static long ParseMemTotal(string meminfo)
    {
        foreach (var line in meminfo.Split('\n'))
        {
            if (line.StartsWith("MemTotal:", StringComparison.Ordinal))
            {
                var parts = line["MemTotal:".Length..].Trim().Split(' ', StringSplitOptions.RemoveEmptyEntries);
                if (parts.Length > 0 && long.TryParse(parts[0], NumberStyles.None, CultureInfo.InvariantCulture, out var kib))
                {
                    return kib > long.MaxValue / 1024 ? 0 : kib * 1024;
                }
            }
        }

        return 0;
    }

    /// <summary>
    /// Parses `nvidia-smi --query-gpu=index,name,memory.total,driver_version,uuid --format=csv,noheader,nounits`
    /// (memory in MiB). Lines that do not parse are skipped rather than guessed at.
    /// </summary>
    internal static IReadOnlyList<GpuInfo> ParseNvidiaSmiCsv(string csv)
    {
        var gpus = new List<GpuInfo>();
        foreach (var raw in csv.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            var fields = raw.Split(',', StringSplitOptions.TrimEntries);
            if (fields.Length < 5
                || !int.TryParse(fields[0], NumberStyles.None, CultureInfo.InvariantCulture, out var index)
                || !long.TryParse(fields[2], NumberStyles.None, CultureInfo.InvariantCulture, out var mib))
            {
                continue;
            }

            gpus.Add(new GpuInfo { Index = index, Name = fields[1], MemoryBytes = mib << 20, DriverVersion = fields[3], Uuid = fields[4] });
        }

        return gpus;
    }

    /// <summary>The "CUDA Version: X.Y" from nvidia-smi's banner, or empty.</summary>
    internal static string ParseCudaVersion(string banner)
    {
        const string marker = "CUDA Version:";
        var at = banner.IndexOf(marker, StringComparison.Ordinal);
        if (at < 0)
        {
            return "";
        }

        var rest = banner[(at + marker.Length)..].TrimStart();
        var end = 0;
        while (end < rest.Length && (char.IsAsciiDigit(rest[end]) || rest[end] == '.'))
        {
            end++;
        }

        return rest[..end];
    }

    private static string ReadCpuModel() =>
        File.Exists("/proc/cpuinfo") ? ParseCpuModel(File.ReadAllText("/proc/cpuinfo")) : "unknown";

    private static long ReadMemoryBytes()
    {
        var fromProc = File.Exists("/proc/meminfo") ? ParseMemTotal(File.ReadAllText("/proc/meminfo")) : 0;
        return fromProc > 0 ? fromProc : GC.GetGCMemoryInfo().TotalAvailableMemoryBytes;
    }

    private static (IReadOnlyList<GpuInfo> Gpus, string CudaVersion) DetectNvidiaGpus()
    {
        var csv = Run("nvidia-smi", "--query-gpu=index,name,memory.total,driver_version,uuid --format=csv,noheader,nounits");
        if (csv is null)
        {
            return ([], "");
        }

        return (ParseNvidiaSmiCsv(csv), ParseCudaVersion(Run("nvidia-smi", "") ?? ""));
    }

    private static string? Run(string file, string arguments)
    {
        try
        {
            using var process = Process.Start(new ProcessStartInfo(file, arguments)
            {
                RedirectStandardOutput = true,
                UseShellExecute = false,
            });
            if (process is null)
            {
                return null;
            }

            var output = process.StandardOutput.ReadToEndAsync();
            if (!process.WaitForExit(10_000))
            {
                process.Kill(entireProcessTree: true);
                return null;
            }

            return process.ExitCode == 0 ? output.Result : null;
        }
        catch (System.ComponentModel.Win32Exception)
        {
            // No nvidia-smi on this machine: no NVIDIA GPUs to report.
            return null;
        }
    }
}
