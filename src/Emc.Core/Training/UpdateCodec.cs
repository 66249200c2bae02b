using System.Buffers.Binary;
using System.Numerics.Tensors;
using System.Runtime.InteropServices;

namespace Emc.Core.Training;

/// <summary>How a pseudo-gradient travels from a node to the aggregator.</summary>
public enum UpdatePrecision
{
    /// <summary>Symmetric per-block int8: one float32 scale per block, one signed byte per value (about 4× smaller than fp32).</summary>
#pragma warning disable CA1720 // The name is the wire precision, as in PyTorch and ONNX; it is not a stand-in for the type.
    Int8 = 0,
#pragma warning restore CA1720

    /// <summary>Raw little-endian float32, bit for bit.</summary>
    Fp32 = 1,
}

/// <summary>
/// The "EMCU" v1 wire format of a pseudo-gradient Δ = W − θ, all little endian:
/// <code>
/// offset size
///      0    4  magic "EMCU" (ASCII)
///      4    2  version, u16 = 1
///      6    1  precision, u8 (0 = Int8, 1 = Fp32)
///      7    1  reserved, must be 0
///      8    8  element count, int64
///     16    4  block size, int32 in [1, 65536] (recorded for Fp32 too)
///     20       body
/// </code>
/// Int8 body: for each block of <c>blockSize</c> values (the last one may be shorter), a float32
/// scale then the block's int8 values. scale = max|x| / 127 (0 for an all-zero block) and
/// q = round-half-to-even(x / scale) clamped to [−127, 127]; a value decodes as q · scale, so each
/// decoded value is within scale / 2 of the original. Fp32 body: the float32 values.
/// </summary>
public static class UpdateCodec
{
    /// <summary>Bytes before the body.</summary>
    public const int HeaderSize = 20;

    /// <summary>The only version this code reads and writes.</summary>
    public const ushort Version = 1;

    /// <summary>Values per block unless the caller chooses otherwise: 1.6% overhead for the scales.</summary>
    public const int DefaultBlockSize = 256;

    /// <summary>The largest block size accepted.</summary>
    public const int MaxBlockSize = 65536;

    private static ReadOnlySpan<byte> Magic => "EMCU"u8;

    /// <summary>Encodes <paramref name="values"/>; throws <see cref="ArgumentException"/> when Int8 is asked for values that are not all finite.</summary>
    public static byte[] Encode(ReadOnlySpan<float> values, UpdatePrecision precision, int blockSize = DefaultBlockSize)
    {
        var size = EncodedSize(values.Length, precision, blockSize);
        if (size > Array.MaxLength)
        {
            throw new ArgumentException($"{values.Length} values do not fit in one encoded buffer.", nameof(values));
        }

        var output = new byte[size];
        Encode(values, precision, output, blockSize);
        return output;
    }

    /// <summary>
    /// Encodes <paramref name="values"/> into <paramref name="destination"/>, which must hold at least
    /// <see cref="EncodedSize"/> bytes (a buffer reused across rounds), and returns the bytes written.
    /// </summary>
    public static int Encode(ReadOnlySpan<float> values, UpdatePrecision precision, Span<byte> destination, int blockSize = DefaultBlockSize)
    {
        var size = EncodedSize(values.Length, precision, blockSize);
        if (size > destination.Length)
        {
            throw new ArgumentException($"{values.Length} values take {size} bytes; the destination holds {destination.Length}.", nameof(destination));
        }

        var output = destination[..(int)size];
        WriteHeader(output, values.Length, precision, blockSize);
        var body = output[HeaderSize..];
        if (precision == UpdatePrecision.Fp32)
        {
            WriteFloats(values, body);
            return output.Length;
        }

        // A NaN or infinity would poison its block's scale and come back as garbage, so refuse it here
        // rather than send something the aggregator cannot tell from a valid update.
        if (!FiniteValues.All(values))
        {
            throw new ArgumentException("Int8 encoding needs finite values; this update has NaN or infinity.", nameof(values));
        }

        for (var start = 0; start < values.Length; start += blockSize)
        {
            var block = values.Slice(start, Math.Min(blockSize, values.Length - start));
            var scale = MathF.Abs(TensorPrimitives.MaxMagnitude(block)) / 127f;
            BinaryPrimitives.WriteSingleLittleEndian(body, scale);
            var quantised = MemoryMarshal.Cast<byte, sbyte>(body.Slice(sizeof(float), block.Length));
            if (scale > 0f)
            {
                for (var i = 0; i < block.Length; i++)
                {
                    quantised[i] = (sbyte)Math.Clamp(MathF.Round(block[i] / scale, MidpointRounding.ToEven), -127f, 127f);
                }
            }
            else
            {
                // Subnormal maxima give a scale of 0 too: the block then decodes as zeros, within scale / 2 of it.
                quantised.Clear();
            }

            body = body[(sizeof(float) + block.Length)..];
        }

        return output.Length;
    }

    /// <summary>The exact size in bytes of <paramref name="count"/> values encoded with <paramref name="precision"/>.</summary>
    public static long EncodedSize(long count, UpdatePrecision precision, int blockSize = DefaultBlockSize)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        ArgumentOutOfRangeException.ThrowIfLessThan(blockSize, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(blockSize, MaxBlockSize);
        return precision switch
        {
            UpdatePrecision.Int8 => HeaderSize + count + (sizeof(float) * ((count + blockSize - 1) / blockSize)),
            UpdatePrecision.Fp32 => HeaderSize + (sizeof(float) * count),
            _ => throw new ArgumentOutOfRangeException(nameof(precision), precision, "Unknown update precision."),
        };
    }

    /// <summary>
    /// Decodes an update that must hold exactly <paramref name="expectedCount"/> values; throws
    /// <see cref="InvalidDataException"/> saying what is wrong with anything else. Fp32 values are
    /// returned as sent, NaN included: judging them is <see cref="UpdateChecks"/>' job.
    /// </summary>
    public static float[] Decode(ReadOnlySpan<byte> data, long expectedCount)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(expectedCount);
        if (data.Length < HeaderSize)
        {
            throw new InvalidDataException($"The update is truncated: {data.Length} bytes is shorter than the {HeaderSize}-byte header.");
        }

        if (!data[..4].SequenceEqual(Magic))
        {
            throw new InvalidDataException("The data is not an EMC update: the magic is not \"EMCU\".");
        }

        var version = BinaryPrimitives.ReadUInt16LittleEndian(data[4..]);
        if (version != Version)
        {
            throw new InvalidDataException($"Unsupported update format version {version}; this build reads version {Version}.");
        }

        var precisionByte = data[6];
        if (precisionByte > (byte)UpdatePrecision.Fp32)
        {
            throw new InvalidDataException($"Unknown update precision {precisionByte}.");
        }

        var precision = (UpdatePrecision)precisionByte;
        if (data[7] != 0)
        {
            throw new InvalidDataException($"The reserved header byte is {data[7]}, not 0.");
        }

        var count = BinaryPrimitives.ReadInt64LittleEndian(data[8..]);
        if (count != expectedCount)
        {
            throw new InvalidDataException($"The update holds {count} values but the model has {expectedCount}.");
        }

        var blockSize = BinaryPrimitives.ReadInt32LittleEndian(data[16..]);
        if (blockSize is < 1 or > MaxBlockSize)
        {
            throw new InvalidDataException($"Block size {blockSize} is outside [1, {MaxBlockSize}].");
        }

        if (count > Array.MaxLength)
        {
            throw new InvalidDataException($"{count} values do not fit in one array.");
        }

        var size = EncodedSize(count, precision, blockSize);
        if (data.Length != size)
        {
            throw new InvalidDataException(data.Length < size
                ? $"The update is truncated: {data.Length} bytes where {precision} with {count} values takes {size}."
                : $"The update has {data.Length - size} trailing bytes after its {size}-byte body.");
        }

        var values = new float[count];
        var body = data[HeaderSize..];
        if (precision == UpdatePrecision.Fp32)
        {
            ReadFloats(body, values);
            return values;
        }

        for (var start = 0; start < values.Length; start += blockSize)
        {
            var length = Math.Min(blockSize, values.Length - start);
            var scale = BinaryPrimitives.ReadSingleLittleEndian(body);
            if (!float.IsFinite(scale) || float.IsNegative(scale))
            {
                throw new InvalidDataException($"The block at value {start} has scale {scale}; a scale must be finite and not negative.");
            }

            var quantised = MemoryMarshal.Cast<byte, sbyte>(body.Slice(sizeof(float), length));
            var block = values.AsSpan(start, length);
            for (var i = 0; i < length; i++)
            {
                if (quantised[i] == sbyte.MinValue)
                {
                    throw new InvalidDataException($"Value {start + i} is -128, outside the symmetric int8 range [-127, 127].");
                }

                block[i] = quantised[i] * scale;
            }

            body = body[(sizeof(float) + length)..];
        }

        return values;
    }

    private static void WriteHeader(Span<byte> output, long count, UpdatePrecision precision, int blockSize)
    {
        Magic.CopyTo(output);
        BinaryPrimitives.WriteUInt16LittleEndian(output[4..], Version);
        output[6] = (byte)precision;
        output[7] = 0;
        BinaryPrimitives.WriteInt64LittleEndian(output[8..], count);
        BinaryPrimitives.WriteInt32LittleEndian(output[16..], blockSize);
    }

    /// <summary>Writes float32 values little endian (a plain copy on little-endian machines).</summary>
    internal static void WriteFloats(ReadOnlySpan<float> values, Span<byte> destination)
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

    /// <summary>Reads little-endian float32 values into <paramref name="destination"/>.</summary>
    internal static void ReadFloats(ReadOnlySpan<byte> source, Span<float> destination)
    {
        if (BitConverter.IsLittleEndian)
        {
            source[..(destination.Length * sizeof(float))].CopyTo(MemoryMarshal.AsBytes(destination));
            return;
        }

        for (var i = 0; i < destination.Length; i++)
        {
            destination[i] = BinaryPrimitives.ReadSingleLittleEndian(source[(i * sizeof(float))..]);
        }
    }
}
