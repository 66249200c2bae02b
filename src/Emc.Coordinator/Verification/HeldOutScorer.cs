using System.Numerics.Tensors;
using Emc.Compute;
using Emc.Compute.Training;
using Emc.Coordinator.Blobs;
using Emc.Core.Data;
using Emc.Core.Training;
using TorchSharp;

namespace Emc.Coordinator.Verification;

/// <summary>What a job's held-out scoring needs to know about the job.</summary>
/// <param name="Model">The model.</param>
/// <param name="Seed">The job's seed (the sample and the model's construction follow from it).</param>
/// <param name="Manifest">The dataset's manifest.</param>
/// <param name="EvalSplit">The split the job evaluates on.</param>
/// <param name="EvalFirst">The first evaluation unit (example, or window for text) within it.</param>
/// <param name="EvalCount">Evaluation units.</param>
/// <param name="IsText">Whether the dataset is a byte stream cut into windows of the model's context.</param>
/// <param name="VectorLength">Length of the job's weights vector.</param>
internal sealed record ScoringSubject(ModelSpec Model, long Seed, DatasetManifest Manifest, string EvalSplit, long EvalFirst, long EvalCount, bool IsText, long VectorLength);

/// <summary>
/// Loss-improvement scoring of one job's updates in the coordinator, the trusted party: the job's model on
/// the coordinator's CPU, and a fixed sample of its evaluation split (the same for every member and every
/// round), chosen from the job's seed and copied into one small example set at first use. Scoring a round
/// costs (members + 1) forward passes over the sample. Not thread-safe: its owner runs it on one torch thread.
/// </summary>
internal sealed class HeldOutScorer : IDisposable
{
    private readonly TrainableModel _model;
    private readonly ExampleSet _sample;
    private readonly long[] _indices;
    private readonly float[] _buffer;

    private HeldOutScorer(TrainableModel model, ExampleSet sample, long[] indices)
    {
        _model = model;
        _sample = sample;
        _indices = indices;
        _buffer = new float[model.VectorLength];
    }

    /// <summary>Examples (windows) in the sample.</summary>
    public int Examples => _indices.Length;

    /// <summary>
    /// Builds the scorer: reads the shards that hold the sampled examples from the blob store (one at a time)
    /// and the model. Torch work: call it on the scoring thread. Null when the job has no evaluation examples.
    /// </summary>
    /// <exception cref="InvalidDataException">A shard or the model file is missing or malformed.</exception>
    public static HeldOutScorer? Create(ScoringSubject subject, BlobStore blobs, int examples)
    {
        if (examples <= 0 || subject.EvalCount <= 0 || !subject.Manifest.Splits.TryGetValue(subject.EvalSplit, out var split)
            || !subject.Manifest.Splits.TryGetValue("train", out var train))
        {
            return null;
        }

        var units = Sample(subject.EvalCount, Math.Min(examples, subject.EvalCount), subject.Seed);
        var context = subject.IsText ? subject.Model.Context ?? 128 : 0;
        var reader = new ShardReader(split, blobs);
        ExampleBlock block;
        long[] indices;
        if (subject.IsText)
        {
            // Each window is context + 1 bytes (inputs and next-byte targets), laid end to end.
            var window = context + 1;
            var data = new byte[units.Length * window];
            for (var i = 0; i < units.Length; i++)
            {
                reader.CopyBytes((subject.EvalFirst + units[i]) * context, data.AsSpan(i * window, window));
            }

            block = new ExampleBlock { Count = data.Length, SampleShape = [], ElementType = ElementType.U8, Data = data };
            indices = [.. Enumerable.Range(0, units.Length).Select(i => (long)i * window)];
        }
        else
        {
            var elementBytes = split.ElementType == ElementType.F32 ? sizeof(float) : 1;
            var exampleBytes = split.SampleShape.Aggregate(1, (p, d) => p * d) * elementBytes;
            var data = new byte[units.Length * exampleBytes];
            var labels = new long[units.Length];
            for (var i = 0; i < units.Length; i++)
            {
                labels[i] = reader.CopyExample(subject.EvalFirst + units[i], data.AsSpan(i * exampleBytes, exampleBytes));
            }

            block = new ExampleBlock { Count = units.Length, SampleShape = [.. split.SampleShape], ElementType = split.ElementType, Data = data, Labels = labels };
            indices = [.. Enumerable.Range(0, units.Length).Select(i => (long)i)];
        }

        var script = subject.Model.Script is { } hash ? (blobs.Exists(hash) ? blobs.PathOf(hash) : throw new InvalidDataException($"the model file {hash} is missing")) : null;
        TorchRuntime.EnsureInitialized();
        var model = TrainableModel.Create(subject.Model, train.SampleShape, train.Classes, subject.IsText, "cpu", subject.Seed, script);
        if (model.VectorLength != subject.VectorLength)
        {
            model.Dispose();
            throw new InvalidDataException($"the model has {model.VectorLength} weights, the job {subject.VectorLength}");
        }

        return new HeldOutScorer(model, new ExampleSet(block), indices);
    }

    /// <summary>The mean held-out loss of W, and of W − Δ for each Δ (NaN for a Δ of the wrong length).</summary>
    public (double Base, double[] Losses) Score(float[] weights, IReadOnlyList<float[]> deltas)
    {
        var baseLoss = Loss(weights);
        var losses = new double[deltas.Count];
        for (var i = 0; i < deltas.Count; i++)
        {
            if (deltas[i].Length != _buffer.Length)
            {
                losses[i] = double.NaN;
                continue;
            }

            TensorPrimitives.Subtract(weights, deltas[i], _buffer);
            losses[i] = FiniteAll(_buffer) ? Loss(_buffer) : double.NaN;
        }

        return (baseLoss, losses);
    }

    public void Dispose() => _model.Dispose();

    private double Loss(float[] weights)
    {
        _model.WriteVector(weights);
        var result = Evaluator.Evaluate(_model, _sample, _indices, 256);
        return result.MeanLoss;
    }

    private static bool FiniteAll(float[] values) => TensorPrimitives.IsFiniteAll<float>(values);

    /// <summary><paramref name="count"/> distinct values of [0, <paramref name="range"/>), sorted (Floyd's algorithm: O(count) whatever the range).</summary>
    private static long[] Sample(long range, long count, long seed)
    {
        var random = new Random(unchecked((int)(seed ^ (seed >> 32) ^ 0x5C0E)));
        var chosen = new HashSet<long>();
        for (var j = range - count; j < range; j++)
        {
            var t = random.NextInt64(j + 1);
            chosen.Add(chosen.Contains(t) ? j : t);
        }

        return [.. chosen.Order()];
    }

    /// <summary>Reads examples or bytes of a split from its shards, keeping the last two shards decoded (reads come in order).</summary>
    private sealed class ShardReader(SplitManifest split, BlobStore blobs)
    {
        private readonly List<(ShardInfo Info, ExampleBlock Block)> _open = [];

        public long CopyExample(long index, Span<byte> destination)
        {
            var (info, block) = Open(index);
            var offset = (int)(index - info.First);
            block.Data.AsSpan(offset * destination.Length, destination.Length).CopyTo(destination);
            return block.Labels?[offset] ?? throw new InvalidDataException("the evaluation split has no labels");
        }

        public void CopyBytes(long start, Span<byte> destination)
        {
            while (destination.Length > 0)
            {
                var (info, block) = Open(start);
                var offset = (int)(start - info.First);
                var take = Math.Min(destination.Length, block.Count - offset);
                block.Data.AsSpan(offset, take).CopyTo(destination);
                destination = destination[take..];
                start += take;
            }
        }

        private (ShardInfo Info, ExampleBlock Block) Open(long index)
        {
            foreach (var open in _open)
            {
                if (index >= open.Info.First && index < open.Info.First + open.Info.Count)
                {
                    return open;
                }
            }

            if (index < 0 || index >= split.Count)
            {
                throw new InvalidDataException($"evaluation unit {index} is outside the split's {split.Count}");
            }

            var info = split.ShardsFor(index, 1)[0];
            var bytes = blobs.Exists(info.Sha256) ? File.ReadAllBytes(blobs.PathOf(info.Sha256)) : throw new InvalidDataException($"the shard {info.Sha256} is missing");
            var block = ShardCodec.Decode(bytes);
            if (block.Count != info.Count)
            {
                throw new InvalidDataException($"the shard {info.Sha256} holds {block.Count} examples, not {info.Count}");
            }

            _open.Add((info, block));
            if (_open.Count > 2)
            {
                _open.RemoveAt(0);
            }

            return (info, block);
        }
    }
}
