using System.Buffers;
using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Text.Json;
using System.Text.Unicode;

namespace Emc.Core.Inference;

/// <summary>Writes request, response and metadata documents with <see cref="Utf8JsonWriter"/>; tensor data is written flat.</summary>
internal static class OipJsonWriter
{
    // Large tensors are copied to the output in pieces so that no writer is asked for one huge span.
    private const int CopyChunk = 64 * 1024;

    public static long? WriteRequest(InferRequest request, IBufferWriter<byte> output, bool binaryInputs)
    {
        long jsonLength;
        using (var writer = new Utf8JsonWriter(output))
        {
            writer.WriteStartObject();
            if (request.Id is not null)
            {
                writer.WriteString("id", request.Id);
            }

            WriteParameters(writer, request.Parameters, binarySize: null);
            writer.WriteStartArray("inputs");
            foreach (var input in request.Inputs)
            {
                WriteTensor(writer, input, binaryInputs);
            }

            writer.WriteEndArray();
            if (request.Outputs.Count > 0)
            {
                writer.WriteStartArray("outputs");
                foreach (var requested in request.Outputs)
                {
                    writer.WriteStartObject();
                    writer.WriteString("name", requested.Name);
                    WriteParameters(writer, requested.Parameters, binarySize: null);
                    writer.WriteEndObject();
                }

                writer.WriteEndArray();
            }

            writer.WriteEndObject();
            writer.Flush();
            jsonLength = writer.BytesCommitted;
        }

        return WriteBinaryParts(request.Inputs, Enumerable.Repeat(binaryInputs, request.Inputs.Count).ToArray(), output, jsonLength);
    }

    public static long? WriteResponse(InferResponse response, IBufferWriter<byte> output, InferRequest? request)
    {
        var binary = new bool[response.Outputs.Count];
        long jsonLength;
        using (var writer = new Utf8JsonWriter(output))
        {
            writer.WriteStartObject();
            writer.WriteString("model_name", response.ModelName);
            if (response.ModelVersion is not null)
            {
                writer.WriteString("model_version", response.ModelVersion);
            }

            if (response.Id is not null)
            {
                writer.WriteString("id", response.Id);
            }

            WriteParameters(writer, response.Parameters, binarySize: null);
            writer.WriteStartArray("outputs");
            for (var i = 0; i < response.Outputs.Count; i++)
            {
                binary[i] = request?.WantsBinaryOutput(response.Outputs[i].Name) ?? false;
                WriteTensor(writer, response.Outputs[i], binary[i]);
            }

            writer.WriteEndArray();
            writer.WriteEndObject();
            writer.Flush();
            jsonLength = writer.BytesCommitted;
        }

        return WriteBinaryParts(response.Outputs, binary, output, jsonLength);
    }

    public static void WriteModelMetadata(ModelMetadata metadata, IBufferWriter<byte> output)
    {
        using var writer = new Utf8JsonWriter(output);
        writer.WriteStartObject();
        writer.WriteString("name", metadata.Name);
        writer.WriteStartArray("versions");
        foreach (var version in metadata.Versions)
        {
            writer.WriteStringValue(version);
        }

        writer.WriteEndArray();
        writer.WriteString("platform", metadata.Platform);
        WriteTensorMetadata(writer, "inputs", metadata.Inputs);
        WriteTensorMetadata(writer, "outputs", metadata.Outputs);
        writer.WriteEndObject();
    }

    public static void WriteServerMetadata(ServerMetadata metadata, IBufferWriter<byte> output)
    {
        using var writer = new Utf8JsonWriter(output);
        writer.WriteStartObject();
        writer.WriteString("name", metadata.Name);
        writer.WriteString("version", metadata.Version);
        writer.WriteStartArray("extensions");
        foreach (var extension in metadata.Extensions)
        {
            writer.WriteStringValue(extension);
        }

        writer.WriteEndArray();
        writer.WriteEndObject();
    }

    public static void WriteError(string message, IBufferWriter<byte> output)
    {
        using var writer = new Utf8JsonWriter(output);
        writer.WriteStartObject();
        writer.WriteString("error", message);
        writer.WriteEndObject();
    }

    private static void WriteTensorMetadata(Utf8JsonWriter writer, string property, IReadOnlyList<TensorMetadata> tensors)
    {
        writer.WriteStartArray(property);
        foreach (var tensor in tensors)
        {
            writer.WriteStartObject();
            writer.WriteString("name", tensor.Name);
            writer.WriteString("datatype", tensor.Datatype.ToWireName());
            WriteShape(writer, tensor.Shape);
            writer.WriteEndObject();
        }

        writer.WriteEndArray();
    }

    private static void WriteTensor(Utf8JsonWriter writer, InferTensor tensor, bool binary)
    {
        writer.WriteStartObject();
        writer.WriteString("name", tensor.Name);
        writer.WriteString("datatype", tensor.Datatype.ToWireName());
        WriteShape(writer, tensor.Shape);
        WriteParameters(writer, tensor.Parameters, binary ? tensor.BinaryByteCount : null);
        if (!binary)
        {
            writer.WritePropertyName("data");
            WriteData(writer, tensor);
        }

        writer.WriteEndObject();
    }

    private static void WriteShape(Utf8JsonWriter writer, IReadOnlyList<long> shape)
    {
        writer.WriteStartArray("shape");
        foreach (var dim in shape)
        {
            writer.WriteNumberValue(dim);
        }

        writer.WriteEndArray();
    }

    /// <summary>Writes "parameters" when there are any (or a binary size to announce).</summary>
    private static void WriteParameters(Utf8JsonWriter writer, IReadOnlyDictionary<string, InferParameter> parameters, long? binarySize)
    {
        if (parameters.Count == 0 && binarySize is null)
        {
            return;
        }

        writer.WriteStartObject("parameters");
        foreach (var (name, value) in parameters)
        {
            // The size is the transport's to state; a stale one copied from a request must not survive.
            if (name == InferParameters.BinaryDataSize)
            {
                continue;
            }

            writer.WritePropertyName(name);
            WriteParameter(writer, value);
        }

        if (binarySize is long size)
        {
            writer.WriteNumber(InferParameters.BinaryDataSize, size);
        }

        writer.WriteEndObject();
    }

    private static void WriteParameter(Utf8JsonWriter writer, InferParameter value)
    {
        if (value.TryGetBool(out var flag))
        {
            writer.WriteBooleanValue(flag);
        }
        else if (value.TryGetInt64(out var integer))
        {
            writer.WriteNumberValue(integer);
        }
        else if (value.TryGetString(out var text))
        {
            writer.WriteStringValue(text);
        }
        else if (value.TryGetDouble(out var real))
        {
            WriteReal(writer, real);
        }
    }

    private static void WriteData(Utf8JsonWriter writer, InferTensor tensor)
    {
        writer.WriteStartArray();
        var data = tensor.Data.Span;
        switch (tensor.Datatype)
        {
            case TensorDatatype.Bool:
                foreach (var value in data)
                {
                    writer.WriteBooleanValue(value != 0);
                }

                break;
            case TensorDatatype.UInt8:
                foreach (var value in data)
                {
                    writer.WriteNumberValue(value);
                }

                break;
            case TensorDatatype.UInt16:
                foreach (var value in MemoryMarshal.Cast<byte, ushort>(data))
                {
                    writer.WriteNumberValue(value);
                }

                break;
            case TensorDatatype.UInt32:
                foreach (var value in MemoryMarshal.Cast<byte, uint>(data))
                {
                    writer.WriteNumberValue(value);
                }

                break;
            case TensorDatatype.UInt64:
                foreach (var value in MemoryMarshal.Cast<byte, ulong>(data))
                {
                    writer.WriteNumberValue(value);
                }

                break;
            case TensorDatatype.Int8:
                foreach (var value in MemoryMarshal.Cast<byte, sbyte>(data))
                {
                    writer.WriteNumberValue(value);
                }

                break;
            case TensorDatatype.Int16:
                foreach (var value in MemoryMarshal.Cast<byte, short>(data))
                {
                    writer.WriteNumberValue(value);
                }

                break;
            case TensorDatatype.Int32:
                foreach (var value in MemoryMarshal.Cast<byte, int>(data))
                {
                    writer.WriteNumberValue(value);
                }

                break;
            case TensorDatatype.Int64:
                foreach (var value in MemoryMarshal.Cast<byte, long>(data))
                {
                    writer.WriteNumberValue(value);
                }

                break;
            case TensorDatatype.Fp16:
                foreach (var value in MemoryMarshal.Cast<byte, Half>(data))
                {
                    WriteReal(writer, (float)value);
                }

                break;
            case TensorDatatype.Bf16:
                foreach (var value in MemoryMarshal.Cast<byte, ushort>(data))
                {
                    WriteReal(writer, BFloat16Bits.ToFloat(value));
                }

                break;
            case TensorDatatype.Fp32:
                foreach (var value in MemoryMarshal.Cast<byte, float>(data))
                {
                    WriteReal(writer, value);
                }

                break;
            case TensorDatatype.Fp64:
                foreach (var value in MemoryMarshal.Cast<byte, double>(data))
                {
                    WriteReal(writer, value);
                }

                break;
            case TensorDatatype.Bytes:
                for (var i = 0; i < tensor.Elements.Count; i++)
                {
                    var element = tensor.Elements[i].Span;
                    if (!Utf8.IsValid(element))
                    {
                        throw new InvalidOperationException(
                            $"BYTES element {i} of '{tensor.Name}' is not UTF-8 text, which JSON cannot carry; send the tensor as binary data.");
                    }

                    writer.WriteStringValue(element);
                }

                break;
            default:
                throw new ArgumentOutOfRangeException(nameof(tensor), tensor.Datatype, "Unknown tensor datatype.");
        }

        writer.WriteEndArray();
    }

    /// <summary>A float32 in its shortest round-trip form; non-finite values, which JSON numbers cannot express, as "NaN", "Infinity" or "-Infinity".</summary>
    private static void WriteReal(Utf8JsonWriter writer, float value)
    {
        if (float.IsFinite(value))
        {
            writer.WriteNumberValue(value);
        }
        else
        {
            WriteNonFinite(writer, value);
        }
    }

    private static void WriteReal(Utf8JsonWriter writer, double value)
    {
        if (double.IsFinite(value))
        {
            writer.WriteNumberValue(value);
        }
        else
        {
            WriteNonFinite(writer, value);
        }
    }

    private static void WriteNonFinite(Utf8JsonWriter writer, double value) =>
        writer.WriteStringValue(double.IsNaN(value) ? "NaN" : value > 0 ? "Infinity" : "-Infinity");

    /// <summary>Appends the binary part (the tensors flagged in <paramref name="binary"/>); returns the JSON length when there is one, else null.</summary>
    private static long? WriteBinaryParts(IReadOnlyList<InferTensor> tensors, bool[] binary, IBufferWriter<byte> output, long jsonLength)
    {
        var any = false;
        for (var i = 0; i < tensors.Count; i++)
        {
            if (!binary[i])
            {
                continue;
            }

            var tensor = tensors[i];
            any = true;
            if (tensor.Datatype == TensorDatatype.Bytes)
            {
                foreach (var element in tensor.Elements)
                {
                    BinaryPrimitives.WriteUInt32LittleEndian(output.GetSpan(4), (uint)element.Length);
                    output.Advance(4);
                    Copy(element.Span, output);
                }
            }
            else
            {
                Copy(tensor.Data.Span, output);
            }
        }

        return any ? jsonLength : null;
    }

    private static void Copy(ReadOnlySpan<byte> source, IBufferWriter<byte> output)
    {
        while (!source.IsEmpty)
        {
            var chunk = source[..Math.Min(source.Length, CopyChunk)];
            chunk.CopyTo(output.GetSpan(chunk.Length));
            output.Advance(chunk.Length);
            source = source[chunk.Length..];
        }
    }
}
