using Emc.Core.Hardware;

namespace Emc.Core.Tests.Hardware;

public sealed class HardwareValidatorTests
{
    private const long GiB = 1L << 30;

    // Each case changes one thing in a valid claim and names a phrase the reason must contain.
    private static readonly Dictionary<string, (Func<Claim, Claim> Change, string Reason)> MalformedCases = new()
    {
        ["empty name"] = (c => c with { Name = "" }, "name must be 1-64 printable characters"),
        ["blank name"] = (c => c with { Name = "   " }, "name must be 1-64 printable characters"),
        ["name too long"] = (c => c with { Name = new string('n', 65) }, "name must be 1-64 printable characters"),
        ["newline in name"] = (c => c with { Name = "node\n1" }, "name must be 1-64 printable characters"),
        ["escape in name"] = (c => c with { Name = "node\u001b[31m" }, "name must be 1-64 printable characters"),
        ["control in hostname"] = (c => c.WithHardware(h => h with { Hostname = "host\u0007" }), "hostname must be at most 256 printable characters"),
        ["control in operating system"] = (c => c.WithHardware(h => h with { OperatingSystem = "Linux\r\nInjected" }), "operating system must be"),
        ["control in cpu model"] = (c => c.WithHardware(h => h with { CpuModel = "Xeon\0" }), "cpu model must be"),
        ["hostname too long"] = (c => c.WithHardware(h => h with { Hostname = new string('h', 257) }), "hostname must be"),
        ["zero cores"] = (c => c.WithHardware(h => h with { LogicalCores = 0 }), "logical cores must be between 1 and 4096, not 0"),
        ["negative cores"] = (c => c.WithHardware(h => h with { LogicalCores = -4 }), "logical cores must be between 1 and 4096, not -4"),
        ["too many cores"] = (c => c.WithHardware(h => h with { LogicalCores = 4097 }), "logical cores must be between 1 and 4096"),
        ["negative memory"] = (c => c.WithHardware(h => h with { MemoryBytes = -1 }), "memory must be between 64 MiB and 64 TiB"),
        ["too little memory"] = (c => c.WithHardware(h => h with { MemoryBytes = (64L << 20) - 1 }), "memory must be between 64 MiB and 64 TiB"),
        ["too much memory"] = (c => c.WithHardware(h => h with { MemoryBytes = (64L << 40) + 1 }), "memory must be between 64 MiB and 64 TiB"),
        ["negative disk"] = (c => c.WithHardware(h => h with { DiskBytes = -1, DiskFreeBytes = 0 }), "disk size and free space"),
        ["negative free disk"] = (c => c.WithHardware(h => h with { DiskFreeBytes = -1 }), "disk size and free space"),
        ["free disk above disk"] = (c => c.WithHardware(h => h with { DiskFreeBytes = h.DiskBytes + 1 }), "free space no more than the size"),
        ["too many gpus"] = (c => c.WithHardware(h => h with { Gpus = Enumerable.Range(0, 65).Select(i => Gpu(i)).ToList() }), "at most 64 GPUs per node"),
        ["duplicate gpu index"] = (c => c.WithHardware(h => h with { Gpus = [Gpu(0), Gpu(0)] }), "GPU index 0 is negative or repeated"),
        ["negative gpu index"] = (c => c.WithHardware(h => h with { Gpus = [Gpu(-1), Gpu(1)] }), "GPU index -1 is negative or repeated"),
        ["negative gpu memory"] = (c => c.WithHardware(h => h with { Gpus = [Gpu(0) with { MemoryBytes = -1 }, Gpu(1)] }), "GPU 0 memory must be between 0 and 4 TiB"),
        ["gpu without name"] = (c => c.WithHardware(h => h with { Gpus = [Gpu(0), Gpu(1) with { Name = "" }] }), "GPU 1 needs a name"),
        ["gpu uuid too long"] = (c => c.WithHardware(h => h with { Gpus = [Gpu(0), Gpu(1) with { Uuid = new string('u', 257) }] }), "GPU 1 needs a name, and its text fields"),
        ["cuda available without devices"] = (c => c.WithHardware(h => h with { CudaDeviceCount = 0 }), "agree with CUDA availability"),
        ["cuda devices without availability"] = (c => c.WithHardware(h => h with { CudaAvailable = false }), "agree with CUDA availability"),
        ["negative cuda count"] = (c => c.WithHardware(h => h with { CudaAvailable = false, CudaDeviceCount = -1 }), "CUDA device count must be 0-64"),
        ["no devices offered"] = (c => c with { Devices = [], Benchmark = new BenchmarkReport { LinkRttMs = 1, LinkDownloadMbps = 1, LinkUploadMbps = 1 } }, "between 1 and 65 devices"),
        ["unknown device"] = (c => c.OfferAlso("tpu:0"), "device 'tpu:0' is not cpu or cuda:N"),
        ["cuda offered but none reported"] = (c => c.WithHardware(h => h with { Gpus = [], CudaAvailable = false, CudaDeviceCount = 0 }), "device 'cuda:0' is offered but the node reports 0 CUDA devices"),
        ["cuda index beyond count"] = (c => c.OfferAlso("cuda:2"), "device 'cuda:2' is offered but the node reports 2 CUDA devices"),
        ["device repeated"] = (c => c.OfferAlso("cpu"), "devices are repeated"),
        ["device in a second spelling"] = (c => c.OfferAlso("cuda"), "device 'cuda' must be written as 'cuda:0'"),
        ["device with a leading zero"] = (c => c.OfferAlso("cuda:01"), "device 'cuda:01' must be written as 'cuda:1'"),
        ["control characters in gpu name"] = (c => c.WithHardware(h => h with { Gpus = [Gpu(0) with { Name = "RTX\u001b[2J" }, Gpu(1)] }), "GPU 0 needs a name, and its text fields at most 256 printable characters"),
        ["nul in gpu uuid"] = (c => c.WithHardware(h => h with { Gpus = [Gpu(0), Gpu(1) with { Uuid = "GPU-\0" }] }), "GPU 1 needs a name, and its text fields at most 256 printable characters"),
        ["device without benchmark"] = (c => c with { Benchmark = c.Benchmark with { Devices = c.Benchmark.Devices.Where(d => d.Device != "cuda:1").ToList() } }, "no benchmark for device 'cuda:1'"),
        ["benchmark for device not offered"] = (c => c with { Devices = ["cpu", "cuda:0"] }, "benchmarks are given for devices the node does not offer"),
        ["nan matmul"] = (c => c.WithBench("cuda:0", b => b with { MatmulGflops = double.NaN }), "benchmark of 'cuda:0' must be positive and finite"),
        ["infinite matmul"] = (c => c.WithBench("cpu", b => b with { MatmulGflops = double.PositiveInfinity }), "benchmark of 'cpu' must be positive and finite"),
        ["negative matmul"] = (c => c.WithBench("cpu", b => b with { MatmulGflops = -5 }), "benchmark of 'cpu' must be positive and finite"),
        ["zero matmul"] = (c => c.WithBench("cpu", b => b with { MatmulGflops = 0 }), "benchmark of 'cpu' must be positive and finite"),
        ["implausible matmul"] = (c => c.WithBench("cuda:1", b => b with { MatmulGflops = 2e7 }), "benchmark of 'cuda:1' must be positive and finite"),
        ["nan bandwidth"] = (c => c.WithBench("cpu", b => b with { MemoryBandwidthGBps = double.NaN }), "benchmark of 'cpu' must be positive and finite"),
        ["negative bandwidth"] = (c => c.WithBench("cuda:1", b => b with { MemoryBandwidthGBps = -1 }), "benchmark of 'cuda:1' must be positive and finite"),
        ["infinite bandwidth"] = (c => c.WithBench("cpu", b => b with { MemoryBandwidthGBps = double.NegativeInfinity }), "benchmark of 'cpu' must be positive and finite"),
        ["nan round trip"] = (c => c.WithLink(l => l with { LinkRttMs = double.NaN }), "link figures must be finite"),
        ["negative round trip"] = (c => c.WithLink(l => l with { LinkRttMs = -0.5 }), "link figures must be finite"),
        ["round trip over a minute"] = (c => c.WithLink(l => l with { LinkRttMs = 60_001 }), "link figures must be finite"),
        ["infinite download"] = (c => c.WithLink(l => l with { LinkDownloadMbps = double.PositiveInfinity }), "link figures must be finite"),
        ["zero upload"] = (c => c.WithLink(l => l with { LinkUploadMbps = 0 }), "link figures must be finite"),
    };

    public static TheoryData<string> MalformedCaseNames => new(MalformedCases.Keys);

    [Fact]
    public void Validate_PlausibleGpuNode_ReturnsNull()
    {
        var claim = ValidClaim();

        Assert.Null(Validate(claim));
    }

    [Fact]
    public void Validate_CpuOnlyNodeWithNoDisk_ReturnsNull()
    {
        var claim = ValidClaim();
        claim = claim with
        {
            Hardware = claim.Hardware with { Gpus = [], CudaAvailable = false, CudaDeviceCount = 0, DiskBytes = 0, DiskFreeBytes = 0 },
            Devices = ["cpu"],
            Benchmark = claim.Benchmark with { Devices = [Bench("cpu")] },
        };

        Assert.Null(Validate(claim));
    }

    [Fact]
    public void Validate_LimitsExactly_ReturnsNull()
    {
        var claim = ValidClaim();
        claim = claim with
        {
            Name = new string('n', 64),
            Hardware = claim.Hardware with
            {
                Hostname = new string('h', HardwareValidator.MaxTextLength),
                LogicalCores = 4096,
                MemoryBytes = 64L << 20,
                DiskFreeBytes = claim.Hardware.DiskBytes,
                Gpus = Enumerable.Range(0, HardwareValidator.MaxGpus).Select(i => Gpu(i)).ToList(),
            },
            Benchmark = claim.Benchmark with { LinkRttMs = 60_000 },
        };

        Assert.Null(Validate(claim));
    }

    [Theory]
    [MemberData(nameof(MalformedCaseNames))]
    public void Validate_MalformedClaim_ReturnsReason(string caseName)
    {
        var (change, reason) = MalformedCases[caseName];
        var claim = change(ValidClaim());

        var error = Validate(claim);

        Assert.NotNull(error);
        Assert.Contains(reason, error, StringComparison.Ordinal);
    }

    private static string? Validate(Claim claim) =>
        HardwareValidator.Validate(claim.Name, claim.Hardware, claim.Benchmark, claim.Devices);

    private static Claim ValidClaim()
    {
        string[] devices = ["cpu", "cuda:0", "cuda:1"];
        return new Claim(
            "lab-node-1",
            new HardwareProfile
            {
                Hostname = "lab-node-1.local",
                OperatingSystem = "Ubuntu 24.04.1 LTS",
                CpuModel = "AMD Ryzen 9 7950X 16-Core Processor",
                LogicalCores = 32,
                MemoryBytes = 64 * GiB,
                DiskBytes = 2000 * GiB,
                DiskFreeBytes = 1500 * GiB,
                Gpus = [Gpu(0), Gpu(1)],
                CudaAvailable = true,
                CudaDeviceCount = 2,
            },
            new BenchmarkReport
            {
                Devices = devices.Select(Bench).ToList(),
                LinkRttMs = 12.5,
                LinkDownloadMbps = 940,
                LinkUploadMbps = 410,
            },
            devices);
    }

    private static GpuInfo Gpu(int index) => new()
    {
        Index = index,
        Name = "NVIDIA GeForce RTX 3090",
        MemoryBytes = 24 * GiB,
        DriverVersion = "535.129.03",
        CudaVersion = "12.2",
        Uuid = $"GPU-5a7c0e1b-3d2f-4c6a-9e8b-0000000000{index:00}",
    };

    private static DeviceBenchmark Bench(string device) => new()
    {
        Device = device,
        MatmulGflops = device == "cpu" ? 850 : 32_000,
        MemoryBandwidthGBps = device == "cpu" ? 60 : 850,
    };

    private sealed record Claim(string Name, HardwareProfile Hardware, BenchmarkReport Benchmark, IReadOnlyList<string> Devices)
    {
        public Claim WithHardware(Func<HardwareProfile, HardwareProfile> change) => this with { Hardware = change(Hardware) };

        public Claim WithLink(Func<BenchmarkReport, BenchmarkReport> change) => this with { Benchmark = change(Benchmark) };

        public Claim WithBench(string device, Func<DeviceBenchmark, DeviceBenchmark> change) =>
            this with { Benchmark = Benchmark with { Devices = Benchmark.Devices.Select(d => d.Device == device ? change(d) : d).ToList() } };

        // Offers a device and benchmarks it, so the check under test is the one about the device itself.
        public Claim OfferAlso(string device) =>
            this with { Devices = [.. Devices, device], Benchmark = Benchmark with { Devices = [.. Benchmark.Devices, Bench(device)] } };
    }
}
