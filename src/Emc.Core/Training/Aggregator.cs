using System.Numerics.Tensors;

namespace Emc.Core.Training;

/// <summary>How the round's accepted pseudo-gradients are combined into one.</summary>
public enum AggregatorKind
{
    /// <summary>The weighted mean: the DiLoCo default, exact data-parallel averaging when every update is honest.</summary>
    Mean,

    /// <summary>Per coordinate, drop the floor(trimFraction · k) largest and smallest values and take the weighted mean of the rest.</summary>
    TrimmedMean,

    /// <summary>Per coordinate, the weighted median: a minority of arbitrary updates cannot move it past the honest values.</summary>
    Median,
}

/// <summary>Combines a round's pseudo-gradients, weighted by the samples behind each.</summary>
public static class Aggregator
{
    /// <summary>Coordinates per unit of parallel work: 64 KiB of each update, so a chunk of all of them stays in cache.</summary>
    private const int ChunkSize = 16384;

    /// <summary>Up to this many updates a coordinate's values are sorted by insertion in stack buffers; beyond it by introsort.</summary>
    private const int InsertionSortLimit = 32;

    /// <summary>
    /// Combines <paramref name="updates"/> (deltas of one length, finite; weights finite and positive,
    /// normally the samples each node processed) coordinate by coordinate.
    /// <list type="bullet">
    /// <item><see cref="AggregatorKind.Mean"/>: Σ wᵢ·Δᵢ / Σ wᵢ.</item>
    /// <item><see cref="AggregatorKind.TrimmedMean"/>: per coordinate, sort the k values, drop
    /// t = floor(<paramref name="trimFraction"/> · k) from each end (none when k ≤ 2) and take the weighted
    /// mean of the rest. Trimming counts values, not weight.</item>
    /// <item><see cref="AggregatorKind.Median"/>: per coordinate, the lower weighted median — the
    /// smallest value whose cumulative weight reaches half the total — except that when the cumulative
    /// weight lands exactly on half, the midpoint of that value and the next is taken. With equal
    /// weights this is the textbook median: the middle value for odd k, the mean of the two middle
    /// values for even k.</item>
    /// </list>
    /// Throws <see cref="ArgumentException"/> on an empty list, a length mismatch, a non-finite value, a
    /// weight that is not finite and positive, or a trim fraction outside [0, 0.5).
    /// </summary>
    public static float[] Aggregate(IReadOnlyList<(float[] Delta, double Weight)> updates, AggregatorKind kind, double trimFraction = 0.2)
    {
        ArgumentNullException.ThrowIfNull(updates);
        if (updates.Count == 0)
        {
            throw new ArgumentException("There are no updates to aggregate.", nameof(updates));
        }

        if (!(trimFraction >= 0 && trimFraction < 0.5))
        {
            throw new ArgumentException($"The trim fraction must be in [0, 0.5), not {trimFraction}.", nameof(trimFraction));
        }

        var count = updates.Count;
        var length = updates[0].Delta?.Length ?? 0;
        var deltas = new float[count][];
        var weights = new double[count];
        var totalWeight = 0.0;
        for (var i = 0; i < count; i++)
        {
            var (delta, weight) = updates[i];
            if (delta is null || delta.Length != length)
            {
                throw new ArgumentException($"Update {i} has {delta?.Length.ToString() ?? "no"} values; update 0 has {length}.", nameof(updates));
            }

            if (!double.IsFinite(weight) || weight <= 0)
            {
                throw new ArgumentException($"Update {i} has weight {weight}; weights must be finite and positive.", nameof(updates));
            }

            if (!FiniteValues.All(delta))
            {
                throw new ArgumentException($"Update {i} has NaN or infinite values; the update checks should have dropped it.", nameof(updates));
            }

            deltas[i] = delta;
            weights[i] = weight;
            totalWeight += weight;
        }

        var result = new float[length];
        var trim = count <= 2 ? 0 : (int)Math.Floor(trimFraction * count);
        Action<int> aggregateChunk = kind switch
        {
            AggregatorKind.Mean => chunk => MeanChunk(deltas, weights, totalWeight, result, chunk),
            AggregatorKind.TrimmedMean => chunk => SortedChunk(deltas, weights, totalWeight, trim, median: false, result, chunk),
            AggregatorKind.Median => chunk => SortedChunk(deltas, weights, totalWeight, trim: 0, median: true, result, chunk),
            _ => throw new ArgumentOutOfRangeException(nameof(kind), kind, "Unknown aggregator."),
        };

        var chunks = (int)(((long)length + ChunkSize - 1) / ChunkSize);
        if (chunks > 1)
        {
            Parallel.For(0, chunks, aggregateChunk);
        }
        else if (chunks == 1)
        {
            aggregateChunk(0);
        }

        return result;
    }

    private static void MeanChunk(float[][] deltas, double[] weights, double totalWeight, float[] result, int chunk)
    {
        var start = chunk * ChunkSize;
        var output = result.AsSpan(start, Math.Min(ChunkSize, result.Length - start));
        output.Clear();
        for (var i = 0; i < deltas.Length; i++)
        {
            TensorPrimitives.MultiplyAdd(deltas[i].AsSpan(start, output.Length), (float)(weights[i] / totalWeight), output, output);
        }
    }

    private static void SortedChunk(float[][] deltas, double[] weights, double totalWeight, int trim, bool median, float[] result, int chunk)
    {
        var count = deltas.Length;
        var start = chunk * ChunkSize;
        var end = Math.Min(start + ChunkSize, result.Length);
        var small = count <= InsertionSortLimit;
        Span<float> values = small ? stackalloc float[count] : new float[count];
        Span<double> valueWeights = small ? stackalloc double[count] : new double[count];

        // The tolerance for "the cumulative weight is exactly half": weights such as 0.1 do not add up exactly.
        var half = totalWeight / 2;
        var tolerance = totalWeight * 1e-12;
        for (var j = start; j < end; j++)
        {
            for (var i = 0; i < count; i++)
            {
                values[i] = deltas[i][j];
                valueWeights[i] = weights[i];
            }

            if (small)
            {
                InsertionSort(values, valueWeights);
            }
            else
            {
                values.Sort(valueWeights);
            }

            result[j] = median
                ? WeightedMedian(values, valueWeights, half, tolerance)
                : WeightedMean(values[trim..^trim], valueWeights[trim..^trim]);
        }
    }

    private static void InsertionSort(Span<float> values, Span<double> weights)
    {
        for (var i = 1; i < values.Length; i++)
        {
            var value = values[i];
            var weight = weights[i];
            var j = i - 1;
            while (j >= 0 && values[j] > value)
            {
                values[j + 1] = values[j];
                weights[j + 1] = weights[j];
                j--;
            }

            values[j + 1] = value;
            weights[j + 1] = weight;
        }
    }

    private static float WeightedMedian(ReadOnlySpan<float> sorted, ReadOnlySpan<double> weights, double half, double tolerance)
    {
        var cumulative = 0.0;
        for (var i = 0; i < sorted.Length - 1; i++)
        {
            cumulative += weights[i];
            if (Math.Abs(cumulative - half) <= tolerance)
            {
                return (float)(((double)sorted[i] + sorted[i + 1]) / 2);
            }

            if (cumulative > half)
            {
                return sorted[i];
            }
        }

        return sorted[^1];
    }

    private static float WeightedMean(ReadOnlySpan<float> values, ReadOnlySpan<double> weights)
    {
        var sum = 0.0;
        var weight = 0.0;
        for (var i = 0; i < values.Length; i++)
        {
            sum += weights[i] * values[i];
            weight += weights[i];
        }

        return (float)(sum / weight);
    }
}
