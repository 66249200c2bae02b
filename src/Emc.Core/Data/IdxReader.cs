using System.Buffers.Binary;

namespace Emc.Core.Data;

/// <summary>
/// Reads IDX files (MNIST, Fashion-MNIST): a big-endian magic 0x0000TTDD (TT the element type, DD the rank),
/// DD big-endian int32 dimensions, then the elements, big-endian. Rank 1 is a labels file; rank 2 or more
/// holds one example per index of the first dimension.
/// </summary>
internal static class IdxReader
{
    private const int MaxRank = 16;

    public static ParsedPart Read(SourceStream source, string split)
    {
        Span<byte> magic = stackalloc byte[4];
        var got = source.ReadAtMost(magic);
        if (got < 4)
        {
            throw source.Error($"not an IDX file: it has only {got} bytes");
        }

        var magicValue = BinaryPrimitives.ReadUInt32BigEndian(magic);
        NumericKind? kind = magic[2] switch
        {
            0x08 => NumericKind.U8,
            0x09 => NumericKind.I8,
            0x0B => NumericKind.I16,
            0x0C => NumericKind.I32,
            0x0D => NumericKind.F32,
            0x0E => NumericKind.F64,
            _ => null,
        };
        int rank = magic[3];
        if (magic[0] != 0 || magic[1] != 0 || kind is null || rank is 0 or > MaxRank)
        {
            throw source.Error($"not an IDX file (magic 0x{magicValue:x8}; IDX files start with 0x0000TTDD, TT the type 08, 09, 0b, 0c, 0d or 0e and DD the rank)");
        }

        var headerBytes = 4 + (4 * rank);
        Span<byte> dimBytes = stackalloc byte[4 * rank];
        if (source.ReadAtMost(dimBytes) < dimBytes.Length)
        {
            throw source.Error($"truncated: the header declares {rank} dimensions ({headerBytes} bytes) but the file has {source.Position} bytes");
        }

        var shape = new int[rank];
        for (var i = 0; i < rank; i++)
        {
            var dim = BinaryPrimitives.ReadUInt32BigEndian(dimBytes[(4 * i)..]);
            shape[i] = dim > int.MaxValue
                ? throw source.Error($"dimension {i} is {dim}, too large")
                : (int)dim;
        }

        var elementSize = NumericArrays.Size(kind.Value);
        var payloadBytes = Arrays.Elements(shape, source) * elementSize;
        var shapeText = rank > 1 ? $" of {Arrays.FormatShape(shape.AsSpan(1))}" : "";
        var declared = $"the header declares {shape[0]} items{shapeText} ({headerBytes + payloadBytes} bytes)";
        var payload = source.ReadPayload(payloadBytes, actual => $"truncated: {declared} but the file has {actual} bytes");
        source.ExpectEnd(actual => $"trailing data: {declared} but the file has {actual} bytes");

        NumericArrays.ToNativeOrder(payload, kind.Value, bigEndian: true);
        return rank == 1
            ? new ParsedPart { Source = source.Name, Split = split, Labels = Arrays.Labels(payload, kind.Value, source) }
            : new ParsedPart { Source = source.Name, Split = split, Features = Arrays.Features(payload, kind.Value, shape, source) };
    }
}
