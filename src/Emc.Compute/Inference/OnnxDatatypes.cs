using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;

namespace Emc.Compute.Inference;

/// <summary>
/// The Open Inference Protocol (KServe v2 / Triton) datatype names, and how they map onto ONNX
/// tensor element types. ONNX <c>STRING</c> is the protocol's <c>BYTES</c>. The integer
/// constants are named by signedness and width (<see cref="I64"/> is <c>INT64</c>).
/// </summary>
public static class OnnxDatatypes
{
    public const string Bool = "BOOL";
    public const string U8 = "UINT8";
    public const string U16 = "UINT16";
    public const string U32 = "UINT32";
    public const string U64 = "UINT64";
    public const string I8 = "INT8";
    public const string I16 = "INT16";
    public const string I32 = "INT32";
    public const string I64 = "INT64";
    public const string Fp16 = "FP16";
    public const string Bf16 = "BF16";
    public const string Fp32 = "FP32";
    public const string Fp64 = "FP64";
    public const string Bytes = "BYTES";

    private static readonly Dictionary<TensorElementType, string> _names = new()
    {
        [TensorElementType.Bool] = Bool,
        [TensorElementType.UInt8] = U8,
        [TensorElementType.UInt16] = U16,
        [TensorElementType.UInt32] = U32,
        [TensorElementType.UInt64] = U64,
        [TensorElementType.Int8] = I8,
        [TensorElementType.Int16] = I16,
        [TensorElementType.Int32] = I32,
        [TensorElementType.Int64] = I64,
        [TensorElementType.Float16] = Fp16,
        [TensorElementType.BFloat16] = Bf16,
        [TensorElementType.Float] = Fp32,
        [TensorElementType.Double] = Fp64,
        [TensorElementType.String] = Bytes,
    };

    private static readonly Dictionary<string, TensorElementType> _types =
        _names.ToDictionary(p => p.Value, p => p.Key, StringComparer.Ordinal);

    /// <summary>The datatypes <see cref="OnnxSession"/> passes to and from ONNX Runtime.</summary>
    public static IReadOnlyCollection<string> All { get; } = [.. _names.Values];

    /// <summary>Bytes per element of a fixed-size datatype; 0 for <c>BYTES</c>.</summary>
    /// <exception cref="ArgumentException">The name is not a datatype of <see cref="All"/>.</exception>
    public static int ElementSize(string datatype)
    {
        _ = ToElementType(datatype); // the same error for a name ONNX Runtime cannot take
        return Core.Inference.TensorDatatypes.ElementSize(Core.Inference.TensorDatatypes.Parse(datatype));
    }

    internal static TensorElementType ToElementType(string datatype) =>
        _types.TryGetValue(datatype, out var type)
            ? type
            : throw new ArgumentException($"unknown datatype '{datatype}'; expected one of {string.Join(", ", _names.Values)}", nameof(datatype));

    internal static string FromElementType(TensorElementType type) =>
        _names.TryGetValue(type, out var name) ? name : $"ONNX_{type.ToString().ToUpperInvariant()}";

    internal static string Describe(NodeMetadata metadata) => metadata.OnnxValueType switch
    {
        OnnxValueType.ONNX_TYPE_TENSOR => FromElementType(metadata.ElementDataType),
        OnnxValueType.ONNX_TYPE_SEQUENCE => "SEQUENCE",
        OnnxValueType.ONNX_TYPE_MAP => "MAP",
        OnnxValueType.ONNX_TYPE_OPTIONAL => "OPTIONAL",
        OnnxValueType.ONNX_TYPE_SPARSETENSOR => "SPARSE_TENSOR",
        _ => metadata.OnnxValueType.ToString().ToUpperInvariant(),
    };
}
