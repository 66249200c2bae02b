using System.Buffers.Binary;
using Emc.Core.Data;

namespace Emc.Core.Tests.Data;

public sealed class ShardCodecTests
{
    internal static ParsedSplit ImageSplit(int count = 10) => new()
    {
        ElementType = ElementType.U8,
        SampleShape = [2, 3],
        Count = count,
        Data = DataFiles.Pattern(count * 6),
        Labels = [.. Enumerable.Range(0, count).Select(i => (long)(i % 4))],
        Classes = 4,
    };

    internal static ParsedSplit FloatSplit() => new()
    {
        ElementType = ElementType.F32,
        SampleShape = [2],
        Count = 3,
        Data = [.. new float[] { 1, 2, 3, 4, 5, 6 }.SelectMany(value => BitConverter.GetBytes(value))],
        Labels = [0, 1, 0],
        Classes = 2,
    };

    internal static ParsedSplit TextSplit(int count = 100) => new()
    {
        ElementType = ElementType.U8,
        SampleShape = [],
        Count = count,
        Data = DataFiles.Pattern(count),
        Labels = null,
        Classes = 256,
    };

    [Fact]
    public void EncodeDecode_Images_RoundTrips()
    {
        var split = ImageSplit();

        var block = ShardCodec.Decode(ShardCodec.Encode(split, 3, 4));

        Assert.Equal(4, block.Count);
        Assert.Equal([2, 3], block.SampleShape);
        Assert.Equal(ElementType.U8, block.ElementType);
        Assert.Equal(split.Data.AsSpan(18, 24).ToArray(), block.Data);
        Assert.Equal([3L, 0, 1, 2], block.Labels!);
    }

    [Fact]
    public void EncodeDecode_Floats_RoundTrips()
    {
        var block = ShardCodec.Decode(ShardCodec.Encode(FloatSplit(), 1, 2));

        Assert.Equal(ElementType.F32, block.ElementType);
        Assert.Equal([3f, 4, 5, 6], DataFiles.Floats(block.Data));
        Assert.Equal([1L, 0], block.Labels!);
    }

    [Fact]
    public void EncodeDecode_Text_RoundTripsWithoutLabels()
    {
        var split = TextSplit();

        var block = ShardCodec.Decode(ShardCodec.Encode(split, 90, 10));

        Assert.Equal(10, block.Count);
        Assert.Empty(block.SampleShape);
        Assert.Null(block.Labels);
        Assert.Equal(split.Data[90..], block.Data);
    }

    [Fact]
    public void Encode_Header_IsTheDocumentedLayout()
    {
        var shard = ShardCodec.Encode(ImageSplit(), 0, 2);

        Assert.Equal("EMCS"u8.ToArray(), shard[..4]);
        Assert.Equal(1, BinaryPrimitives.ReadUInt16LittleEndian(shard.AsSpan(4)));
        Assert.Equal(0, shard[6]);
        Assert.Equal(1, shard[7]);
        Assert.Equal(2, BinaryPrimitives.ReadInt32LittleEndian(shard.AsSpan(8)));
        Assert.Equal(2, BinaryPrimitives.ReadInt32LittleEndian(shard.AsSpan(12)));
        Assert.Equal(2, BinaryPrimitives.ReadInt32LittleEndian(shard.AsSpan(16)));
        Assert.Equal(3, BinaryPrimitives.ReadInt32LittleEndian(shard.AsSpan(20)));
        Assert.Equal(24 + 12 + 16, shard.Length);
        Assert.Equal(1, BinaryPrimitives.ReadInt64LittleEndian(shard.AsSpan(24 + 12 + 8)));
    }

    [Theory]
    [InlineData(-1, 1)]
    [InlineData(0, 0)]
    [InlineData(8, 3)]
    public void Encode_RangeOutsideSplit_Throws(int first, int count)
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => ShardCodec.Encode(ImageSplit(), first, count));
    }

    [Fact]
    public void Decode_BadMagic_Throws()
    {
        var shard = ShardCodec.Encode(ImageSplit(), 0, 1);
        shard[0] = (byte)'X';

        AssertInvalid(shard, "Not an EMC shard");
    }

    [Fact]
    public void Decode_UnknownVersion_Throws()
    {
        var shard = ShardCodec.Encode(ImageSplit(), 0, 1);
        shard[4] = 2;

        AssertInvalid(shard, "Unknown shard version 2");
    }

    [Fact]
    public void Decode_UnknownElementType_Throws()
    {
        var shard = ShardCodec.Encode(ImageSplit(), 0, 1);
        shard[6] = 7;

        AssertInvalid(shard, "Unknown element type 7");
    }

    [Fact]
    public void Decode_UnknownFlags_Throws()
    {
        var shard = ShardCodec.Encode(ImageSplit(), 0, 1);
        shard[7] = 3;

        AssertInvalid(shard, "Unknown shard flags 0x03");
    }

    [Theory]
    [InlineData(0)]
    [InlineData(10)]
    [InlineData(16)]
    [InlineData(30)]
    public void Decode_Truncated_Throws(int length)
    {
        var shard = ShardCodec.Encode(ImageSplit(), 0, 2);

        AssertInvalid(shard[..length], "Truncated shard");
    }

    [Fact]
    public void Decode_TrailingBytes_Throws()
    {
        byte[] shard = [.. ShardCodec.Encode(ImageSplit(), 0, 2), 0];

        AssertInvalid(shard, "1 bytes after the 52 its header declares");
    }

    [Theory]
    [InlineData(8, -1, "rank -1")]
    [InlineData(8, 17, "rank 17")]
    [InlineData(12, 0, "0 examples")]
    [InlineData(12, -5, "-5 examples")]
    [InlineData(16, 0, "Dimension 0 of the shard's examples is 0")]
    [InlineData(20, -3, "Dimension 1 of the shard's examples is -3")]
    public void Decode_BadHeaderField_Throws(int offset, int value, string message)
    {
        var shard = ShardCodec.Encode(ImageSplit(), 0, 2);
        BinaryPrimitives.WriteInt32LittleEndian(shard.AsSpan(offset), value);

        AssertInvalid(shard, message);
    }

    [Fact]
    public void Decode_SizesThatOverflow_Throws()
    {
        var shard = ShardCodec.Encode(ImageSplit(), 0, 2);
        BinaryPrimitives.WriteInt32LittleEndian(shard.AsSpan(12), int.MaxValue);
        BinaryPrimitives.WriteInt32LittleEndian(shard.AsSpan(16), int.MaxValue);
        BinaryPrimitives.WriteInt32LittleEndian(shard.AsSpan(20), int.MaxValue);

        AssertInvalid(shard, "overflows");
    }

    [Fact]
    public void Decode_CountTimesSampleOverflow_Throws()
    {
        var shard = ShardCodec.Encode(ImageSplit(), 0, 2);
        BinaryPrimitives.WriteInt32LittleEndian(shard.AsSpan(12), int.MaxValue);

        AssertInvalid(shard, "sizes overflow");
    }

    [Fact]
    public void Decode_NegativeLabel_Throws()
    {
        var shard = ShardCodec.Encode(ImageSplit(), 0, 2);
        BinaryPrimitives.WriteInt64LittleEndian(shard.AsSpan(shard.Length - 8), -2);

        AssertInvalid(shard, "Label -2 of example 1 in the shard is negative");
    }

    private static void AssertInvalid(byte[] shard, string message)
    {
        var ex = Assert.Throws<InvalidDataException>(() => ShardCodec.Decode(shard));
        Assert.Contains(message, ex.Message, StringComparison.Ordinal);
    }
}
