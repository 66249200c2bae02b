using System.Buffers.Binary;
using System.Runtime.InteropServices;

namespace Emc.Core.Training;

/// <summary>Which inner optimizer a state belongs to.</summary>
public enum InnerStateKind : byte
{
    AdamW = 1,
    Adam = 2,
    Sgd = 3,
}

/// <summary>One parameter's optimizer state: its step count and its moment vectors (Adam: exp_avg, exp_avg_sq; SGD: the momentum buffer, or none).</summary>
/// <param name="Step">Steps the optimizer took on the parameter (0 for SGD, which does not count).</param>
/// <param name="Count">Values of the parameter.</param>
/// <param name="Moments">The moment vectors, each of <paramref name="Count"/> values.</param>
public sealed record InnerStateEntry(long Step, long Count, IReadOnlyList<float[]> Moments);

/// <summary>
/// The "EMCO" v1 format of a node's inner optimizer state, which a node commits to (its sha256 goes into
/// the round manifest) and uploads when its round is replayed. All little endian:
/// <code>
/// offset size
///      0    4  magic "EMCO"
///      4    2  version, u16 = 1
///      6    1  kind, u8 (<see cref="InnerStateKind"/>)
///      7    1  reserved, 0
///      8    4  entries (parameters), int32
///     12       per entry: step int64, moments u8, count int64, then moments × count float32
/// </code>
/// A fresh optimizer has no state: it is committed as no hash at all.
/// </summary>
public static class InnerStateCodec
{
    /// <summary>The only version this code reads and writes.</summary>
    public const ushort Version = 1;

    /// <summary>The most moment vectors an entry may hold.</summary>
    public const int MaxMoments = 3;

    private const int HeaderSize = 12;
    private const int EntryHeaderSize = 17;

    private static ReadOnlySpan<byte> Magic => "EMCO"u8;

    /// <summary>Bytes of the encoding of <paramref name="entries"/>.</summary>
    public static long EncodedSize(IReadOnlyList<InnerStateEntry> entries)
    {
        ArgumentNullException.ThrowIfNull(entries);
        return HeaderSize + entries.Sum(e => EntryHeaderSize + (e.Moments.Count * e.Count * sizeof(float)));
    }

    /// <summary>Encodes a state; throws <see cref="ArgumentException"/> for an entry whose moments are not <c>Count</c> long.</summary>
    public static byte[] Encode(InnerStateKind kind, IReadOnlyList<InnerStateEntry> entries)
    {
        ArgumentNullException.ThrowIfNull(entries);
        var size = EncodedSize(entries);
        if (size > Array.MaxLength)
        {
            throw new ArgumentException("The optimizer state does not fit in one buffer.", nameof(entries));
        }

        var bytes = new byte[size];
        var span = bytes.AsSpan();
        Magic.CopyTo(span);
        BinaryPrimitives.WriteUInt16LittleEndian(span[4..], Version);
        span[6] = (byte)kind;
        BinaryPrimitives.WriteInt32LittleEndian(span[8..], entries.Count);
        var offset = HeaderSize;
        foreach (var entry in entries)
        {
            if (entry.Moments.Count > MaxMoments || entry.Moments.Any(m => m.LongLength != entry.Count))
            {
                throw new ArgumentException($"An entry of {entry.Count} values has moments of other lengths, or more than {MaxMoments}.", nameof(entries));
            }

            BinaryPrimitives.WriteInt64LittleEndian(span[offset..], entry.Step);
            span[offset + 8] = (byte)entry.Moments.Count;
            BinaryPrimitives.WriteInt64LittleEndian(span[(offset + 9)..], entry.Count);
            offset += EntryHeaderSize;
            foreach (var moment in entry.Moments)
            {
                WriteFloats(moment, span.Slice(offset, moment.Length * sizeof(float)));
                offset += moment.Length * sizeof(float);
            }
        }

        return bytes;
    }

    /// <summary>
    /// Decodes a state and checks it: the format, a known kind, at most <paramref name="maxValues"/> values per
    /// moment in all (the model's size), finite moments and non-negative steps. Throws
    /// <see cref="InvalidDataException"/> saying what is wrong.
    /// </summary>
    public static (InnerStateKind Kind, IReadOnlyList<InnerStateEntry> Entries) Decode(ReadOnlySpan<byte> data, long maxValues)
    {
        if (data.Length < HeaderSize || !data[..4].SequenceEqual(Magic))
        {
            throw new InvalidDataException("The data is not an EMC optimizer state (magic \"EMCO\").");
        }

        var version = BinaryPrimitives.ReadUInt16LittleEndian(data[4..]);
        if (version != Version)
        {
            throw new InvalidDataException($"Unsupported optimizer state version {version}; this build reads version {Version}.");
        }

        var kind = (InnerStateKind)data[6];
        if (!Enum.IsDefined(kind) || data[7] != 0)
        {
            throw new InvalidDataException($"Unknown optimizer state kind {data[6]} or reserved byte {data[7]}.");
        }

        var count = BinaryPrimitives.ReadInt32LittleEndian(data[8..]);
        if (count < 0 || (long)count * EntryHeaderSize > data.Length)
        {
            throw new InvalidDataException($"The state claims {count} entries, more than its {data.Length} bytes hold.");
        }

        var entries = new List<InnerStateEntry>(count);
        var offset = HeaderSize;
        long values = 0;
        for (var e = 0; e < count; e++)
        {
            if (data.Length - offset < EntryHeaderSize)
            {
                throw new InvalidDataException($"The state is truncated in entry {e}.");
            }

            var step = BinaryPrimitives.ReadInt64LittleEndian(data[offset..]);
            int moments = data[offset + 8];
            var length = BinaryPrimitives.ReadInt64LittleEndian(data[(offset + 9)..]);
            offset += EntryHeaderSize;
            values += length;
            if (step < 0 || moments > MaxMoments || length < 1 || length > Array.MaxLength / sizeof(float) || values > maxValues)
            {
                throw new InvalidDataException($"Entry {e} is impossible: step {step}, {moments} moments of {length} values ({values} in all, the model has {maxValues}).");
            }

            var bytes = moments * length * sizeof(float);
            if (data.Length - offset < bytes)
            {
                throw new InvalidDataException($"The state is truncated in entry {e}.");
            }

            var vectors = new float[moments][];
            for (var m = 0; m < moments; m++)
            {
                vectors[m] = new float[length];
                ReadFloats(data.Slice(offset, (int)length * sizeof(float)), vectors[m]);
                offset += (int)length * sizeof(float);
                if (!FiniteValues.All(vectors[m]))
                {
                    throw new InvalidDataException($"Entry {e} has non-finite moments.");
                }
            }

            entries.Add(new InnerStateEntry(step, length, vectors));
        }

        if (offset != data.Length)
        {
            throw new InvalidDataException($"The state has {data.Length - offset} trailing bytes.");
        }

        return (kind, entries);
    }

    private static void WriteFloats(ReadOnlySpan<float> values, Span<byte> destination)
    {
        if (BitConverter.IsLittleEndian)
        {
            MemoryMarshal.AsBytes(values).CopyTo(destination);
            return;
        }

        for (var i = 0; i < values.Length; i++)
        {
            BinaryPrimitives.WriteSingleLittleEndian(destination[(i * sizeof(float))..], values[i]);
        }
    }

    private static void ReadFloats(ReadOnlySpan<byte> source, Span<float> destination)
    {
        if (BitConverter.IsLittleEndian)
        {
            MemoryMarshal.Cast<byte, float>(source).CopyTo(destination);
            return;
        }

        for (var i = 0; i < destination.Length; i++)
        {
            destination[i] = BinaryPrimitives.ReadSingleLittleEndian(source[(i * sizeof(float))..]);
        }
    }
}
