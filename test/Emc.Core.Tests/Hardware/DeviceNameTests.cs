using Emc.Core.Hardware;

namespace Emc.Core.Tests.Hardware;

public sealed class DeviceNameTests
{
    [Theory]
    [InlineData("cpu", DeviceKind.Cpu, 0)]
    [InlineData("cuda", DeviceKind.Cuda, 0)]
    [InlineData("cuda:0", DeviceKind.Cuda, 0)]
    [InlineData("cuda:7", DeviceKind.Cuda, 7)]
    [InlineData("cuda:123", DeviceKind.Cuda, 123)]
    public void TryParse_ValidDevice_GivesKindAndIndex(string text, DeviceKind expectedKind, int expectedIndex)
    {
        Assert.True(DeviceName.TryParse(text, out var kind, out var index));
        Assert.Equal(expectedKind, kind);
        Assert.Equal(expectedIndex, index);
    }

    [Theory]
    [InlineData(null)]
    [InlineData("")]
    [InlineData("CPU")]
    [InlineData(" cpu")]
    [InlineData("cpu:0")]
    [InlineData("gpu")]
    [InlineData("cuda:")]
    [InlineData("cuda:-1")]
    [InlineData("cuda:+1")]
    [InlineData("cuda: 1")]
    [InlineData("cuda:1 ")]
    [InlineData("cuda:x")]
    [InlineData("cuda:1234")]
    [InlineData("cuda:99999999999")]
    [InlineData("cuda:١")]
    public void TryParse_Malformed_ReturnsFalse(string? text)
    {
        Assert.False(DeviceName.TryParse(text, out _, out _));
    }

    [Theory]
    [InlineData("cpu", "cpu")]
    [InlineData("cuda", "cuda:0")]
    [InlineData("cuda:3", "cuda:3")]
    public void Normalize_ValidDevice_GivesCanonicalName(string text, string expected)
    {
        Assert.Equal(expected, DeviceName.Normalize(text));
    }

    [Fact]
    public void Normalize_Malformed_ThrowsArgumentExceptionNamingDevice()
    {
        var ex = Assert.Throws<ArgumentException>(() => DeviceName.Normalize("tpu:0"));

        Assert.Equal("text", ex.ParamName);
        Assert.Contains("'tpu:0'", ex.Message, StringComparison.Ordinal);
    }
}
