namespace Emc.Compute.Inference;

/// <summary>One input or output of an ONNX model as its graph declares it.</summary>
/// <param name="Name">The graph's name for the value.</param>
/// <param name="Datatype">
/// The Open Inference Protocol datatype of a tensor (see <see cref="OnnxDatatypes"/>); for a
/// value that is not a tensor, its ONNX kind (<c>SEQUENCE</c>, <c>MAP</c>, <c>OPTIONAL</c>),
/// which <see cref="OnnxSession"/> does not accept.
/// </param>
/// <param name="Shape">The dimensions, with -1 for a symbolic or unknown one (a dynamic batch).</param>
public sealed record OnnxTensorInfo(string Name, string Datatype, IReadOnlyList<long> Shape);
