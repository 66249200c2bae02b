using System.Buffers.Binary;
using System.Runtime.InteropServices;

namespace Emc.Core.Training;

/// <summary>
/// The "EMCW" v1 format of canonical fp32 weights and of optimizer state (such as the outer
/// momentum), all little endian:
/// <code>
/// offset size
///      0    4  magic "EMCW" (ASCII)
///      4    2  version, u16 = 1
///      6    2  reserved, must be 0
///      8    8  element count, int64
///     16  4·n  float32 values
/// </code>
/// </summary>
public static class WeightsCodec
{
    /// <summary>Bytes before the values.</summary>
    public const int HeaderSize = 16;

    /// <summary>The only version this code reads and writes.</summary>
    public const ushort Version = 1;

    private static ReadOnlySpan<byte> Magic => "EMCW"u8;

    /// <summary>The exact size in bytes of <paramref name="count"/> encoded values.</summary>
    public static long EncodedSize(long count)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        return HeaderSize + (sizeof(float) * count);
    }

    /// <summary>Encodes the values bit for bit.</summary>
    public static byte[] Encode(ReadOnlySpan<float> values)
    {
        var size = EncodedSize(values.Length);
        if (size > Array.MaxLength)
        {
            throw new ArgumentException($"{values.Length} values do not fit in one encoded buffer.", nameof(values));
        }

        var output = new byte[size];
        Magic.CopyTo(output);
        BinaryPrimitives.WriteUInt16LittleEndian(output.AsSpan(4), Version);
        BinaryPrimitives.WriteUInt16LittleEndian(output.AsSpan(6), 0);
        BinaryPrimitives.WriteInt64LittleEndian(output.AsSpan(8), values.Length);
        UpdateCodec.WriteFloats(values, output.AsSpan(HeaderSize));
        return output;
    }

    /// <summary>
    /// Decodes a blob; throws <see cref="InvalidDataException"/> on a bad magic, version or
    /// reserved field, a count other than <paramref name="expectedCount"/> (when it is given),
    /// truncated or trailing bytes, and — when <paramref name="requireFinite"/> — a NaN or infinity.
    /// </summary>
    public static float[] Decode(ReadOnlySpan<byte> data, long? expectedCount = null, bool requireFinite = false)
    {
        var count = ReadHeader(data, expectedCount);
        var size = EncodedSize(count);
        if (data.Length != size)
        {
            throw new InvalidDataException(data.Length < size
                ? $"The weights blob is truncated: {data.Length} bytes where {count} values take {size}."
                : $"The weights blob has {data.Length - size} trailing bytes after its {size}-byte body.");
        }

        var values = new float[count];
        UpdateCodec.ReadFloats(data[HeaderSize..], values);
        if (requireFinite)
        {
            EnsureFinite(values);
        }

        return values;
    }

    /// <summary>
    /// Decodes a blob from <paramref name="stream"/> (read to its end) straight into
    /// <paramref name="destination"/>, whose length is the expected count, without an intermediate
    /// buffer of the whole blob; the same checks as <see cref="Decode"/>.
    /// </summary>
    public static void Read(Stream stream, Span<float> destination)
    {
        ArgumentNullException.ThrowIfNull(stream);
        Span<byte> header = stackalloc byte[HeaderSize];
        var got = stream.ReadAtLeast(header, HeaderSize, throwOnEndOfStream: false);
        var count = ReadHeader(header[..got], destination.Length);
        var body = MemoryMarshal.AsBytes(destination);
        var read = stream.ReadAtLeast(body, body.Length, throwOnEndOfStream: false);
        if (read < body.Length)
        {
            throw new InvalidDataException($"The weights blob is truncated: {HeaderSize + read} bytes where {count} values take {EncodedSize(count)}.");
        }

        Span<byte> probe = stackalloc byte[1];
        if (stream.Read(probe) != 0)
        {
            throw new InvalidDataException($"The weights blob has trailing bytes after its {EncodedSize(count)}-byte body.");
        }

        if (!BitConverter.IsLittleEndian)
        {
            for (var i = 0; i < destination.Length; i++)
            {
                destination[i] = BinaryPrimitives.ReadSingleLittleEndian(body[(i * sizeof(float))..]);
            }
        }
    }

    /// <summary>Checks the header and returns the element count.</summary>
    private static long ReadHeader(ReadOnlySpan<byte> data, long? expectedCount)
    {
        if (expectedCount is { } expected)
        {
            ArgumentOutOfRangeException.ThrowIfNegative(expected, nameof(expectedCount));
        }

        if (data.Length < HeaderSize)
        {
            throw new InvalidDataException($"The weights blob is truncated: {data.Length} bytes is shorter than the {HeaderSize}-byte header.");
        }

        if (!data[..4].SequenceEqual(Magic))
        {
            throw new InvalidDataException("The data is not an EMC weights blob: the magic is not \"EMCW\".");
        }

        var version = BinaryPrimitives.ReadUInt16LittleEndian(data[4..]);
        if (version != Version)
        {
            throw new InvalidDataException($"Unsupported weights format version {version}; this build reads version {Version}.");
        }

        var reserved = BinaryPrimitives.ReadUInt16LittleEndian(data[6..]);
        if (reserved != 0)
        {
            throw new InvalidDataException($"The reserved header field is {reserved}, not 0.");
        }

        var count = BinaryPrimitives.ReadInt64LittleEndian(data[8..]);
        if (expectedCount is { } wanted && count != wanted)
        {
            throw new InvalidDataException($"The weights blob holds {count} values but {wanted} are expected.");
        }

        if (count < 0 || count > Array.MaxLength)
        {
            throw new InvalidDataException($"The weights blob claims {count} values, which is not a valid array length.");
        }

        return count;
    }

    /// <summary>Throws <see cref="InvalidDataException"/> naming the first NaN or infinity, if any.</summary>
    public static void EnsureFinite(ReadOnlySpan<float> values)
    {
        if (FiniteValues.All(values))
        {
            return;
        }

        var index = FirstNonFinite(values);
        throw new InvalidDataException($"Value {index} is {values[index]}; weights and optimizer state must be finite.");
    }

    private static int FirstNonFinite(ReadOnlySpan<float> values)
    {
        for (var i = 0; i < values.Length; i++)
        {
            if (!float.IsFinite(values[i]))
            {
                return i;
            }
        }

        return -1;
    }
}
