using System.Buffers.Binary;
using System.Globalization;
using System.Text;
using System.Text.Json;

namespace Emc.Core.Inference;

/// <summary>
/// Decodes a tensor's JSON <c>data</c> array, nested or flat (any nesting is flattened in row-major
/// order; only the total count must match the shape, as in Triton), into the tensor's canonical bytes.
/// </summary>
internal static class TensorDataReader
{
    private static readonly JsonReaderOptions Options = new() { CommentHandling = JsonCommentHandling.Disallow, MaxDepth = 64 };

    public static InferTensor ReadFixed(
        PendingTensor header,
        TensorDatatype datatype,
        ReadOnlySpan<byte> data,
        long count,
        Dictionary<string, InferParameter>? parameters,
        Budget budget)
    {
        var size = datatype.ElementSize();
        budget.TakeBytes(count, size, header.Label);

        // Every value takes at least one byte of JSON, so a shape larger than the text cannot match it;
        // checking first keeps a small body from making us allocate a large buffer.
        if (count > data.Length)
        {
            throw CountMismatch(header, CountValues(data), count);
        }

        var buffer = new byte[count * size];
        var reader = new Utf8JsonReader(data, Options);
        long index = 0;
        while (reader.Read())
        {
            if (reader.TokenType is JsonTokenType.StartArray or JsonTokenType.EndArray)
            {
                continue;
            }

            if (index < count)
            {
                ReadValue(ref reader, datatype, buffer.AsSpan((int)(index * size), size), index, header.Label);
            }
            else if (reader.TokenType == JsonTokenType.StartObject)
            {
                throw OipException.Bad($"{header.Label}: data holds an object at index {index}");
            }

            index++;
        }

        if (index != count)
        {
            throw CountMismatch(header, index, count);
        }

        return InferTensor.Trusted(header.Name!, datatype, header.Shape!, count, buffer, null, parameters);
    }

    public static InferTensor ReadBytes(
        PendingTensor header,
        ReadOnlyMemory<byte> data,
        long count,
        Dictionary<string, InferParameter>? parameters,
        Budget budget)
    {
        // A JSON string takes at least two bytes ("").
        if (count > data.Length / 2)
        {
            throw CountMismatch(header, CountValues(data.Span), count);
        }

        var elements = new ReadOnlyMemory<byte>[count];
        var reader = new Utf8JsonReader(data.Span, Options);
        long index = 0;
        while (reader.Read())
        {
            if (reader.TokenType is JsonTokenType.StartArray or JsonTokenType.EndArray)
            {
                continue;
            }

            if (reader.TokenType != JsonTokenType.String)
            {
                throw OipException.Bad($"{header.Label}: value {Describe(ref reader)} at index {index} is not a string (BYTES)");
            }

            if (index < count)
            {
                ReadOnlyMemory<byte> element;
                if (reader.ValueIsEscaped)
                {
                    var unescaped = new byte[reader.ValueSpan.Length];
                    try
                    {
                        element = unescaped.AsMemory(0, reader.CopyString(unescaped));
                    }
                    catch (InvalidOperationException e)
                    {
                        // A lone surrogate escape such as "\ud800" has no UTF-8 form.
                        throw OipException.Bad($"{header.Label}: value at index {index} is not valid text: {e.Message}");
                    }
                }
                else
                {
                    // Unescaped text is the element itself: point into the body rather than copy it.
                    element = data.Slice((int)reader.TokenStartIndex + 1, reader.ValueSpan.Length);
                }

                budget.TakeBytes(element.Length, 1, header.Label);
                elements[index] = element;
            }

            index++;
        }

        if (index != count)
        {
            throw CountMismatch(header, index, count);
        }

        return InferTensor.Trusted(header.Name!, TensorDatatype.Bytes, header.Shape!, count, ReadOnlyMemory<byte>.Empty, elements, parameters);
    }

    /// <summary>The current token for an error message: 300, "text", true, null, an object.</summary>
    public static string Describe(ref Utf8JsonReader reader)
    {
        switch (reader.TokenType)
        {
            case JsonTokenType.Number:
                return Shorten(Encoding.UTF8.GetString(reader.ValueSpan));
            case JsonTokenType.String:
                // Raw bytes rather than GetString, which throws on invalid UTF-8: this is only for a message.
                return $"\"{Shorten(Encoding.UTF8.GetString(reader.ValueSpan))}\"";
            case JsonTokenType.True:
                return "true";
            case JsonTokenType.False:
                return "false";
            case JsonTokenType.Null:
                return "null";
            case JsonTokenType.StartObject:
                return "an object";
            case JsonTokenType.StartArray:
                return "an array";
            default:
                return reader.TokenType.ToString();
        }
    }

    private static void ReadValue(ref Utf8JsonReader reader, TensorDatatype datatype, Span<byte> destination, long index, string label)
    {
        switch (datatype)
        {
            case TensorDatatype.Bool:
                destination[0] = reader.TokenType switch
                {
                    JsonTokenType.True => 1,
                    JsonTokenType.False => 0,
                    _ => throw OipException.Bad($"{label}: value {Describe(ref reader)} at index {index} is not true or false (BOOL)"),
                };
                break;
            case TensorDatatype.UInt8:
                destination[0] = (byte)ReadUnsigned(ref reader, byte.MaxValue, datatype, index, label);
                break;
            case TensorDatatype.UInt16:
                BinaryPrimitives.WriteUInt16LittleEndian(destination, (ushort)ReadUnsigned(ref reader, ushort.MaxValue, datatype, index, label));
                break;
            case TensorDatatype.UInt32:
                BinaryPrimitives.WriteUInt32LittleEndian(destination, (uint)ReadUnsigned(ref reader, uint.MaxValue, datatype, index, label));
                break;
            case TensorDatatype.UInt64:
                BinaryPrimitives.WriteUInt64LittleEndian(destination, ReadUnsigned(ref reader, ulong.MaxValue, datatype, index, label));
                break;
            case TensorDatatype.Int8:
                destination[0] = (byte)(sbyte)ReadSigned(ref reader, sbyte.MinValue, sbyte.MaxValue, datatype, index, label);
                break;
            case TensorDatatype.Int16:
                BinaryPrimitives.WriteInt16LittleEndian(destination, (short)ReadSigned(ref reader, short.MinValue, short.MaxValue, datatype, index, label));
                break;
            case TensorDatatype.Int32:
                BinaryPrimitives.WriteInt32LittleEndian(destination, (int)ReadSigned(ref reader, int.MinValue, int.MaxValue, datatype, index, label));
                break;
            case TensorDatatype.Int64:
                BinaryPrimitives.WriteInt64LittleEndian(destination, ReadSigned(ref reader, long.MinValue, long.MaxValue, datatype, index, label));
                break;
            case TensorDatatype.Fp16:
                var half = (Half)ReadReal(ref reader, datatype, index, label, out var fromText);
                CheckFinite(Half.IsInfinity(half) && !fromText, ref reader, datatype, index, label);
                BinaryPrimitives.WriteHalfLittleEndian(destination, half);
                break;
            case TensorDatatype.Bf16:
                var bf16 = BFloat16Bits.FromFloat((float)ReadReal(ref reader, datatype, index, label, out fromText));
                CheckFinite(float.IsInfinity(BFloat16Bits.ToFloat(bf16)) && !fromText, ref reader, datatype, index, label);
                BinaryPrimitives.WriteUInt16LittleEndian(destination, bf16);
                break;
            case TensorDatatype.Fp32:
                var single = (float)ReadReal(ref reader, datatype, index, label, out fromText);
                CheckFinite(float.IsInfinity(single) && !fromText, ref reader, datatype, index, label);
                BinaryPrimitives.WriteSingleLittleEndian(destination, single);
                break;
            case TensorDatatype.Fp64:
                BinaryPrimitives.WriteDoubleLittleEndian(destination, ReadReal(ref reader, datatype, index, label, out _));
                break;
            default:
                throw new ArgumentOutOfRangeException(nameof(datatype), datatype, "Not a fixed-size datatype.");
        }
    }

    private static ulong ReadUnsigned(ref Utf8JsonReader reader, ulong max, TensorDatatype datatype, long index, string label)
    {
        RequireNumber(ref reader, datatype, index, label);
        if (reader.TryGetUInt64(out var value))
        {
            return value <= max ? value : throw OutOfRange(ref reader, datatype, index, label);
        }

        // "-0" is zero; any other integer that does not fit a ulong is out of range.
        if (reader.TryGetInt64(out var signed))
        {
            return signed == 0 ? 0UL : throw OutOfRange(ref reader, datatype, index, label);
        }

        throw IsIntegerText(ref reader) ? OutOfRange(ref reader, datatype, index, label) : NotInteger(ref reader, datatype, index, label);
    }

    private static long ReadSigned(ref Utf8JsonReader reader, long min, long max, TensorDatatype datatype, long index, string label)
    {
        RequireNumber(ref reader, datatype, index, label);
        if (reader.TryGetInt64(out var value))
        {
            return value >= min && value <= max ? value : throw OutOfRange(ref reader, datatype, index, label);
        }

        throw IsIntegerText(ref reader) ? OutOfRange(ref reader, datatype, index, label) : NotInteger(ref reader, datatype, index, label);
    }

    /// <summary>
    /// A JSON number as a double, or one of the strings "NaN", "Infinity" and "-Infinity" (which JSON
    /// numbers cannot express; the writer uses them for non-finite outputs). FP16 and BF16 go through
    /// double so that the value written for them (their exact float32) reads back bit for bit.
    /// </summary>
    private static double ReadReal(ref Utf8JsonReader reader, TensorDatatype datatype, long index, string label, out bool fromText)
    {
        fromText = reader.TokenType == JsonTokenType.String;
        if (fromText)
        {
            if (reader.ValueTextEquals("NaN"u8))
            {
                return double.NaN;
            }

            if (reader.ValueTextEquals("Infinity"u8))
            {
                return double.PositiveInfinity;
            }

            if (reader.ValueTextEquals("-Infinity"u8))
            {
                return double.NegativeInfinity;
            }
        }

        RequireNumber(ref reader, datatype, index, label);
        if (!reader.TryGetDouble(out var value) || double.IsInfinity(value))
        {
            throw OutOfRange(ref reader, datatype, index, label);
        }

        return value;
    }

    private static void CheckFinite(bool overflowed, ref Utf8JsonReader reader, TensorDatatype datatype, long index, string label)
    {
        if (overflowed)
        {
            throw OutOfRange(ref reader, datatype, index, label);
        }
    }

    private static void RequireNumber(ref Utf8JsonReader reader, TensorDatatype datatype, long index, string label)
    {
        if (reader.TokenType != JsonTokenType.Number)
        {
            throw OipException.Bad($"{label}: value {Describe(ref reader)} at index {index} is not a number ({datatype.ToWireName()})");
        }
    }

    /// <summary>Whether a number token has neither fraction nor exponent: an integer, if one too large for 64 bits.</summary>
    private static bool IsIntegerText(ref Utf8JsonReader reader) => reader.ValueSpan.IndexOfAny(".eE"u8) < 0;

    private static OipException OutOfRange(ref Utf8JsonReader reader, TensorDatatype datatype, long index, string label) =>
        OipException.Bad($"{label}: value {Describe(ref reader)} at index {index} is out of range for {datatype.ToWireName()}");

    private static OipException NotInteger(ref Utf8JsonReader reader, TensorDatatype datatype, long index, string label) =>
        OipException.Bad($"{label}: value {Describe(ref reader)} at index {index} is not an integer ({datatype.ToWireName()})");

    private static OipException CountMismatch(PendingTensor header, long found, long expected) =>
        OipException.Bad(
            $"{header.Label}: data holds {found} values but shape {TensorShape.Format(header.Shape)} needs {expected}");

    private static long CountValues(ReadOnlySpan<byte> data)
    {
        var reader = new Utf8JsonReader(data, Options);
        long values = 0;
        while (reader.Read())
        {
            if (reader.TokenType is not (JsonTokenType.StartArray or JsonTokenType.EndArray))
            {
                values++;
                reader.Skip();
            }
        }

        return values;
    }

    private static string Shorten(string text) =>
        text.Length <= 40 ? text : string.Concat(text.AsSpan(0, 40), "…");
}
