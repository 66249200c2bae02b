using System.Buffers.Binary;
using System.Runtime.InteropServices;

namespace Emc.Core.Data;

/// <summary>
/// The binary form of a dataset shard, "EMCS" version 1: a contiguous run of examples of one split.
/// All integers are little-endian.
/// <code>
/// offset  size  field
/// 0       4     magic "EMCS"
/// 4       2     version, 1
/// 6       1     element type: 0 u8, 1 f32
/// 7       1     flags: bit 0 set when labels follow the data; other bits 0
/// 8       4     rank r of one example (0 for text), at most 16
/// 12      4     count n of examples (bytes for text), at least 1
/// 16      4·r   the example dimensions, each at least 1
/// 16+4r   …     data: n × product(dims) × element size bytes, example after example
/// …       8·n   labels (int64, non-negative), when flag bit 0 is set
/// </code>
/// </summary>
public static class ShardCodec
{
    public const int Version = 1;

    /// <summary>The most dimensions one example may have.</summary>
    public const int MaxRank = 16;

    private const int FixedHeaderBytes = 16;
    private const byte HasLabels = 1;

    private static ReadOnlySpan<byte> Magic => "EMCS"u8;

    /// <summary>Bytes of the header for examples of <paramref name="rank"/> dimensions.</summary>
    public static int HeaderBytes(int rank) => FixedHeaderBytes + (4 * rank);

    /// <summary>Encodes examples [<paramref name="first"/>, <paramref name="first"/> + <paramref name="count"/>) of a split.</summary>
    public static byte[] Encode(ParsedSplit split, int first, int count)
    {
        ArgumentNullException.ThrowIfNull(split);
        ArgumentOutOfRangeException.ThrowIfNegative(first);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(count);
        if ((long)first + count > split.Count)
        {
            throw new ArgumentOutOfRangeException(nameof(count), count, $"Examples {first}..{(long)first + count} run past the end of the split ({split.Count}).");
        }

        if (split.SampleShape.Length > MaxRank)
        {
            throw new ArgumentException($"Examples have {split.SampleShape.Length} dimensions; a shard holds at most {MaxRank}.", nameof(split));
        }

        var rank = split.SampleShape.Length;
        var sampleBytes = split.SampleBytes;
        var dataBytes = (long)count * sampleBytes;
        var labelBytes = split.Labels is null ? 0 : 8L * count;
        var total = HeaderBytes(rank) + dataBytes + labelBytes;
        if (total > Array.MaxLength)
        {
            throw new ArgumentOutOfRangeException(nameof(count), count, $"{count} examples take {total} bytes, more than one shard can hold.");
        }

        var shard = new byte[total];
        var span = shard.AsSpan();
        Magic.CopyTo(span);
        BinaryPrimitives.WriteUInt16LittleEndian(span[4..], Version);
        span[6] = split.ElementType switch
        {
            ElementType.U8 => 0,
            ElementType.F32 => 1,
            _ => throw new ArgumentException($"Unknown element type {split.ElementType}.", nameof(split)),
        };
        span[7] = split.Labels is null ? (byte)0 : HasLabels;
        BinaryPrimitives.WriteInt32LittleEndian(span[8..], rank);
        BinaryPrimitives.WriteInt32LittleEndian(span[12..], count);
        for (var i = 0; i < rank; i++)
        {
            BinaryPrimitives.WriteInt32LittleEndian(span[(FixedHeaderBytes + (4 * i))..], split.SampleShape[i]);
        }

        var offset = HeaderBytes(rank);
        split.Data.AsSpan((int)((long)first * sampleBytes), (int)dataBytes).CopyTo(span[offset..]);
        offset += (int)dataBytes;
        if (split.Labels is not null)
        {
            var labels = span.Slice(offset, (int)labelBytes);
            MemoryMarshal.AsBytes(split.Labels.AsSpan(first, count)).CopyTo(labels);
            if (!BitConverter.IsLittleEndian)
            {
                var words = MemoryMarshal.Cast<byte, long>(labels);
                BinaryPrimitives.ReverseEndianness(words, words);
            }
        }

        return shard;
    }

    /// <summary>
    /// Decodes and checks a shard: magic, version, element type, flags, rank, dimensions, sizes (which must
    /// neither overflow nor disagree with the length) and labels. Throws <see cref="InvalidDataException"/>.
    /// </summary>
    public static ExampleBlock Decode(ReadOnlySpan<byte> shard)
    {
        if (shard.Length < FixedHeaderBytes)
        {
            throw new InvalidDataException($"Truncated shard: {shard.Length} bytes, shorter than the {FixedHeaderBytes}-byte header.");
        }

        if (!shard[..4].SequenceEqual(Magic))
        {
            throw new InvalidDataException($"Not an EMC shard: the magic is 0x{Convert.ToHexStringLower(shard[..4])}, not \"EMCS\".");
        }

        var version = BinaryPrimitives.ReadUInt16LittleEndian(shard[4..]);
        if (version != Version)
        {
            throw new InvalidDataException($"Unknown shard version {version}; this build reads version {Version}.");
        }

        var elementType = shard[6] switch
        {
            0 => ElementType.U8,
            1 => ElementType.F32,
            _ => throw new InvalidDataException($"Unknown element type {shard[6]} in the shard header."),
        };
        var flags = shard[7];
        if ((flags & ~HasLabels) != 0)
        {
            throw new InvalidDataException($"Unknown shard flags 0x{flags:x2}.");
        }

        var rank = BinaryPrimitives.ReadInt32LittleEndian(shard[8..]);
        if (rank is < 0 or > MaxRank)
        {
            throw new InvalidDataException($"The shard declares rank {rank}; it must be between 0 and {MaxRank}.");
        }

        var count = BinaryPrimitives.ReadInt32LittleEndian(shard[12..]);
        if (count < 1)
        {
            throw new InvalidDataException($"The shard declares {count} examples; it must hold at least 1.");
        }

        var headerBytes = HeaderBytes(rank);
        if (shard.Length < headerBytes)
        {
            throw new InvalidDataException($"Truncated shard: {shard.Length} bytes, shorter than the {headerBytes}-byte header of rank {rank}.");
        }

        var shape = new int[rank];
        long sampleBytes = elementType == ElementType.U8 ? 1 : 4;
        for (var i = 0; i < rank; i++)
        {
            shape[i] = BinaryPrimitives.ReadInt32LittleEndian(shard[(FixedHeaderBytes + (4 * i))..]);
            if (shape[i] < 1)
            {
                throw new InvalidDataException($"Dimension {i} of the shard's examples is {shape[i]}; it must be at least 1.");
            }

            sampleBytes *= shape[i];
            if (sampleBytes > Array.MaxLength)
            {
                throw new InvalidDataException("The shard's example shape overflows: one example would exceed the largest array.");
            }
        }

        var dataBytes = sampleBytes * count;
        if (dataBytes > Array.MaxLength)
        {
            throw new InvalidDataException($"The shard's sizes overflow: {count} examples of {sampleBytes} bytes exceed the largest array.");
        }

        var hasLabels = (flags & HasLabels) != 0;
        var expected = headerBytes + dataBytes + (hasLabels ? 8L * count : 0);
        if (shard.Length != expected)
        {
            throw new InvalidDataException(shard.Length < expected
                ? $"Truncated shard: the header declares {expected} bytes but the shard has {shard.Length}."
                : $"The shard has {shard.Length - expected} bytes after the {expected} its header declares.");
        }

        var data = shard.Slice(headerBytes, (int)dataBytes).ToArray();
        long[]? labels = null;
        if (hasLabels)
        {
            labels = new long[count];
            var labelBytes = shard.Slice(headerBytes + (int)dataBytes);
            for (var i = 0; i < count; i++)
            {
                labels[i] = BinaryPrimitives.ReadInt64LittleEndian(labelBytes[(8 * i)..]);
                if (labels[i] < 0)
                {
                    throw new InvalidDataException($"Label {labels[i]} of example {i} in the shard is negative.");
                }
            }
        }

        return new ExampleBlock
        {
            Count = count,
            SampleShape = shape,
            ElementType = elementType,
            Data = data,
            Labels = labels,
        };
    }
}
