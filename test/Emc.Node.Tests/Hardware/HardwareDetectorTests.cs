using Emc.Core.Hardware;
using Emc.Node.Hardware;

namespace Emc.Node.Tests.Hardware;

public sealed class HardwareDetectorTests : IDisposable
{
    private const string X86CpuInfo = """
        processor	: 0
        vendor_id	: AuthenticAMD
        cpu family	: 25
        model		: 97
        model name	: AMD Ryzen 9 7950X 16-Core Processor
        stepping	: 2
        microcode	: 0xa601203
        cpu MHz		: 4500.000
        cache size	: 1024 KB
        flags		: fpu vme de pse tsc msr pae mce cx8 apic sep mtrr
        bogomips	: 8982.57

        processor	: 1
        vendor_id	: AuthenticAMD
        cpu family	: 25
        model		: 97
        model name	: Some Other Name That Must Not Win
        stepping	: 2

        """;

    // A Raspberry Pi 4 on a 64-bit kernel: no "model name", the board in "Model".
    private const string ArmCpuInfo = """
        processor	: 0
        BogoMIPS	: 108.00
        Features	: fp asimd evtstrm crc32 cpuid
        CPU implementer	: 0x41
        CPU architecture: 8
        CPU variant	: 0x0
        CPU part	: 0xd08
        CPU revision	: 3

        Revision	: c03114
        Serial		: 10000000abcdef01
        Model		: Raspberry Pi 4 Model B Rev 1.4
        """;

    private const string MemInfo = """
        MemTotal:       65536000 kB
        MemFree:        12345678 kB
        MemAvailable:   40000000 kB
        Buffers:          123456 kB
        Cached:         20000000 kB
        SwapTotal:       8388604 kB
        """;

    private const string NvidiaSmiCsv =
        "0, NVIDIA GeForce RTX 3090, 24576, 535.129.03, GPU-4f1c2a9e-1b7d-4e0a-8c3f-2d5e6a7b8c90\n"
        + "1, NVIDIA A100-SXM4-80GB, 81920, 535.129.03, GPU-0a1b2c3d-4e5f-6071-8293-a4b5c6d7e8f9\n";

    private const string NvidiaSmiBanner = """
        Tue Jun  4 10:21:07 2024
        +---------------------------------------------------------------------------------------+
        | NVIDIA-SMI 535.129.03             Driver Version: 535.129.03   CUDA Version: 12.2     |
        |-----------------------------------------+----------------------+----------------------+
        | GPU  Name                 Persistence-M | Bus-Id        Disp.A | Volatile Uncorr. ECC |
        |   0  NVIDIA GeForce RTX 3090        Off | 00000000:01:00.0  On |                  N/A |
        +-----------------------------------------+----------------------+----------------------+
        """;

    private readonly string _folder = Directory.CreateTempSubdirectory("emc-detect-").FullName;

    public void Dispose() => Directory.Delete(_folder, recursive: true);

    [Fact]
    public void ParseCpuModel_X86CpuInfo_GivesFirstModelName()
    {
        Assert.Equal("AMD Ryzen 9 7950X 16-Core Processor", HardwareDetector.ParseCpuModel(X86CpuInfo));
    }

    [Fact]
    public void ParseCpuModel_ArmCpuInfo_GivesBoardModel()
    {
        Assert.Equal("Raspberry Pi 4 Model B Rev 1.4", HardwareDetector.ParseCpuModel(ArmCpuInfo));
    }

    [Fact]
    public void ParseCpuModel_CrLfLineEnds_TrimsThem()
    {
        Assert.Equal("Intel(R) Xeon(R) Gold 6338 CPU @ 2.00GHz", HardwareDetector.ParseCpuModel("processor : 0\r\nmodel name : Intel(R) Xeon(R) Gold 6338 CPU @ 2.00GHz\r\n"));
    }

    [Theory]
    [InlineData("")]
    [InlineData("processor\t: 0\nvendor_id\t: GenuineIntel\n")]
    [InlineData(": model name\nmodel name without colon\n")]
    public void ParseCpuModel_NoModelLine_GivesUnknown(string cpuinfo)
    {
        Assert.Equal("unknown", HardwareDetector.ParseCpuModel(cpuinfo));
    }

    [Fact]
    public void ParseMemTotal_RealMemInfo_GivesBytes()
    {
        Assert.Equal(65536000L * 1024, HardwareDetector.ParseMemTotal(MemInfo));
    }

    [Theory]
    [InlineData("")]
    [InlineData("MemFree:        12345678 kB\n")]
    [InlineData("MemTotal:\n")]
    [InlineData("MemTotal:       lots kB\n")]
    [InlineData("MemTotal:       -5 kB\n")]
    [InlineData(" MemTotal:      1024 kB\n")]
    public void ParseMemTotal_MissingOrMalformed_GivesZero(string meminfo)
    {
        Assert.Equal(0, HardwareDetector.ParseMemTotal(meminfo));
    }

    [Fact]
    public void ParseMemTotal_MalformedLineThenGoodOne_UsesGoodOne()
    {
        Assert.Equal(2048L * 1024, HardwareDetector.ParseMemTotal("MemTotal: ?? kB\nMemTotal: 2048 kB\n"));
    }

    [Fact]
    public void ParseNvidiaSmiCsv_TwoGpus_GivesBoth()
    {
        var gpus = HardwareDetector.ParseNvidiaSmiCsv(NvidiaSmiCsv);

        Assert.Equal(2, gpus.Count);
        Assert.Equal(
            new GpuInfo { Index = 0, Name = "NVIDIA GeForce RTX 3090", MemoryBytes = 24576L << 20, DriverVersion = "535.129.03", Uuid = "GPU-4f1c2a9e-1b7d-4e0a-8c3f-2d5e6a7b8c90" },
            gpus[0]);
        Assert.Equal(
            new GpuInfo { Index = 1, Name = "NVIDIA A100-SXM4-80GB", MemoryBytes = 81920L << 20, DriverVersion = "535.129.03", Uuid = "GPU-0a1b2c3d-4e5f-6071-8293-a4b5c6d7e8f9" },
            gpus[1]);
    }

    [Fact]
    public void ParseNvidiaSmiCsv_MalformedLines_AreSkipped()
    {
        var csv = string.Join(
            "\r\n",
            "",
            "No devices were found",
            "0, NVIDIA GeForce RTX 3090, 24576, 535.129.03, GPU-aaaa",
            "1, NVIDIA GeForce RTX 3090, [N/A], 535.129.03, GPU-bbbb",
            "x, NVIDIA GeForce RTX 3090, 24576, 535.129.03, GPU-cccc",
            "-1, NVIDIA GeForce RTX 3090, 24576, 535.129.03, GPU-dddd",
            "2, NVIDIA GeForce RTX 3090, 24576",
            "3, NVIDIA GeForce RTX 3090, -24576, 535.129.03, GPU-eeee",
            "   ",
            "4, Tesla T4, 15360, 535.129.03, GPU-ffff",
            "");

        var gpus = HardwareDetector.ParseNvidiaSmiCsv(csv);

        Assert.Equal([0, 4], gpus.Select(g => g.Index));
        Assert.Equal(["GPU-aaaa", "GPU-ffff"], gpus.Select(g => g.Uuid));
        Assert.Equal(15360L << 20, gpus[1].MemoryBytes);
    }

    [Fact]
    public void ParseNvidiaSmiCsv_Empty_GivesNoGpus()
    {
        Assert.Empty(HardwareDetector.ParseNvidiaSmiCsv(""));
    }

    [Fact]
    public void ParseCudaVersion_Banner_GivesVersion()
    {
        Assert.Equal("12.2", HardwareDetector.ParseCudaVersion(NvidiaSmiBanner));
    }

    [Theory]
    [InlineData("CUDA Version: 12.4", "12.4")]
    [InlineData("CUDA Version:11.8|", "11.8")]
    [InlineData("| CUDA Version: N/A      |", "")]
    [InlineData("Driver Version: 535.129.03", "")]
    [InlineData("", "")]
    public void ParseCudaVersion_Variants_GivesVersionOrEmpty(string banner, string expected)
    {
        Assert.Equal(expected, HardwareDetector.ParseCudaVersion(banner));
    }

    [Fact]
    public void Detect_ThisMachine_ReportsCoresMemoryAndDisk()
    {
        var profile = HardwareDetector.Detect(_folder, cudaDeviceCount: 0);

        Assert.True(profile.LogicalCores >= 1, $"{profile.LogicalCores} cores");
        Assert.True(profile.MemoryBytes > 0, $"{profile.MemoryBytes} bytes of memory");
        Assert.True(profile.DiskBytes > 0, $"{profile.DiskBytes} bytes of disk");
        Assert.InRange(profile.DiskFreeBytes, 0, profile.DiskBytes);
        Assert.False(string.IsNullOrWhiteSpace(profile.CpuModel));
        Assert.False(profile.CudaAvailable);
        Assert.Equal(0, profile.CudaDeviceCount);
    }

    [Fact]
    public void Detect_ThisMachine_PassesTheCoordinatorsValidation()
    {
        // What a real machine reports must never be turned away as implausible.
        var profile = HardwareDetector.Detect(_folder, cudaDeviceCount: 0);
        var benchmark = new BenchmarkReport
        {
            Devices = [new DeviceBenchmark { Device = "cpu", MatmulGflops = 10, MemoryBandwidthGBps = 5 }],
            LinkRttMs = 1,
            LinkDownloadMbps = 100,
            LinkUploadMbps = 100,
        };

        Assert.Null(HardwareValidator.Validate("this-machine", profile, benchmark, ["cpu"]));
    }

    [Fact]
    public void Detect_WithCudaDevices_ReportsCudaAvailable()
    {
        var profile = HardwareDetector.Detect(_folder, cudaDeviceCount: 2);

        Assert.True(profile.CudaAvailable);
        Assert.Equal(2, profile.CudaDeviceCount);
    }
}
