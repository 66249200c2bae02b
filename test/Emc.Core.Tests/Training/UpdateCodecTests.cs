using System.Buffers.Binary;
using Emc.Core.Training;

namespace Emc.Core.Tests.Training;

public class UpdateCodecTests
{
    [Fact]
    public void Decode_Int8RoundTrip_EachValueWithinHalfItsBlockScale()
    {
        var random = new Random(7);
        // Blocks of very different magnitudes, and a short last block.
        var values = TestVectors.Gaussian(random, 1000);
        for (var i = 256; i < 512; i++)
        {
            values[i] *= 1e-4f;
        }

        for (var i = 512; i < 768; i++)
        {
            values[i] *= 1e3f;
        }

        var decoded = UpdateCodec.Decode(UpdateCodec.Encode(values, UpdatePrecision.Int8), values.Length);

        Assert.Equal(values.Length, decoded.Length);
        for (var start = 0; start < values.Length; start += 256)
        {
            var block = values.AsSpan(start, Math.Min(256, values.Length - start));
            var scale = block.ToArray().Max(MathF.Abs) / 127f;
            for (var i = 0; i < block.Length; i++)
            {
                var error = Math.Abs(block[i] - decoded[start + i]);
                Assert.True(error <= (scale / 2) + (scale * 1e-5), $"value {start + i}: error {error} above half the scale {scale}");
            }
        }
    }

    [Fact]
    public void Encode_Int8HalfwayValues_RoundsHalfToEven()
    {
        // max |x| = 127 makes the scale exactly 1, so x / scale is x.
        float[] values = [127f, 2.5f, 3.5f, -2.5f, 0.5f, -127f, 126.6f];

        var decoded = UpdateCodec.Decode(UpdateCodec.Encode(values, UpdatePrecision.Int8), values.Length);

        Assert.Equal([127f, 2f, 4f, -2f, 0f, -127f, 127f], decoded);
    }

    [Fact]
    public void Encode_Int8AllZeroBlock_WritesScaleZeroAndDecodesZeros()
    {
        var values = new float[300];
        values[299] = 1f;

        var encoded = UpdateCodec.Encode(values, UpdatePrecision.Int8);
        var decoded = UpdateCodec.Decode(encoded, values.Length);

        Assert.Equal(0f, BinaryPrimitives.ReadSingleLittleEndian(encoded.AsSpan(UpdateCodec.HeaderSize)));
        Assert.All(decoded.Take(299), v => Assert.Equal(0f, v));
        Assert.Equal(1f, decoded[299], 6);
    }

    [Fact]
    public void Decode_Fp32RoundTrip_IsBitExact()
    {
        var values = TestVectors.Gaussian(new Random(3), 513);
        values[0] = -0f;
        values[1] = float.Epsilon;
        values[2] = float.MaxValue;
        values[3] = float.NaN;
        values[4] = float.NegativeInfinity;

        var decoded = UpdateCodec.Decode(UpdateCodec.Encode(values, UpdatePrecision.Fp32), values.Length);

        Assert.Equal(values.Select(BitConverter.SingleToInt32Bits), decoded.Select(BitConverter.SingleToInt32Bits));
    }

    [Fact]
    public void Decode_EmptyUpdate_RoundTripsToEmpty()
    {
        var encoded = UpdateCodec.Encode([], UpdatePrecision.Int8);

        Assert.Equal(UpdateCodec.HeaderSize, encoded.Length);
        Assert.Empty(UpdateCodec.Decode(encoded, 0));
    }

    [Theory]
    [InlineData(1000, 256, 20 + 1000 + (4 * 4))]
    [InlineData(1024, 256, 20 + 1024 + (4 * 4))]
    [InlineData(5_000_000, 256, 20 + 5_000_000 + (4 * 19_532))]
    [InlineData(10, 1, 20 + 10 + (4 * 10))]
    [InlineData(0, 256, 20)]
    public void EncodedSize_Int8_IsHeaderPlusOneBytePerValuePlusOneScalePerBlock(long count, int blockSize, long expected)
    {
        Assert.Equal(expected, UpdateCodec.EncodedSize(count, UpdatePrecision.Int8, blockSize));
    }

    [Fact]
    public void EncodedSize_MatchesEncodeForBothPrecisions()
    {
        var values = TestVectors.Gaussian(new Random(1), 777);

        Assert.Equal(UpdateCodec.EncodedSize(777, UpdatePrecision.Int8, 100), UpdateCodec.Encode(values, UpdatePrecision.Int8, 100).Length);
        Assert.Equal(20 + (4 * 777), UpdateCodec.Encode(values, UpdatePrecision.Fp32).Length);
        Assert.Equal(20 + (4 * 777), UpdateCodec.EncodedSize(777, UpdatePrecision.Fp32));
    }

    [Fact]
    public void Encode_Int8WithNaN_ThrowsArgumentException()
    {
        Assert.Throws<ArgumentException>(() => UpdateCodec.Encode([1f, float.NaN], UpdatePrecision.Int8));
    }

    [Theory]
    [InlineData(0)]
    [InlineData(65537)]
    public void Encode_BlockSizeOutOfRange_Throws(int blockSize)
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => UpdateCodec.Encode([1f], UpdatePrecision.Int8, blockSize));
    }

    [Theory]
    [InlineData("magic", "magic")]
    [InlineData("version", "version 2")]
    [InlineData("precision", "precision 9")]
    [InlineData("reserved", "reserved")]
    [InlineData("count", "600 values but the model has 599")]
    [InlineData("short header", "truncated")]
    [InlineData("truncated", "truncated")]
    [InlineData("trailing", "trailing")]
    [InlineData("nan scale", "scale NaN")]
    [InlineData("infinite scale", "scale")]
    [InlineData("negative scale", "scale -1")]
    [InlineData("block size 0", "Block size 0")]
    [InlineData("block size 65537", "Block size 65537")]
    [InlineData("other block size", "truncated")]
    [InlineData("int8 read as fp32", "truncated")]
    [InlineData("minus 128", "-128")]
    public void Decode_CorruptUpdate_ThrowsInvalidDataException(string corruption, string message)
    {
        var data = UpdateCodec.Encode(TestVectors.Gaussian(new Random(5), 600), UpdatePrecision.Int8).ToList();
        var expectedCount = 600L;
        var secondScale = UpdateCodec.HeaderSize + 4 + 256;
        switch (corruption)
        {
            case "magic":
                data[0] = (byte)'X';
                break;
            case "version":
                data[4] = 2;
                break;
            case "precision":
                data[6] = 9;
                break;
            case "reserved":
                data[7] = 1;
                break;
            case "count":
                expectedCount = 599;
                break;
            case "short header":
                data = data.Take(10).ToList();
                break;
            case "truncated":
                data.RemoveAt(data.Count - 1);
                break;
            case "trailing":
                data.Add(0);
                break;
            case "nan scale":
                WriteSingle(data, secondScale, float.NaN);
                break;
            case "infinite scale":
                WriteSingle(data, secondScale, float.PositiveInfinity);
                break;
            case "negative scale":
                WriteSingle(data, secondScale, -1f);
                break;
            case "block size 0":
                WriteInt32(data, 16, 0);
                break;
            case "block size 65537":
                WriteInt32(data, 16, 65537);
                break;
            case "other block size":
                WriteInt32(data, 16, 128);
                break;
            case "int8 read as fp32":
                data[6] = (byte)UpdatePrecision.Fp32;
                break;
            case "minus 128":
                data[secondScale + 4 + 3] = 0x80;
                break;
            default:
                throw new ArgumentOutOfRangeException(nameof(corruption));
        }

        var error = Assert.Throws<InvalidDataException>(() => UpdateCodec.Decode(data.ToArray(), expectedCount));
        Assert.Contains(message, error.Message, StringComparison.Ordinal);
    }

    private static void WriteSingle(List<byte> data, int offset, float value)
    {
        var bytes = new byte[4];
        BinaryPrimitives.WriteSingleLittleEndian(bytes, value);
        data.RemoveRange(offset, 4);
        data.InsertRange(offset, bytes);
    }

    private static void WriteInt32(List<byte> data, int offset, int value)
    {
        var bytes = new byte[4];
        BinaryPrimitives.WriteInt32LittleEndian(bytes, value);
        data.RemoveRange(offset, 4);
        data.InsertRange(offset, bytes);
    }

    [Theory]
    [InlineData(UpdatePrecision.Int8)]
    [InlineData(UpdatePrecision.Fp32)]
    public void Encode_IntoALargerReusedBuffer_WritesTheSameBytesAndReturnsTheirCount(UpdatePrecision precision)
    {
        var values = Enumerable.Range(0, 1000).Select(i => MathF.Sin(i) * 0.01f).ToArray();
        var expected = UpdateCodec.Encode(values, precision);
        var buffer = new byte[expected.Length + 100];
        buffer.AsSpan().Fill(0xAB);

        var written = UpdateCodec.Encode(values, precision, buffer);

        Assert.Equal(expected.Length, written);
        Assert.Equal(expected, buffer[..written]);
        Assert.All(buffer[written..], b => Assert.Equal(0xAB, b));
        Assert.Throws<ArgumentException>(() => UpdateCodec.Encode(values, precision, new byte[expected.Length - 1]));
    }
}
