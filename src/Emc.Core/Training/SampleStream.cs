namespace Emc.Core.Training;

/// <summary>
/// The order in which a job visits its training examples: an endless stream of epochs, each a
/// permutation of [0, count) drawn from the job's seed (or file order without shuffling). The
/// coordinator hands each member a range of stream positions, so members never overlap within an
/// epoch and any node can rebuild exactly the same batches.
/// </summary>
public sealed class SampleStream
{
    private readonly long _seed;
    private readonly bool _shuffle;
    private readonly long _count;
    private long _epoch = -1;
    private long[] _permutation = [];

    public SampleStream(long seed, bool shuffle, long count)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(count, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(count, int.MaxValue);
        _seed = seed;
        _shuffle = shuffle;
        _count = count;
    }

    /// <summary>The example at stream position <paramref name="position"/>.</summary>
    public long At(long position)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(position);
        var epoch = position / _count;
        var offset = position % _count;
        if (!_shuffle)
        {
            return offset;
        }

        if (epoch != _epoch)
        {
            _permutation = Permutation(_seed, epoch, _count);
            _epoch = epoch;
        }

        return _permutation[offset];
    }

    /// <summary>The examples of <paramref name="steps"/> batches of <paramref name="batchSize"/> starting at <paramref name="start"/>.</summary>
    public IReadOnlyList<long[]> Batches(long start, int steps, int batchSize)
    {
        var batches = new List<long[]>(steps);
        var position = start;
        for (var step = 0; step < steps; step++)
        {
            var batch = new long[batchSize];
            for (var i = 0; i < batchSize; i++)
            {
                batch[i] = At(position++);
            }

            batches.Add(batch);
        }

        return batches;
    }

    /// <summary>A Fisher–Yates shuffle driven by SplitMix64, so every platform and runtime gives the same order.</summary>
    internal static long[] Permutation(long seed, long epoch, long count)
    {
        var result = new long[count];
        for (var i = 0; i < count; i++)
        {
            result[i] = i;
        }

        var state = unchecked((ulong)seed * 0x9E3779B97F4A7C15UL + (ulong)epoch * 0xD1B54A32D192ED03UL + 0x632BE59BD9B4E019UL);
        for (var i = count - 1; i > 0; i--)
        {
            var j = (long)(Next(ref state) % (ulong)(i + 1));
            (result[i], result[j]) = (result[j], result[i]);
        }

        return result;
    }

    private static ulong Next(ref ulong state)
    {
        var z = state += 0x9E3779B97F4A7C15UL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }
}
