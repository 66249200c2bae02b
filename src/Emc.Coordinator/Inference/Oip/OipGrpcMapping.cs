using System.Buffers.Binary;
using System.Numerics;
using System.Runtime.InteropServices;
using Emc.Core.Inference;
using Google.Protobuf;
using Google.Protobuf.Collections;
using Proto = Emc.Contracts.Inference.V2;

namespace Emc.Coordinator.Inference.Oip;

/// <summary>
/// Maps the protocol's gRPC messages to the Core types and back. Tensor data given as
/// <c>raw_input_contents</c> is used in place (the tensors point into the message's byte strings);
/// typed <c>contents</c> are range-checked and copied once into little-endian bytes. FP16 and BF16 have no
/// typed field and must come raw. Every failure is an <see cref="OipException"/> naming the tensor.
/// </summary>
internal static class OipGrpcMapping
{
    private static readonly Proto.InferTensorContents NoContents = new();

    /// <summary>The Core request of <paramref name="message"/>, checked against <paramref name="limits"/> before any tensor buffer is made.</summary>
    public static InferRequest ToRequest(Proto.ModelInferRequest message, OipLimits limits)
    {
        var inputs = message.Inputs;
        var raw = message.RawInputContents;
        if (inputs.Count == 0)
        {
            throw new OipException(OipErrorKind.BadRequest, "the request has no inputs");
        }

        if (inputs.Count > limits.MaxTensors || message.Outputs.Count > limits.MaxTensors)
        {
            throw new OipException(OipErrorKind.PayloadTooLarge, $"more than {limits.MaxTensors} inputs or outputs");
        }

        if (raw.Count > 0 && raw.Count != inputs.Count)
        {
            throw new OipException(
                OipErrorKind.BadRequest,
                $"raw_input_contents has {raw.Count} entries for {inputs.Count} inputs; when it is used it must hold every input, in order");
        }

        var tensors = new InferTensor[inputs.Count];
        long elements = 0;
        long bytes = 0;
        for (var i = 0; i < inputs.Count; i++)
        {
            var input = inputs[i];
            if (string.IsNullOrEmpty(input.Name))
            {
                throw new OipException(OipErrorKind.BadRequest, $"input {i} has no name");
            }

            if (!TensorDatatypes.TryParse(input.Datatype, out var datatype))
            {
                throw new OipException(OipErrorKind.BadRequest, $"input '{input.Name}': unknown datatype '{input.Datatype}'");
            }

            if (input.Shape.Count > limits.MaxRank)
            {
                throw new OipException(OipErrorKind.PayloadTooLarge, $"input '{input.Name}' has rank {input.Shape.Count}, more than {limits.MaxRank}");
            }

            var shape = new long[input.Shape.Count];
            input.Shape.CopyTo(shape, 0);
            if (!TensorShape.TryGetElementCount(shape, out var count, out var error))
            {
                throw new OipException(OipErrorKind.BadRequest, $"input '{input.Name}': {error}");
            }

            elements += count;
            if (count > limits.MaxTotalElements || elements > limits.MaxTotalElements)
            {
                throw new OipException(OipErrorKind.PayloadTooLarge, $"the inputs have more than {limits.MaxTotalElements} elements");
            }

            var parameters = ToParameters(input.Parameters, $"input '{input.Name}'");
            var contents = input.Contents ?? NoContents;
            InferTensor tensor;
            if (raw.Count > 0)
            {
                if (CountValues(contents) > 0)
                {
                    throw new OipException(OipErrorKind.BadRequest, $"input '{input.Name}' has both contents and raw_input_contents");
                }

                tensor = FromRaw(input.Name, datatype, shape, count, raw[i].Memory, parameters);
            }
            else
            {
                tensor = FromContents(input.Name, datatype, shape, count, contents, parameters);
            }

            bytes += tensor.ContentByteCount;
            if (bytes > limits.MaxTotalBytes)
            {
                throw new OipException(OipErrorKind.PayloadTooLarge, $"the inputs hold more than {limits.MaxTotalBytes} bytes");
            }

            tensors[i] = tensor;
        }

        var outputs = new InferRequestedOutput[message.Outputs.Count];
        for (var i = 0; i < outputs.Length; i++)
        {
            var output = message.Outputs[i];
            outputs[i] = new InferRequestedOutput(output.Name) { Parameters = ToParameters(output.Parameters, $"output '{output.Name}'") };
        }

        return new InferRequest
        {
            Id = string.IsNullOrEmpty(message.Id) ? null : message.Id,
            Parameters = ToParameters(message.Parameters, "the request"),
            Inputs = tensors,
            Outputs = outputs,
        };
    }

    /// <summary>
    /// The gRPC answer to a request: outputs in <c>raw_output_contents</c> when <paramref name="raw"/> (a
    /// request that sent raw inputs gets raw outputs, as Triton's clients expect) or when an output is FP16
    /// or BF16, which have no typed field; typed <c>contents</c> otherwise.
    /// </summary>
    public static Proto.ModelInferResponse ToMessage(InferResponse response, string? requestId, bool raw)
    {
        var message = new Proto.ModelInferResponse
        {
            ModelName = response.ModelName,
            ModelVersion = response.ModelVersion ?? string.Empty,
            Id = requestId ?? string.Empty,
        };
        AddParameters(message.Parameters, response.Parameters);
        if (!raw)
        {
            foreach (var output in response.Outputs)
            {
                raw |= output.Datatype is TensorDatatype.Fp16 or TensorDatatype.Bf16;
            }
        }

        foreach (var output in response.Outputs)
        {
            var tensor = new Proto.ModelInferResponse.Types.InferOutputTensor { Name = output.Name, Datatype = output.Datatype.ToWireName() };
            tensor.Shape.AddRange(output.Shape);
            AddParameters(tensor.Parameters, output.Parameters);
            if (raw)
            {
                message.RawOutputContents.Add(ToRaw(output));
            }
            else
            {
                tensor.Contents = ToContents(output);
            }

            message.Outputs.Add(tensor);
        }

        return message;
    }

    /// <summary>The gRPC form of model metadata.</summary>
    public static Proto.ModelMetadataResponse ToMessage(ModelMetadata metadata)
    {
        var message = new Proto.ModelMetadataResponse { Name = metadata.Name, Platform = metadata.Platform };
        message.Versions.AddRange(metadata.Versions);
        foreach (var input in metadata.Inputs)
        {
            message.Inputs.Add(ToMessage(input));
        }

        foreach (var output in metadata.Outputs)
        {
            message.Outputs.Add(ToMessage(output));
        }

        return message;
    }

    /// <summary>The bytes of <paramref name="tensor"/> in the binary layout (BYTES elements length-prefixed); fixed-size data is wrapped, not copied.</summary>
    public static ByteString ToRaw(InferTensor tensor)
    {
        ArgumentNullException.ThrowIfNull(tensor);
        return UnsafeByteOperations.UnsafeWrap(tensor.ToBinary());
    }

    private static Proto.ModelMetadataResponse.Types.TensorMetadata ToMessage(TensorMetadata tensor)
    {
        var message = new Proto.ModelMetadataResponse.Types.TensorMetadata { Name = tensor.Name, Datatype = tensor.Datatype.ToWireName() };
        message.Shape.AddRange(tensor.Shape);
        return message;
    }

    private static InferTensor FromRaw(
        string name, TensorDatatype datatype, long[] shape, long count, ReadOnlyMemory<byte> data, IReadOnlyDictionary<string, InferParameter> parameters)
    {
        if (datatype == TensorDatatype.Bytes)
        {
            return InferTensor.FromBytes(name, shape, SplitBytes(name, count, data), parameters);
        }

        var needed = count * datatype.ElementSize();
        if (data.Length != needed)
        {
            throw new OipException(
                OipErrorKind.BadRequest,
                $"input '{name}' ({datatype.ToWireName()} {TensorShape.Format(shape)}) needs {needed} bytes of raw_input_contents, not {data.Length}");
        }

        try
        {
            return InferTensor.FromRaw(name, datatype, shape, data, parameters);
        }
        catch (ArgumentException ex)
        {
            throw new OipException(OipErrorKind.BadRequest, $"input '{name}': {ex.Message}", ex);
        }
    }

    private static ReadOnlyMemory<byte>[] SplitBytes(string name, long count, ReadOnlyMemory<byte> data)
    {
        // Every element takes at least its 4-byte length, which bounds the array before it is made.
        if (count > data.Length / 4)
        {
            throw new OipException(OipErrorKind.BadRequest, $"input '{name}' (BYTES): {data.Length} bytes cannot hold {count} elements");
        }

        var elements = new ReadOnlyMemory<byte>[count];
        var offset = 0;
        var span = data.Span;
        for (var i = 0; i < elements.Length; i++)
        {
            if (span.Length - offset < 4)
            {
                throw new OipException(OipErrorKind.BadRequest, $"input '{name}' (BYTES) ends before element {i} of {count}");
            }

            var length = BinaryPrimitives.ReadUInt32LittleEndian(span[offset..]);
            offset += 4;
            if (length > (uint)(span.Length - offset))
            {
                throw new OipException(OipErrorKind.BadRequest, $"input '{name}' (BYTES) element {i} claims {length} bytes; {span.Length - offset} are left");
            }

            elements[i] = data.Slice(offset, (int)length);
            offset += (int)length;
        }

        return offset == span.Length
            ? elements
            : throw new OipException(OipErrorKind.BadRequest, $"input '{name}' (BYTES) has {span.Length - offset} bytes after its {count} elements");
    }

    private static InferTensor FromContents(
        string name, TensorDatatype datatype, long[] shape, long count, Proto.InferTensorContents contents, IReadOnlyDictionary<string, InferParameter> parameters)
    {
        var (field, given) = datatype switch
        {
            TensorDatatype.Bool => ("bool_contents", contents.BoolContents.Count),
            TensorDatatype.Int8 or TensorDatatype.Int16 or TensorDatatype.Int32 => ("int_contents", contents.IntContents.Count),
            TensorDatatype.Int64 => ("int64_contents", contents.Int64Contents.Count),
            TensorDatatype.UInt8 or TensorDatatype.UInt16 or TensorDatatype.UInt32 => ("uint_contents", contents.UintContents.Count),
            TensorDatatype.UInt64 => ("uint64_contents", contents.Uint64Contents.Count),
            TensorDatatype.Fp32 => ("fp32_contents", contents.Fp32Contents.Count),
            TensorDatatype.Fp64 => ("fp64_contents", contents.Fp64Contents.Count),
            TensorDatatype.Bytes => ("bytes_contents", contents.BytesContents.Count),
            _ => ("raw_input_contents", 0),
        };

        var all = CountValues(contents);
        if (datatype is TensorDatatype.Fp16 or TensorDatatype.Bf16 && (count > 0 || all > 0))
        {
            throw new OipException(OipErrorKind.BadRequest, $"input '{name}' is {datatype.ToWireName()}, which has no typed contents: send it in raw_input_contents");
        }

        if (given != count)
        {
            throw new OipException(
                OipErrorKind.BadRequest,
                $"input '{name}' ({datatype.ToWireName()} {TensorShape.Format(shape)}) needs {count} values in {field}, not {given}");
        }

        if (all != given)
        {
            throw new OipException(OipErrorKind.BadRequest, $"input '{name}' ({datatype.ToWireName()}) has values in contents fields other than {field}");
        }

        if (datatype == TensorDatatype.Bytes)
        {
            var elements = new ReadOnlyMemory<byte>[given];
            for (var i = 0; i < elements.Length; i++)
            {
                elements[i] = contents.BytesContents[i].Memory;
            }

            return InferTensor.FromBytes(name, shape, elements, parameters);
        }

        var data = datatype switch
        {
            TensorDatatype.Bool => Bools(contents.BoolContents),
            TensorDatatype.Int8 => Narrow<int, sbyte>(name, contents.IntContents),
            TensorDatatype.Int16 => Narrow<int, short>(name, contents.IntContents),
            TensorDatatype.Int32 => Copy(contents.IntContents),
            TensorDatatype.Int64 => Copy(contents.Int64Contents),
            TensorDatatype.UInt8 => Narrow<uint, byte>(name, contents.UintContents),
            TensorDatatype.UInt16 => Narrow<uint, ushort>(name, contents.UintContents),
            TensorDatatype.UInt32 => Copy(contents.UintContents),
            TensorDatatype.UInt64 => Copy(contents.Uint64Contents),
            TensorDatatype.Fp32 => Copy(contents.Fp32Contents),
            TensorDatatype.Fp64 => Copy(contents.Fp64Contents),
            _ => [],
        };
        return InferTensor.FromRaw(name, datatype, shape, data, parameters);
    }

    private static int CountValues(Proto.InferTensorContents contents) =>
        contents.BoolContents.Count + contents.IntContents.Count + contents.Int64Contents.Count + contents.UintContents.Count
        + contents.Uint64Contents.Count + contents.Fp32Contents.Count + contents.Fp64Contents.Count + contents.BytesContents.Count;

    private static byte[] Bools(RepeatedField<bool> values)
    {
        var bytes = new byte[values.Count];
        for (var i = 0; i < bytes.Length; i++)
        {
            bytes[i] = values[i] ? (byte)1 : (byte)0;
        }

        return bytes;
    }

    private static byte[] Copy<T>(RepeatedField<T> values)
        where T : unmanaged
    {
        var bytes = new byte[values.Count * Marshal.SizeOf<T>()];
        var target = MemoryMarshal.Cast<byte, T>(bytes.AsSpan());
        for (var i = 0; i < target.Length; i++)
        {
            target[i] = values[i];
        }

        return bytes;
    }

    private static byte[] Narrow<TFrom, TTo>(string name, RepeatedField<TFrom> values)
        where TFrom : unmanaged, IBinaryInteger<TFrom>
        where TTo : unmanaged, IBinaryInteger<TTo>, IMinMaxValue<TTo>
    {
        var bytes = new byte[values.Count * Marshal.SizeOf<TTo>()];
        var target = MemoryMarshal.Cast<byte, TTo>(bytes.AsSpan());
        var min = TFrom.CreateSaturating(TTo.MinValue);
        var max = TFrom.CreateSaturating(TTo.MaxValue);
        for (var i = 0; i < target.Length; i++)
        {
            var value = values[i];
            if (value < min || value > max)
            {
                throw new OipException(
                    OipErrorKind.BadRequest,
                    $"input '{name}': value {value} at index {i} is out of range for {InferTensorDatatype<TTo>()}");
            }

            target[i] = TTo.CreateTruncating(value);
        }

        return bytes;
    }

    private static string InferTensorDatatype<T>() =>
        typeof(T) == typeof(sbyte) ? "INT8" : typeof(T) == typeof(short) ? "INT16" : typeof(T) == typeof(byte) ? "UINT8" : "UINT16";

    private static Proto.InferTensorContents ToContents(InferTensor tensor)
    {
        var contents = new Proto.InferTensorContents();
        var data = tensor.Data.Span;
        switch (tensor.Datatype)
        {
            case TensorDatatype.Bool:
                foreach (var b in data)
                {
                    contents.BoolContents.Add(b != 0);
                }

                break;
            case TensorDatatype.Int8:
                AddWidened<sbyte, int>(contents.IntContents, data);
                break;
            case TensorDatatype.Int16:
                AddWidened<short, int>(contents.IntContents, data);
                break;
            case TensorDatatype.Int32:
                AddAll(contents.IntContents, MemoryMarshal.Cast<byte, int>(data));
                break;
            case TensorDatatype.Int64:
                AddAll(contents.Int64Contents, MemoryMarshal.Cast<byte, long>(data));
                break;
            case TensorDatatype.UInt8:
                AddWidened<byte, uint>(contents.UintContents, data);
                break;
            case TensorDatatype.UInt16:
                AddWidened<ushort, uint>(contents.UintContents, data);
                break;
            case TensorDatatype.UInt32:
                AddAll(contents.UintContents, MemoryMarshal.Cast<byte, uint>(data));
                break;
            case TensorDatatype.UInt64:
                AddAll(contents.Uint64Contents, MemoryMarshal.Cast<byte, ulong>(data));
                break;
            case TensorDatatype.Fp32:
                AddAll(contents.Fp32Contents, MemoryMarshal.Cast<byte, float>(data));
                break;
            case TensorDatatype.Fp64:
                AddAll(contents.Fp64Contents, MemoryMarshal.Cast<byte, double>(data));
                break;
            case TensorDatatype.Bytes:
                foreach (var element in tensor.Elements)
                {
                    contents.BytesContents.Add(UnsafeByteOperations.UnsafeWrap(element));
                }

                break;
            default:
                throw new InvalidOperationException($"{tensor.Datatype.ToWireName()} has no typed contents field.");
        }

        return contents;
    }

    private static void AddAll<T>(RepeatedField<T> field, ReadOnlySpan<T> values)
    {
        field.Capacity = values.Length;
        foreach (var value in values)
        {
            field.Add(value);
        }
    }

    private static void AddWidened<TFrom, TTo>(RepeatedField<TTo> field, ReadOnlySpan<byte> data)
        where TFrom : unmanaged, INumberBase<TFrom>
        where TTo : INumberBase<TTo>
    {
        var values = MemoryMarshal.Cast<byte, TFrom>(data);
        field.Capacity = values.Length;
        foreach (var value in values)
        {
            field.Add(TTo.CreateTruncating(value));
        }
    }

    private static IReadOnlyDictionary<string, InferParameter> ToParameters(MapField<string, Proto.InferParameter> parameters, string owner)
    {
        if (parameters.Count == 0)
        {
            return InferParameters.Empty;
        }

        var result = new Dictionary<string, InferParameter>(parameters.Count, StringComparer.Ordinal);
        foreach (var (key, value) in parameters)
        {
            result[key] = value.ParameterChoiceCase switch
            {
                Proto.InferParameter.ParameterChoiceOneofCase.BoolParam => InferParameter.FromBool(value.BoolParam),
                Proto.InferParameter.ParameterChoiceOneofCase.Int64Param => InferParameter.FromInt64(value.Int64Param),
                Proto.InferParameter.ParameterChoiceOneofCase.DoubleParam => InferParameter.FromDouble(value.DoubleParam),
                Proto.InferParameter.ParameterChoiceOneofCase.StringParam => InferParameter.FromString(value.StringParam),
                Proto.InferParameter.ParameterChoiceOneofCase.Uint64Param when value.Uint64Param <= long.MaxValue => InferParameter.FromInt64((long)value.Uint64Param),
                Proto.InferParameter.ParameterChoiceOneofCase.Uint64Param => InferParameter.FromDouble(value.Uint64Param),
                _ => throw new OipException(OipErrorKind.BadRequest, $"parameter '{key}' of {owner} has no value"),
            };
        }

        return result;
    }

    private static void AddParameters(MapField<string, Proto.InferParameter> target, IReadOnlyDictionary<string, InferParameter> parameters)
    {
        foreach (var (key, value) in parameters)
        {
            var message = new Proto.InferParameter();
            switch (value.Kind)
            {
                case InferParameterKind.Bool:
                    value.TryGetBool(out var flag);
                    message.BoolParam = flag;
                    break;
                case InferParameterKind.Int64:
                    value.TryGetInt64(out var integer);
                    message.Int64Param = integer;
                    break;
                case InferParameterKind.Double:
                    value.TryGetDouble(out var real);
                    message.DoubleParam = real;
                    break;
                default:
                    message.StringParam = value.ToString();
                    break;
            }

            target[key] = message;
        }
    }
}
