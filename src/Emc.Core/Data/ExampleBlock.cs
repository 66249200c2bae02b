namespace Emc.Core.Data;

/// <summary>How one element of an example is stored.</summary>
public enum ElementType
{
    /// <summary>Unsigned bytes: image pixels (scaled to [0, 1] when fed to a model) or text bytes.</summary>
    U8,

    /// <summary>Little-endian IEEE 754 single precision.</summary>
    F32,
}

/// <summary>
/// Examples decoded from one dataset shard, in memory: what a node feeds to a model.
/// A classification split holds <see cref="Count"/> examples of <see cref="SampleShape"/> with one
/// label each; a text split holds <see cref="Count"/> bytes of one stream (empty sample shape, no labels).
/// </summary>
public sealed class ExampleBlock
{
    /// <summary>Examples in the block (bytes for a text split).</summary>
    public required int Count { get; init; }

    /// <summary>The shape of one example without the batch dimension, such as [28, 28] or [784]; empty for text.</summary>
    public required int[] SampleShape { get; init; }

    public required ElementType ElementType { get; init; }

    /// <summary>The raw elements, example after example: Count × product(SampleShape) × element size bytes.</summary>
    public required byte[] Data { get; init; }

    /// <summary>One class label per example, in [0, classes); null for text.</summary>
    public long[]? Labels { get; init; }

    /// <summary>Elements in one example.</summary>
    public int SampleElements => SampleShape.Aggregate(1, (product, dim) => product * dim);
}
