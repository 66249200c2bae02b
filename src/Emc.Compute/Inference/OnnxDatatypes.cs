using Emc.Core.Inference;
using Microsoft.ML.OnnxRuntime.Tensors;

namespace Emc.Compute.Inference;

/// <summary>
/// How the Open Inference Protocol's datatypes (<see cref="TensorDatatype"/>) map onto ONNX tensor
/// element types. ONNX <c>STRING</c> is the protocol's <c>BYTES</c>; ONNX element types the protocol
/// has no datatype for (complex, 8-bit and 4-bit floats ...) map to none.
/// </summary>
internal static class OnnxDatatypes
{
    // Indexed by the TensorDatatype's value.
    private static readonly TensorElementType[] ElementTypes =
    [
        TensorElementType.Bool, TensorElementType.UInt8, TensorElementType.UInt16, TensorElementType.UInt32, TensorElementType.UInt64,
        TensorElementType.Int8, TensorElementType.Int16, TensorElementType.Int32, TensorElementType.Int64,
        TensorElementType.Float16, TensorElementType.Float, TensorElementType.Double, TensorElementType.String, TensorElementType.BFloat16,
    ];

    private static readonly Dictionary<TensorElementType, TensorDatatype> Datatypes =
        TensorDatatypes.All.ToDictionary(ToElementType);

    public static TensorElementType ToElementType(TensorDatatype datatype) =>
        (uint)datatype < (uint)ElementTypes.Length
            ? ElementTypes[(int)datatype]
            : throw new ArgumentOutOfRangeException(nameof(datatype), datatype, "Unknown tensor datatype.");

    /// <summary>The protocol's datatype for an ONNX element type; false when it has none.</summary>
    public static bool TryGetDatatype(TensorElementType type, out TensorDatatype datatype) => Datatypes.TryGetValue(type, out datatype);
}
