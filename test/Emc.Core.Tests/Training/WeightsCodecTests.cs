using System.Buffers.Binary;
using Emc.Core.Training;

namespace Emc.Core.Tests.Training;

public class WeightsCodecTests
{
    [Fact]
    public void Decode_RoundTrip_IsBitExact()
    {
        var values = TestVectors.Gaussian(new Random(11), 1001);
        values[0] = -0f;
        values[1] = float.Epsilon;

        var encoded = WeightsCodec.Encode(values);
        var decoded = WeightsCodec.Decode(encoded, 1001, requireFinite: true);

        Assert.Equal(WeightsCodec.EncodedSize(1001), encoded.Length);
        Assert.Equal(16 + (4 * 1001), encoded.Length);
        Assert.Equal("EMCW"u8.ToArray(), encoded.Take(4));
        Assert.Equal(values.Select(BitConverter.SingleToInt32Bits), decoded.Select(BitConverter.SingleToInt32Bits));
    }

    [Fact]
    public void Decode_EmptyWithRequireFinite_RoundTripsToEmpty()
    {
        Assert.Empty(WeightsCodec.Decode(WeightsCodec.Encode([]), 0, requireFinite: true));
    }

    [Fact]
    public void Decode_NoExpectedCount_TakesTheCountFromTheHeader()
    {
        Assert.Equal([1f, 2f, 3f], WeightsCodec.Decode(WeightsCodec.Encode([1f, 2f, 3f])));
    }

    [Fact]
    public void Decode_NaNWithRequireFinite_ThrowsNamingTheValue()
    {
        var encoded = WeightsCodec.Encode([1f, 2f, float.NaN]);

        Assert.True(float.IsNaN(WeightsCodec.Decode(encoded)[2]));
        var error = Assert.Throws<InvalidDataException>(() => WeightsCodec.Decode(encoded, requireFinite: true));
        Assert.Contains("Value 2", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void EnsureFinite_Infinity_Throws()
    {
        WeightsCodec.EnsureFinite([1f, 2f]);
        Assert.Throws<InvalidDataException>(() => WeightsCodec.EnsureFinite([float.NegativeInfinity]));
    }

    [Theory]
    [InlineData("magic", "magic")]
    [InlineData("version", "version 3")]
    [InlineData("reserved", "reserved")]
    [InlineData("count", "holds 8 values but 9 are expected")]
    [InlineData("negative count", "not a valid array length")]
    [InlineData("short header", "truncated")]
    [InlineData("truncated", "truncated")]
    [InlineData("trailing", "trailing")]
    [InlineData("an update", "magic")]
    public void Decode_CorruptBlob_ThrowsInvalidDataException(string corruption, string message)
    {
        var data = WeightsCodec.Encode(new float[8]);
        long? expectedCount = 8;
        switch (corruption)
        {
            case "magic":
                data[3] = (byte)'U';
                break;
            case "version":
                data[4] = 3;
                break;
            case "reserved":
                data[6] = 1;
                break;
            case "count":
                expectedCount = 9;
                break;
            case "negative count":
                BinaryPrimitives.WriteInt64LittleEndian(data.AsSpan(8), -1);
                expectedCount = null;
                break;
            case "short header":
                data = data[..15];
                break;
            case "truncated":
                data = data[..^1];
                break;
            case "trailing":
                data = [.. data, 0];
                break;
            case "an update":
                data = UpdateCodec.Encode(new float[8], UpdatePrecision.Fp32);
                break;
            default:
                throw new ArgumentOutOfRangeException(nameof(corruption));
        }

        var error = Assert.Throws<InvalidDataException>(() => WeightsCodec.Decode(data, expectedCount));
        Assert.Contains(message, error.Message, StringComparison.Ordinal);
        if (expectedCount is { } count)
        {
            var destination = new float[count];
            var streamError = Assert.Throws<InvalidDataException>(() => WeightsCodec.Read(new MemoryStream(data), destination));
            Assert.Contains(message, streamError.Message, StringComparison.Ordinal);
        }
    }

    [Fact]
    public void Read_FromStream_FillsTheDestinationBitForBit()
    {
        var values = Enumerable.Range(0, 1000).Select(i => MathF.Sin(i) * 1e-3f).Append(float.Epsilon).Append(-0f).ToArray();
        var destination = new float[values.Length];

        WeightsCodec.Read(new MemoryStream(WeightsCodec.Encode(values)), destination);

        Assert.Equal(values.Select(BitConverter.SingleToInt32Bits), destination.Select(BitConverter.SingleToInt32Bits));
    }
}
