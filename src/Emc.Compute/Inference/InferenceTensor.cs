namespace Emc.Compute.Inference;

/// <summary>
/// A tensor as the Open Inference Protocol carries it: a datatype name (see
/// <see cref="OnnxDatatypes"/>), a shape and the raw little-endian bytes of its elements in
/// row-major order. <c>BYTES</c> tensors hold each element as a 4-byte little-endian length
/// followed by that many bytes (the protocol's binary tensor form).
/// </summary>
/// <param name="Datatype">An Open Inference Protocol datatype name such as <c>FP32</c> or <c>INT64</c>.</param>
/// <param name="Shape">The dimensions; every one is known (no -1) in a tensor that carries data.</param>
/// <param name="Data">The elements' bytes.</param>
public sealed record InferenceTensor(string Datatype, IReadOnlyList<long> Shape, ReadOnlyMemory<byte> Data);
