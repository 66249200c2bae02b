using System.Runtime.InteropServices;
using Emc.Core.Data;
using TorchSharp;
using static TorchSharp.torch;

namespace Emc.Compute.Training;

/// <summary>
/// The examples a node trains or evaluates on: an ordered list of <see cref="ExampleBlock"/>s
/// (the shards it holds, in the order the coordinator numbered them) seen as one indexable
/// set, so that the coordinator can assign batches by global example index. A text set is one
/// byte stream across all its blocks; a window may cross a block boundary.
/// </summary>
public sealed class ExampleSet
{
    private readonly ExampleBlock[] _blocks;

    // _starts[i] is the global index of block i's first example; one extra entry holds Count.
    private readonly long[] _starts;

    /// <summary>Wraps <paramref name="blocks"/>, which must agree on sample shape, element type and whether they are text.</summary>
    /// <exception cref="ArgumentException">The blocks are empty, inconsistent or malformed.</exception>
    public ExampleSet(IEnumerable<ExampleBlock> blocks)
    {
        ArgumentNullException.ThrowIfNull(blocks);
        _blocks = [.. blocks];
        if (_blocks.Length == 0)
        {
            throw new ArgumentException("an example set needs at least one block", nameof(blocks));
        }

        var first = _blocks[0];
        SampleShape = [.. first.SampleShape];
        ElementType = first.ElementType;
        IsText = first.SampleShape.Length == 0 && first.Labels is null;
        SampleElements = first.SampleElements;
        _starts = new long[_blocks.Length + 1];
        for (var i = 0; i < _blocks.Length; i++)
        {
            Check(_blocks[i], i);
            _starts[i + 1] = _starts[i] + _blocks[i].Count;
        }

        Count = _starts[^1];
    }

    /// <summary>Wraps one block.</summary>
    public ExampleSet(ExampleBlock block)
        : this([block])
    {
    }

    /// <summary>Examples in the set; bytes for text.</summary>
    public long Count { get; }

    /// <summary>The shape of one example without the batch dimension; empty for text.</summary>
    public IReadOnlyList<int> SampleShape { get; }

    /// <summary>Elements in one example (1 for text).</summary>
    public int SampleElements { get; }

    public ElementType ElementType { get; }

    /// <summary>True for a byte stream (no sample shape, no labels).</summary>
    public bool IsText { get; }

    /// <summary>The label of example <paramref name="index"/> (classification sets only).</summary>
    public long Label(long index)
    {
        var (block, offset) = Locate(index);
        return block.Labels is { } labels ? labels[offset] : throw new InvalidOperationException("a text set has no labels");
    }

    /// <summary>
    /// The inputs and labels of the examples at <paramref name="indices"/>, in that order:
    /// inputs [B, ...SampleShape] float32 on <paramref name="device"/> (U8 elements divided by
    /// 255), labels [B] int64.
    /// </summary>
    /// <exception cref="InvalidOperationException">This is a text set.</exception>
    /// <exception cref="ArgumentOutOfRangeException">An index is outside the set.</exception>
    public (Tensor Input, Tensor Target) ClassificationBatch(ReadOnlySpan<long> indices, Device device)
    {
        if (IsText)
        {
            throw new InvalidOperationException("a text set is batched in windows (TextBatch)");
        }

        long[] shape = [indices.Length, .. SampleShape.Select(d => (long)d)];
        var labels = new long[indices.Length];
        Tensor input;
        if (ElementType == ElementType.U8)
        {
            // Bytes travel to the device as bytes (a quarter of the float traffic) and are scaled there.
            var bytes = new byte[indices.Length * SampleElements];
            for (var i = 0; i < indices.Length; i++)
            {
                var (block, offset) = Locate(indices[i]);
                block.Data.AsSpan(offset * SampleElements, SampleElements).CopyTo(bytes.AsSpan(i * SampleElements));
                labels[i] = block.Labels![offset];
            }

            using var raw = torch.tensor(bytes, shape, ScalarType.Byte);
            using var onDevice = raw.to(device);
            using var floats = onDevice.to_type(ScalarType.Float32);
            input = floats.div(255f);
        }
        else
        {
            var floats = new float[indices.Length * SampleElements];
            for (var i = 0; i < indices.Length; i++)
            {
                var (block, offset) = Locate(indices[i]);
                var source = block.Data.AsSpan(offset * SampleElements * sizeof(float), SampleElements * sizeof(float));
                ReadLittleEndianFloats(source, floats.AsSpan(i * SampleElements, SampleElements));
                labels[i] = block.Labels![offset];
            }

            using var cpu = torch.tensor(floats, shape);
            input = cpu.to(device);
        }

        using var cpuLabels = torch.tensor(labels);
        return (input, cpuLabels.to(device));
    }

    /// <summary>
    /// Next-byte windows: for each start p of <paramref name="starts"/>, input bytes
    /// [p, p + <paramref name="context"/>) and target bytes [p + 1, p + context + 1), both
    /// [B, context] int64 on <paramref name="device"/>.
    /// </summary>
    /// <exception cref="InvalidOperationException">This is not a text set.</exception>
    /// <exception cref="ArgumentOutOfRangeException">A window runs past the end of the stream.</exception>
    public (Tensor Input, Tensor Target) TextBatch(ReadOnlySpan<long> starts, int context, Device device)
    {
        if (!IsText)
        {
            throw new InvalidOperationException("a classification set is batched by example (ClassificationBatch)");
        }

        ArgumentOutOfRangeException.ThrowIfLessThan(context, 1);
        var window = new byte[context + 1];
        var input = new long[starts.Length * context];
        var target = new long[starts.Length * context];
        for (var i = 0; i < starts.Length; i++)
        {
            var start = starts[i];
            if (start < 0 || start + context + 1 > Count)
            {
                throw new ArgumentOutOfRangeException(nameof(starts), start, $"a window of {context} + 1 bytes must lie inside the {Count}-byte stream");
            }

            CopyBytes(start, window);
            for (var t = 0; t < context; t++)
            {
                input[(i * context) + t] = window[t];
                target[(i * context) + t] = window[t + 1];
            }
        }

        using var cpuInput = torch.tensor(input, [starts.Length, context]);
        using var cpuTarget = torch.tensor(target, [starts.Length, context]);
        return (cpuInput.to(device), cpuTarget.to(device));
    }

    private (ExampleBlock Block, int Offset) Locate(long index)
    {
        if (index < 0 || index >= Count)
        {
            throw new ArgumentOutOfRangeException(nameof(index), index, $"the set holds {Count} examples");
        }

        var position = Array.BinarySearch(_starts, index);
        var block = position >= 0 ? position : ~position - 1;

        // Empty blocks share their start with the next block; skip to the one that holds the index.
        while (_blocks[block].Count == 0 || index >= _starts[block + 1])
        {
            block++;
        }

        return (_blocks[block], (int)(index - _starts[block]));
    }

    private void CopyBytes(long start, Span<byte> destination)
    {
        while (destination.Length > 0)
        {
            var (block, offset) = Locate(start);
            var count = Math.Min(destination.Length, block.Count - offset);
            block.Data.AsSpan(offset, count).CopyTo(destination);
            destination = destination[count..];
            start += count;
        }
    }

    private static void ReadLittleEndianFloats(ReadOnlySpan<byte> source, Span<float> destination)
    {
        if (BitConverter.IsLittleEndian)
        {
            MemoryMarshal.Cast<byte, float>(source).CopyTo(destination);
            return;
        }

        for (var i = 0; i < destination.Length; i++)
        {
            destination[i] = System.Buffers.Binary.BinaryPrimitives.ReadSingleLittleEndian(source[(i * sizeof(float))..]);
        }
    }

    private void Check(ExampleBlock block, int index)
    {
        ArgumentNullException.ThrowIfNull(block);
        if (!block.SampleShape.SequenceEqual(SampleShape) || block.ElementType != ElementType
            || (block.Labels is null) != (_blocks[0].Labels is null))
        {
            throw new ArgumentException($"block {index} differs from block 0 in sample shape, element type or labels", nameof(block));
        }

        if (IsText && block.ElementType != ElementType.U8)
        {
            throw new ArgumentException("text blocks hold bytes (U8)", nameof(block));
        }

        var elementSize = block.ElementType == ElementType.F32 ? sizeof(float) : 1;
        if (block.Count < 0 || block.Data is null || block.Data.LongLength != (long)block.Count * block.SampleElements * elementSize)
        {
            throw new ArgumentException($"block {index} holds {block.Data?.LongLength ?? 0} bytes, not Count × sample elements × element size", nameof(block));
        }

        if (block.Labels is { } labels && labels.Length != block.Count)
        {
            throw new ArgumentException($"block {index} has {labels.Length} labels for {block.Count} examples", nameof(block));
        }
    }
}
