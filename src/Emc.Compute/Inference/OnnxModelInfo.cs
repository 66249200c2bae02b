using System.Text.RegularExpressions;
using Emc.Compute.Onnx;
using Google.Protobuf;
using Microsoft.ML.OnnxRuntime;

namespace Emc.Compute.Inference;

/// <summary>
/// What an ONNX file declares about itself: its inputs and outputs (as ONNX Runtime reads them
/// from the graph), the standard operator set it binds against and who produced it.
/// </summary>
public sealed partial class OnnxModelInfo
{
    private OnnxModelInfo(
        IReadOnlyList<OnnxTensorInfo> inputs,
        IReadOnlyList<OnnxTensorInfo> outputs,
        long opset,
        long irVersion,
        string producer,
        string producerVersion,
        IReadOnlyDictionary<string, string> metadata)
    {
        Inputs = inputs;
        Outputs = outputs;
        Opset = opset;
        IrVersion = irVersion;
        Producer = producer;
        ProducerVersion = producerVersion;
        Metadata = metadata;
    }

    /// <summary>The inputs a caller must supply, in graph order (initialisers are not among them).</summary>
    public IReadOnlyList<OnnxTensorInfo> Inputs { get; }

    /// <summary>The outputs, in graph order.</summary>
    public IReadOnlyList<OnnxTensorInfo> Outputs { get; }

    /// <summary>The version of the standard (<c>ai.onnx</c>) operator set the model imports.</summary>
    public long Opset { get; }

    /// <summary>The ONNX IR version of the file.</summary>
    public long IrVersion { get; }

    /// <summary>The producer the file names (<c>emc</c> for EMC's own exports, <c>pytorch</c>, …); empty when absent.</summary>
    public string Producer { get; }

    public string ProducerVersion { get; }

    /// <summary>The model's <c>metadata_props</c>.</summary>
    public IReadOnlyDictionary<string, string> Metadata { get; }

    /// <summary>
    /// Checks that <paramref name="model"/> is an ONNX model this build of ONNX Runtime can load
    /// and describes it. The model is loaded (without graph optimisation) to read its metadata,
    /// so the cost is that of opening a session.
    /// </summary>
    /// <exception cref="InvalidDataException">
    /// The bytes are not an ONNX model, are truncated, use an operator set or IR version newer than
    /// this build supports, or ONNX Runtime rejects the graph; the message says which.
    /// </exception>
    public static OnnxModelInfo Read(byte[] model)
    {
        ArgumentNullException.ThrowIfNull(model);
        var proto = Parse(model);
        using var options = new SessionOptions { GraphOptimizationLevel = GraphOptimizationLevel.ORT_DISABLE_ALL };
        using var session = Load(model, proto, options);
        return FromSession(proto, session);
    }

    /// <summary>Reads the ONNX file at <paramref name="path"/>; see <see cref="Read(byte[])"/>.</summary>
    /// <exception cref="InvalidDataException">See <see cref="Read(byte[])"/>.</exception>
    /// <exception cref="IOException">The file cannot be read.</exception>
    public static OnnxModelInfo Read(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        return Read(File.ReadAllBytes(path));
    }

    /// <summary>
    /// Parses the bytes as a ModelProto and checks what every ONNX model has: an IR version, a
    /// graph and an operator set import. Garbage rarely survives all three.
    /// </summary>
    internal static ModelProto Parse(byte[] bytes)
    {
        if (bytes.Length == 0)
        {
            throw new InvalidDataException("not an ONNX model: the file is empty");
        }

        ModelProto proto;
        try
        {
            proto = ModelProto.Parser.ParseFrom(bytes);
        }
        catch (InvalidProtocolBufferException ex)
        {
            // A cut-off download still starts like a model: field 1 (ir_version) as a small varint.
            if (IsTruncation(ex) && StartsLikeModel(bytes))
            {
                throw new InvalidDataException($"truncated ONNX model: the file ends in the middle of a field after {bytes.Length} bytes", ex);
            }

            throw new InvalidDataException($"not an ONNX model: the bytes are not a valid ONNX protobuf ({ex.Message})", ex);
        }

        if (proto.IrVersion <= 0 || proto.IrVersion > 1000)
        {
            throw new InvalidDataException($"not an ONNX model: the IR version is {proto.IrVersion}");
        }

        if (proto.Graph is null)
        {
            throw new InvalidDataException("not an ONNX model, or a truncated one: there is no graph");
        }

        if (proto.OpsetImport.Count == 0)
        {
            throw new InvalidDataException("not an ONNX model, or a truncated one: it imports no operator set");
        }

        return proto;
    }

    /// <summary>The version of the standard operator set; 0 when the model imports only other domains.</summary>
    internal static long StandardOpset(ModelProto proto) =>
        proto.OpsetImport.Where(o => o.Domain is "" or "ai.onnx").Select(o => o.Version).DefaultIfEmpty(0).Max();

    /// <summary>Opens a session, turning ONNX Runtime's load errors into ones that say what is wrong with the file.</summary>
    internal static InferenceSession Load(byte[] bytes, ModelProto proto, SessionOptions options)
    {
        try
        {
            return new InferenceSession(bytes, options);
        }
        catch (OnnxRuntimeException ex)
        {
            var opset = StandardOpset(proto);
            var opsetLimit = OpsetLimitPattern().Match(ex.Message);
            if (opsetLimit.Success)
            {
                throw new InvalidDataException(
                    $"unsupported opset {opset} (this build supports up to {opsetLimit.Groups[1].Value}): ONNX Runtime {RuntimeVersion} said: {ex.Message}", ex);
            }

            var irLimit = IrLimitPattern().Match(ex.Message);
            if (irLimit.Success)
            {
                throw new InvalidDataException(
                    $"unsupported ONNX IR version {proto.IrVersion} (this build supports up to {irLimit.Groups[1].Value}): ONNX Runtime {RuntimeVersion} said: {ex.Message}", ex);
            }

            throw new InvalidDataException($"ONNX Runtime {RuntimeVersion} cannot load the model (opset {opset}, IR version {proto.IrVersion}): {ex.Message}", ex);
        }
    }

    internal static OnnxModelInfo FromSession(ModelProto proto, InferenceSession session)
    {
        static List<OnnxTensorInfo> Describe(IReadOnlyList<string> names, IReadOnlyDictionary<string, NodeMetadata> metadata) =>
            [.. names.Select(name =>
            {
                var value = metadata[name];
                long[] shape = value.IsTensor ? [.. value.Dimensions.Select(d => d < 0 ? -1L : d)] : [];
                return value.OnnxValueType == OnnxValueType.ONNX_TYPE_TENSOR && OnnxDatatypes.TryGetDatatype(value.ElementDataType, out var datatype)
                    ? new OnnxTensorInfo(name, datatype, shape)
                    : new OnnxTensorInfo(name, null, shape) { TypeName = TypeName(value) };
            })];

        var metadata = proto.MetadataProps
            .GroupBy(p => p.Key, StringComparer.Ordinal)
            .ToDictionary(g => g.Key, g => g.Last().Value, StringComparer.Ordinal);
        return new OnnxModelInfo(
            Describe(session.InputNames, session.InputMetadata),
            Describe(session.OutputNames, session.OutputMetadata),
            StandardOpset(proto),
            proto.IrVersion,
            proto.ProducerName,
            proto.ProducerVersion,
            metadata);
    }

    private static string RuntimeVersion => OrtEnv.Instance().GetVersionString();

    /// <summary>What ONNX calls a value that has no protocol datatype.</summary>
    private static string TypeName(NodeMetadata metadata) => metadata.OnnxValueType switch
    {
        OnnxValueType.ONNX_TYPE_TENSOR => $"ONNX_{metadata.ElementDataType.ToString().ToUpperInvariant()}",
        OnnxValueType.ONNX_TYPE_SEQUENCE => "SEQUENCE",
        OnnxValueType.ONNX_TYPE_MAP => "MAP",
        OnnxValueType.ONNX_TYPE_OPTIONAL => "OPTIONAL",
        OnnxValueType.ONNX_TYPE_SPARSETENSOR => "SPARSE_TENSOR",
        _ => metadata.OnnxValueType.ToString().ToUpperInvariant(),
    };

    private static bool IsTruncation(InvalidProtocolBufferException ex) =>
        ex.Message.Contains("ended unexpectedly", StringComparison.OrdinalIgnoreCase)
        || ex.Message.Contains("truncated", StringComparison.OrdinalIgnoreCase);

    private static bool StartsLikeModel(byte[] bytes)
    {
        // Tag 0x08 is field 1 as a varint; IR versions so far are single-byte values from 1 to 12.
        return bytes.Length >= 2 && bytes[0] == 0x08 && bytes[1] is > 0 and < 0x80;
    }

    // "Current official support for domain ai.onnx is till opset 23." (onnxruntime/core/graph/model.cc)
    [GeneratedRegex(@"till opset (\d+)", RegexOptions.CultureInvariant)]
    private static partial Regex OpsetLimitPattern();

    // "Unsupported model IR version: 99, max supported IR version: 11"
    [GeneratedRegex(@"max supported IR version: (\d+)", RegexOptions.CultureInvariant)]
    private static partial Regex IrLimitPattern();
}
