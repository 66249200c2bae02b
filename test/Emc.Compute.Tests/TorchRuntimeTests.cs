using Emc.Compute.Native;
using TorchSharp;

namespace Emc.Compute.Tests;

[Collection(TorchCollection.Name)]
public sealed class TorchRuntimeTests(TorchFixture fixture)
{
    [Fact]
    public void EnsureInitialized_OnLinux_LoadsLibTorchSharpWithWeakGlibcxxNeed()
    {
        Assert.True(OperatingSystem.IsLinux(), "These tests run on Linux, where the fix-up applies.");
        var info = fixture.Info;

        Assert.Contains(info.Patch, new[] { TorchNativePatch.PatchedInPlace, TorchNativePatch.AlreadyPatched, TorchNativePatch.PatchedCopy });
        Assert.NotNull(info.NativeLibraryPath);
        Assert.NotNull(info.LoadedFrom);

        // The equivalent of `readelf -V`: the file the process loaded carries VER_FLG_WEAK.
        var needs = ElfVersionNeedPatcher.ReadVersionNeeds(File.ReadAllBytes(info.LoadedFrom));
        Assert.True(Assert.Single(needs, n => n.Version == "GLIBCXX_3.4.32").IsWeak);

        var mapped = File.ReadLines("/proc/self/maps").Where(l => l.EndsWith("/libLibTorchSharp.so", StringComparison.Ordinal)).ToList();
        Assert.NotEmpty(mapped);
        Assert.All(mapped, l => Assert.EndsWith(" " + info.LoadedFrom, l, StringComparison.Ordinal));
    }

    [Fact]
    public void EnsureInitialized_CalledConcurrently_ReturnsTheSameOutcome()
    {
        var results = new TorchRuntimeInfo[8];

        Parallel.For(0, results.Length, i => results[i] = TorchRuntime.EnsureInitialized());

        Assert.All(results, r => Assert.Same(fixture.Info, r));
        Assert.True(fixture.Info.InitializationTime > TimeSpan.Zero);
        Assert.False(string.IsNullOrEmpty(fixture.Info.LibTorchVersion));
    }

    [Fact]
    public void CudaAvailable_CpuOnlyPackage_IsFalseWithZeroDevices()
    {
        // The test project references TorchSharp-cpu only, so libtorch has no CUDA backend.
        Assert.False(TorchRuntime.CudaAvailable);
        Assert.Equal(0, TorchRuntime.CudaDeviceCount);
    }

    [Theory]
    [InlineData("cpu", DeviceType.CPU, -1)]
    [InlineData("CPU", DeviceType.CPU, -1)]
    [InlineData(" cpu ", DeviceType.CPU, -1)]
    [InlineData("cuda", DeviceType.CUDA, -1)]
    [InlineData("cuda:0", DeviceType.CUDA, 0)]
    [InlineData("CUDA:3", DeviceType.CUDA, 3)]
    public void ParseDevice_ValidString_ReturnsDevice(string text, DeviceType type, int index)
    {
        var device = TorchRuntime.ParseDevice(text);

        Assert.Equal(type, device.type);
        Assert.Equal(index, device.index);
    }

    [Theory]
    [InlineData("")]
    [InlineData("   ")]
    [InlineData("gpu")]
    [InlineData("cpu:0")]
    [InlineData("cuda:")]
    [InlineData("cuda:-1")]
    [InlineData("cuda:+1")]
    [InlineData("cuda: 1")]
    [InlineData("cuda:x")]
    [InlineData("cuda:0:1")]
    [InlineData("cuda:99999999999")]
    [InlineData("mps")]
    public void ParseDevice_MalformedString_ThrowsArgumentExceptionNamingTheInput(string text)
    {
        var ex = Assert.Throws<ArgumentException>(() => TorchRuntime.ParseDevice(text));

        Assert.Equal("device", ex.ParamName);
        Assert.Contains($"'{text}'", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void ParseDevice_Null_ThrowsArgumentNullException()
    {
        Assert.Throws<ArgumentNullException>(() => TorchRuntime.ParseDevice(null!));
    }

    [Theory]
    [InlineData(" CPU ", "cpu")]
    [InlineData("Cuda", "cuda")]
    [InlineData("cuda:01", "cuda:1")]
    public void NormalizeDevice_ValidString_ReturnsCanonicalSpelling(string text, string expected)
    {
        Assert.Equal(expected, TorchRuntime.NormalizeDevice(text));
    }
}
