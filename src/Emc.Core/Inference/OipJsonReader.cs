using System.Text.Json;

namespace Emc.Core.Inference;

/// <summary>
/// Reads request, response and metadata documents with <see cref="Utf8JsonReader"/>. A tensor's
/// <c>data</c> may come before its <c>datatype</c> and <c>shape</c>, so the reader only notes where the
/// data array lies, and decodes it once the tensor's header is complete and checked against the limits.
/// </summary>
internal static class OipJsonReader
{
    private static readonly JsonReaderOptions Options = new() { CommentHandling = JsonCommentHandling.Disallow, MaxDepth = 64 };

    public static InferRequest ReadRequest(ReadOnlyMemory<byte> body, long? headerLength, OipLimits limits)
    {
        var (json, binary) = Split(body, headerLength);
        string? id = null;
        Dictionary<string, InferParameter>? parameters = null;
        List<PendingTensor>? inputs = null;
        List<InferRequestedOutput>? outputs = null;
        Parse(json.Span, "request", (ref Utf8JsonReader reader, string property) =>
        {
            switch (property)
            {
                case "id":
                    id = ReadString(ref reader, "id");
                    return true;
                case "parameters":
                    parameters = ReadParameters(ref reader, "request parameters");
                    return true;
                case "inputs":
                    inputs = ReadTensorHeaders(ref reader, "input", limits);
                    return true;
                case "outputs":
                    outputs = ReadRequestedOutputs(ref reader);
                    return true;
                default:
                    return false;
            }
        });

        if (inputs is null)
        {
            throw OipException.Bad("the request has no inputs");
        }

        return new InferRequest
        {
            Id = id,
            Parameters = parameters ?? InferParameters.Empty,
            Inputs = Materialize(json, binary, headerLength is not null, inputs, limits),
            Outputs = outputs ?? [],
        };
    }

    public static InferResponse ReadResponse(ReadOnlyMemory<byte> body, long? headerLength, OipLimits limits)
    {
        var (json, binary) = Split(body, headerLength);
        string? modelName = null;
        string? modelVersion = null;
        string? id = null;
        Dictionary<string, InferParameter>? parameters = null;
        List<PendingTensor>? outputs = null;
        Parse(json.Span, "response", (ref Utf8JsonReader reader, string property) =>
        {
            switch (property)
            {
                case "model_name":
                    modelName = ReadString(ref reader, "model_name");
                    return true;
                case "model_version":
                    modelVersion = ReadString(ref reader, "model_version");
                    return true;
                case "id":
                    id = ReadString(ref reader, "id");
                    return true;
                case "parameters":
                    parameters = ReadParameters(ref reader, "response parameters");
                    return true;
                case "outputs":
                    outputs = ReadTensorHeaders(ref reader, "output", limits);
                    return true;
                default:
                    return false;
            }
        });

        return new InferResponse
        {
            ModelName = modelName ?? throw OipException.Bad("the response has no model_name"),
            ModelVersion = modelVersion,
            Id = id,
            Parameters = parameters ?? InferParameters.Empty,
            Outputs = Materialize(json, binary, headerLength is not null, outputs ?? throw OipException.Bad("the response has no outputs"), limits),
        };
    }

    public static ModelMetadata ReadModelMetadata(ReadOnlySpan<byte> json)
    {
        string? name = null;
        string? platform = null;
        List<string>? versions = null;
        List<TensorMetadata>? inputs = null;
        List<TensorMetadata>? outputs = null;
        Parse(json, "model metadata", (ref Utf8JsonReader reader, string property) =>
        {
            switch (property)
            {
                case "name":
                    name = ReadString(ref reader, "name");
                    return true;
                case "platform":
                    platform = ReadString(ref reader, "platform");
                    return true;
                case "versions":
                    versions = ReadStrings(ref reader, "versions");
                    return true;
                case "inputs":
                    inputs = ReadTensorMetadata(ref reader, "input");
                    return true;
                case "outputs":
                    outputs = ReadTensorMetadata(ref reader, "output");
                    return true;
                default:
                    return false;
            }
        });

        return new ModelMetadata
        {
            Name = name ?? throw OipException.Bad("the model metadata has no name"),
            Versions = versions ?? [],
            Platform = platform ?? string.Empty,
            Inputs = inputs ?? [],
            Outputs = outputs ?? [],
        };
    }

    public static ServerMetadata ReadServerMetadata(ReadOnlySpan<byte> json)
    {
        string? name = null;
        string? version = null;
        List<string>? extensions = null;
        Parse(json, "server metadata", (ref Utf8JsonReader reader, string property) =>
        {
            switch (property)
            {
                case "name":
                    name = ReadString(ref reader, "name");
                    return true;
                case "version":
                    version = ReadString(ref reader, "version");
                    return true;
                case "extensions":
                    extensions = ReadStrings(ref reader, "extensions");
                    return true;
                default:
                    return false;
            }
        });

        return new ServerMetadata
        {
            Name = name ?? throw OipException.Bad("the server metadata has no name"),
            Version = version ?? string.Empty,
            Extensions = extensions ?? [],
        };
    }

    private delegate bool PropertyHandler(ref Utf8JsonReader reader, string property);

    /// <summary>Reads one top-level object, handing each property to <paramref name="handler"/> (unknown ones are skipped); a property may appear once.</summary>
    private static void Parse(ReadOnlySpan<byte> json, string what, PropertyHandler handler)
    {
        try
        {
            var reader = new Utf8JsonReader(json, Options);
            if (!reader.Read())
            {
                throw OipException.Bad($"the {what} body is empty");
            }

            Expect(ref reader, JsonTokenType.StartObject, $"the {what}", "an object");
            var seen = new HashSet<string>(StringComparer.Ordinal);
            while (NextProperty(ref reader, out var property))
            {
                if (!seen.Add(property))
                {
                    throw OipException.Bad($"the {what} has '{property}' more than once");
                }

                if (!handler(ref reader, property))
                {
                    reader.Skip();
                }
            }

            // Anything but whitespace after the object makes Read throw.
            reader.Read();
        }
        catch (JsonException e)
        {
            throw OipException.Bad($"invalid JSON: {e.Message}");
        }
        catch (InvalidOperationException e)
        {
            // The reader throws this for strings that are not valid UTF-8 (or hold a lone surrogate escape).
            throw OipException.Bad($"invalid JSON: {e.Message}");
        }
    }

    private static (ReadOnlyMemory<byte> Json, ReadOnlyMemory<byte> Binary) Split(ReadOnlyMemory<byte> body, long? headerLength)
    {
        if (headerLength is not long length)
        {
            return (body, ReadOnlyMemory<byte>.Empty);
        }

        if (length < 0)
        {
            throw OipException.Bad($"{OipCodec.HeaderLengthName} {length} is negative");
        }

        if (length > body.Length)
        {
            throw OipException.Bad($"{OipCodec.HeaderLengthName} {length} is larger than the body ({body.Length} bytes)");
        }

        return (body[..(int)length], body[(int)length..]);
    }

    private static List<PendingTensor> ReadTensorHeaders(ref Utf8JsonReader reader, string kind, OipLimits limits)
    {
        Expect(ref reader, JsonTokenType.StartArray, $"{kind}s", "an array");
        var tensors = new List<PendingTensor>();
        while (reader.Read() && reader.TokenType != JsonTokenType.EndArray)
        {
            if (tensors.Count == limits.MaxTensors)
            {
                throw OipException.TooLarge($"more than {limits.MaxTensors} {kind}s");
            }

            var tensor = new PendingTensor(kind, tensors.Count);
            Expect(ref reader, JsonTokenType.StartObject, tensor.Label, "an object");
            var seen = new HashSet<string>(StringComparer.Ordinal);
            while (NextProperty(ref reader, out var property))
            {
                if (!seen.Add(property))
                {
                    throw OipException.Bad($"{tensor.Label} has '{property}' more than once");
                }

                switch (property)
                {
                    case "name":
                        tensor.Name = ReadString(ref reader, $"{tensor.Label} name");
                        break;
                    case "datatype":
                        tensor.DatatypeName = ReadString(ref reader, $"{tensor.Label} datatype");
                        break;
                    case "shape":
                        tensor.Shape = ReadShape(ref reader, tensor.Label, limits.MaxRank, minimum: 0);
                        break;
                    case "parameters":
                        tensor.Parameters = ReadParameters(ref reader, $"{tensor.Label} parameters");
                        break;
                    case "data":
                        Expect(ref reader, JsonTokenType.StartArray, $"{tensor.Label} data", "an array");
                        tensor.DataStart = checked((int)reader.TokenStartIndex);
                        reader.Skip();
                        tensor.DataEnd = checked((int)reader.TokenStartIndex + 1);
                        break;
                    default:
                        reader.Skip();
                        break;
                }
            }

            tensors.Add(tensor);
        }

        return tensors;
    }

    private static List<InferTensor> Materialize(
        ReadOnlyMemory<byte> json,
        ReadOnlyMemory<byte> binary,
        bool hasHeaderLength,
        List<PendingTensor> pending,
        OipLimits limits)
    {
        var tensors = new List<InferTensor>(pending.Count);
        var names = new HashSet<string>(StringComparer.Ordinal);
        var budget = new Budget(limits);
        var cursor = 0;
        foreach (var header in pending)
        {
            if (string.IsNullOrEmpty(header.Name))
            {
                throw OipException.Bad($"{header.Label} has no name");
            }

            var label = header.Label;
            if (!names.Add(header.Name))
            {
                throw OipException.Bad($"{label} appears more than once");
            }

            if (header.DatatypeName is null)
            {
                throw OipException.Bad($"{label} has no datatype");
            }

            if (!TensorDatatypes.TryParse(header.DatatypeName, out var datatype))
            {
                throw OipException.Bad($"{label}: {TensorDatatypes.UnknownMessage(header.DatatypeName)}");
            }

            if (header.Shape is null)
            {
                throw OipException.Bad($"{label} has no shape");
            }

            if (!TensorShape.TryGetElementCount(header.Shape, out var count, out var shapeError))
            {
                throw OipException.Bad($"{label}: {shapeError}");
            }

            budget.TakeElements(count, label);
            var parameters = header.Parameters;
            long? binarySize = null;
            if (parameters is not null && parameters.Remove(InferParameters.BinaryDataSize, out var sizeParameter))
            {
                binarySize = sizeParameter.TryGetInt64(out var size) && size >= 0
                    ? size
                    : throw OipException.Bad($"{label}: binary_data_size must be a non-negative integer, not {sizeParameter}");
            }

            var hasData = header.DataStart >= 0;
            if (hasData && binarySize is not null)
            {
                throw OipException.Bad($"{label} has both data and binary_data_size");
            }

            InferTensor tensor;
            if (binarySize is long byteCount)
            {
                if (!hasHeaderLength)
                {
                    throw OipException.Bad($"{label} has binary_data_size but the body has no {OipCodec.HeaderLengthName}");
                }

                var left = binary.Length - cursor;
                if (byteCount > left)
                {
                    throw OipException.Bad($"{label}: binary_data_size {byteCount} goes past the end of the body ({left} bytes left)");
                }

                var slice = binary.Slice(cursor, (int)byteCount);
                cursor += (int)byteCount;
                tensor = datatype == TensorDatatype.Bytes
                    ? BinaryBytes(header, slice, count, parameters, budget)
                    : BinaryFixed(header, datatype, slice, count, parameters, budget);
            }
            else if (hasData)
            {
                var data = json[header.DataStart..header.DataEnd];
                tensor = datatype == TensorDatatype.Bytes
                    ? TensorDataReader.ReadBytes(header, data, count, parameters, budget)
                    : TensorDataReader.ReadFixed(header, datatype, data.Span, count, parameters, budget);
            }
            else
            {
                throw OipException.Bad($"{label} has neither data nor binary_data_size");
            }

            tensors.Add(tensor);
        }

        if (cursor != binary.Length)
        {
            throw OipException.Bad($"the body has {binary.Length - cursor} bytes after the last binary tensor");
        }

        return tensors;
    }

    private static InferTensor BinaryFixed(
        PendingTensor header,
        TensorDatatype datatype,
        ReadOnlyMemory<byte> slice,
        long count,
        Dictionary<string, InferParameter>? parameters,
        Budget budget)
    {
        var size = datatype.ElementSize();
        budget.TakeBytes(count, size, header.Label);
        if (slice.Length != count * size)
        {
            throw OipException.Bad(
                $"{header.Label}: binary_data_size {slice.Length} does not match shape {TensorShape.Format(header.Shape)} of {datatype.ToWireName()} ({count} × {size} = {count * size} bytes)");
        }

        if (datatype == TensorDatatype.Bool)
        {
            var bad = slice.Span.IndexOfAnyExcept((byte)0, (byte)1);
            if (bad >= 0)
            {
                throw OipException.Bad($"{header.Label}: BOOL value {slice.Span[bad]} at index {bad} is neither 0 nor 1");
            }
        }

        return InferTensor.Trusted(header.Name!, datatype, header.Shape!, count, slice, null, parameters);
    }

    private static InferTensor BinaryBytes(
        PendingTensor header,
        ReadOnlyMemory<byte> slice,
        long count,
        Dictionary<string, InferParameter>? parameters,
        Budget budget)
    {
        // Every element needs at least its 4-byte length, which bounds the array allocated below by the body's size.
        if (count > slice.Length / 4)
        {
            throw OipException.Bad(
                $"{header.Label}: binary_data_size {slice.Length} cannot hold {count} BYTES elements (each has a 4-byte length)");
        }

        var elements = new ReadOnlyMemory<byte>[count];
        var offset = 0;
        var span = slice.Span;
        for (var i = 0; i < elements.Length; i++)
        {
            if (span.Length - offset < 4)
            {
                throw OipException.Bad($"{header.Label}: BYTES element {i} is truncated: its 4-byte length is cut off");
            }

            var length = System.Buffers.Binary.BinaryPrimitives.ReadUInt32LittleEndian(span[offset..]);
            offset += 4;
            if (length > (uint)(span.Length - offset))
            {
                throw OipException.Bad(
                    $"{header.Label}: BYTES element {i} is truncated: it declares {length} bytes but only {span.Length - offset} remain");
            }

            budget.TakeBytes(length, 1, header.Label);
            elements[i] = slice.Slice(offset, (int)length);
            offset += (int)length;
        }

        if (offset != span.Length)
        {
            throw OipException.Bad(
                $"{header.Label}: binary_data_size {span.Length} is {span.Length - offset} bytes more than its {count} BYTES elements use");
        }

        return InferTensor.Trusted(header.Name!, TensorDatatype.Bytes, header.Shape!, count, ReadOnlyMemory<byte>.Empty, elements, parameters);
    }

    private static List<InferRequestedOutput> ReadRequestedOutputs(ref Utf8JsonReader reader)
    {
        Expect(ref reader, JsonTokenType.StartArray, "outputs", "an array");
        var outputs = new List<InferRequestedOutput>();
        var names = new HashSet<string>(StringComparer.Ordinal);
        while (reader.Read() && reader.TokenType != JsonTokenType.EndArray)
        {
            var label = $"requested output {outputs.Count}";
            Expect(ref reader, JsonTokenType.StartObject, label, "an object");
            string? name = null;
            Dictionary<string, InferParameter>? parameters = null;
            while (NextProperty(ref reader, out var property))
            {
                switch (property)
                {
                    case "name":
                        name = ReadString(ref reader, $"{label} name");
                        break;
                    case "parameters":
                        parameters = ReadParameters(ref reader, $"{label} parameters");
                        break;
                    default:
                        reader.Skip();
                        break;
                }
            }

            if (string.IsNullOrEmpty(name))
            {
                throw OipException.Bad($"{label} has no name");
            }

            if (!names.Add(name))
            {
                throw OipException.Bad($"output '{name}' is requested more than once");
            }

            outputs.Add(new InferRequestedOutput(name) { Parameters = (IReadOnlyDictionary<string, InferParameter>?)parameters ?? InferParameters.Empty });
        }

        return outputs;
    }

    private static List<TensorMetadata> ReadTensorMetadata(ref Utf8JsonReader reader, string kind)
    {
        Expect(ref reader, JsonTokenType.StartArray, $"{kind}s", "an array");
        var tensors = new List<TensorMetadata>();
        while (reader.Read() && reader.TokenType != JsonTokenType.EndArray)
        {
            var label = $"{kind} {tensors.Count}";
            Expect(ref reader, JsonTokenType.StartObject, label, "an object");
            string? name = null;
            string? datatype = null;
            long[]? shape = null;
            while (NextProperty(ref reader, out var property))
            {
                switch (property)
                {
                    case "name":
                        name = ReadString(ref reader, $"{label} name");
                        break;
                    case "datatype":
                        datatype = ReadString(ref reader, $"{label} datatype");
                        break;
                    case "shape":
                        shape = ReadShape(ref reader, label, int.MaxValue, minimum: -1);
                        break;
                    default:
                        reader.Skip();
                        break;
                }
            }

            if (string.IsNullOrEmpty(name) || datatype is null || shape is null)
            {
                throw OipException.Bad($"{label} needs a name, a datatype and a shape");
            }

            tensors.Add(new TensorMetadata(name, TensorDatatypes.Parse(datatype), shape));
        }

        return tensors;
    }

    private static long[] ReadShape(ref Utf8JsonReader reader, string label, int maxRank, long minimum)
    {
        Expect(ref reader, JsonTokenType.StartArray, $"{label} shape", "an array");
        var shape = new List<long>();
        while (reader.Read() && reader.TokenType != JsonTokenType.EndArray)
        {
            if (reader.TokenType != JsonTokenType.Number || !reader.TryGetInt64(out var dim))
            {
                throw OipException.Bad($"{label}: shape holds {TensorDataReader.Describe(ref reader)}, not an integer");
            }

            if (dim < minimum)
            {
                throw OipException.Bad($"{label}: shape dimension {dim} is {(minimum == 0 ? "negative" : "below -1")}");
            }

            if (shape.Count == maxRank)
            {
                throw OipException.Bad($"{label}: shape has more than {maxRank} dimensions");
            }

            shape.Add(dim);
        }

        return [.. shape];
    }

    private static Dictionary<string, InferParameter> ReadParameters(ref Utf8JsonReader reader, string what)
    {
        Expect(ref reader, JsonTokenType.StartObject, what, "an object");
        var parameters = new Dictionary<string, InferParameter>(StringComparer.Ordinal);
        while (NextProperty(ref reader, out var name))
        {
            InferParameter value = reader.TokenType switch
            {
                JsonTokenType.String => reader.GetString()!,
                JsonTokenType.True => true,
                JsonTokenType.False => false,
                JsonTokenType.Number when reader.TryGetInt64(out var integer) => integer,
                JsonTokenType.Number when reader.TryGetDouble(out var real) && double.IsFinite(real) => real,
                JsonTokenType.Number => throw OipException.Bad($"{what}: '{name}' is out of range"),
                _ => throw OipException.Bad($"{what}: '{name}' is {TensorDataReader.Describe(ref reader)}; a parameter is a string, a number or a boolean"),
            };
            if (!parameters.TryAdd(name, value))
            {
                throw OipException.Bad($"{what}: '{name}' appears more than once");
            }
        }

        return parameters;
    }

    private static List<string> ReadStrings(ref Utf8JsonReader reader, string what)
    {
        Expect(ref reader, JsonTokenType.StartArray, what, "an array");
        var values = new List<string>();
        while (reader.Read() && reader.TokenType != JsonTokenType.EndArray)
        {
            values.Add(ReadString(ref reader, what));
        }

        return values;
    }

    private static string ReadString(ref Utf8JsonReader reader, string what) =>
        reader.TokenType == JsonTokenType.String
            ? reader.GetString()!
            : throw OipException.Bad($"{what} must be a string, not {TensorDataReader.Describe(ref reader)}");

    /// <summary>Moves to the next property's value; false at the end of the object.</summary>
    private static bool NextProperty(ref Utf8JsonReader reader, out string name)
    {
        reader.Read();
        if (reader.TokenType == JsonTokenType.EndObject)
        {
            name = string.Empty;
            return false;
        }

        name = reader.GetString()!;
        reader.Read();
        return true;
    }

    private static void Expect(ref Utf8JsonReader reader, JsonTokenType type, string what, string expected)
    {
        if (reader.TokenType != type)
        {
            throw OipException.Bad($"{what} must be {expected}, not {TensorDataReader.Describe(ref reader)}");
        }
    }
}

/// <summary>A tensor whose JSON has been read but whose data has not been decoded yet.</summary>
internal sealed class PendingTensor(string kind, int index)
{
    public string? Name { get; set; }

    public string? DatatypeName { get; set; }

    public long[]? Shape { get; set; }

    public Dictionary<string, InferParameter>? Parameters { get; set; }

    /// <summary>Where the data array starts in the JSON; -1 when there is none.</summary>
    public int DataStart { get; set; } = -1;

    public int DataEnd { get; set; }

    public string Label => string.IsNullOrEmpty(Name) ? $"{kind} {index}" : $"{kind} '{Name}'";
}

/// <summary>What is left of the limits while one body is read.</summary>
internal sealed class Budget(OipLimits limits)
{
    private long _elements;
    private long _bytes;

    public void TakeElements(long count, string label)
    {
        if (count > limits.MaxTotalElements - _elements)
        {
            throw OipException.TooLarge($"{label}: {count} elements exceed the limit of {limits.MaxTotalElements} elements per body");
        }

        _elements += count;
    }

    public void TakeBytes(long count, int size, string label)
    {
        if (count > (limits.MaxTotalBytes - _bytes) / size)
        {
            throw OipException.TooLarge($"{label}: the tensors exceed the limit of {limits.MaxTotalBytes} bytes per body");
        }

        _bytes += count * size;
    }
}
