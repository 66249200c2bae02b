using Emc.Core.Inference;

namespace Emc.Compute.Inference;

/// <summary>One input or output of an ONNX model as its graph declares it.</summary>
/// <param name="Name">The graph's name for the value.</param>
/// <param name="Datatype">
/// The Open Inference Protocol datatype of a tensor; null for a value that has none (a sequence, a
/// map, an optional, or a tensor of an ONNX element type the protocol lacks), which
/// <see cref="OnnxSession"/> does not accept.
/// </param>
/// <param name="Shape">The dimensions, with -1 for a symbolic or unknown one (a dynamic batch).</param>
public sealed record OnnxTensorInfo(string Name, TensorDatatype? Datatype, IReadOnlyList<long> Shape)
{
    /// <summary>
    /// The datatype's wire name (<c>FP32</c>); for a value without a datatype, what ONNX calls it
    /// (<c>SEQUENCE</c>, <c>MAP</c>, <c>OPTIONAL</c>, <c>ONNX_COMPLEX64</c>).
    /// </summary>
    public string TypeName { get; init; } = Datatype?.ToWireName() ?? "UNKNOWN";
}
