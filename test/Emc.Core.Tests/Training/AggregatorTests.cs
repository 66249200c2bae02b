using System.Diagnostics;
using Emc.Core.Training;
using Xunit.Abstractions;

namespace Emc.Core.Tests.Training;

public class AggregatorTests(ITestOutputHelper output)
{
    [Fact]
    public void Aggregate_Mean_IsWeightedBySamples()
    {
        var result = Aggregator.Aggregate([([1f, 2f], 1), ([4f, 8f], 3)], AggregatorKind.Mean);

        Assert.Equal([3.25f, 6.5f], result);
    }

    [Fact]
    public void Aggregate_MeanOfOneUpdate_IsThatUpdate()
    {
        float[] delta = [0.1f, -3.7f, 1e-20f];

        Assert.Equal(delta, Aggregator.Aggregate([(delta, 42)], AggregatorKind.Mean));
    }

    [Fact]
    public void Aggregate_TrimmedMeanEqualWeights_DropsOneFromEachEndOfFive()
    {
        // Coordinate 0: 1 2 3 4 100 → mean of 2 3 4; coordinate 1: -50 0 1 2 3 → mean of 0 1 2.
        var result = Aggregator.Aggregate(
            [([100f, 0f], 1), ([2f, 3f], 1), ([1f, -50f], 1), ([4f, 1f], 1), ([3f, 2f], 1)],
            AggregatorKind.TrimmedMean);

        Assert.Equal([3f, 1f], result);
    }

    [Fact]
    public void Aggregate_TrimmedMeanWeighted_WeightsTheKeptValues()
    {
        // Sorted: 1 (w1) 2 (w2) 3 (w1) 4 (w3) 100 (w1); 1 and 100 go; (2·2 + 3·1 + 4·3) / 6 = 19/6.
        var result = Aggregator.Aggregate(
            [([4f], 3), ([100f], 1), ([1f], 1), ([3f], 1), ([2f], 2)],
            AggregatorKind.TrimmedMean);

        Assert.Equal(19f / 6f, result[0], 6);
    }

    [Fact]
    public void Aggregate_TrimmedMeanOfTwo_IsTheMean()
    {
        var result = Aggregator.Aggregate([([0f], 1), ([10f], 4)], AggregatorKind.TrimmedMean, trimFraction: 0.49);

        Assert.Equal(8f, result[0]);
    }

    [Fact]
    public void Aggregate_MedianOddCount_IsTheMiddleValue()
    {
        var result = Aggregator.Aggregate([([5f, -1f], 1), ([1f, -3f], 1), ([3f, -2f], 1)], AggregatorKind.Median);

        Assert.Equal([3f, -2f], result);
    }

    [Fact]
    public void Aggregate_MedianEvenCountEqualWeights_IsTheMeanOfTheTwoMiddleValues()
    {
        var result = Aggregator.Aggregate([([4f], 7), ([1f], 7), ([3f], 7), ([2f], 7)], AggregatorKind.Median);

        Assert.Equal(2.5f, result[0]);
    }

    [Theory]
    [InlineData(new double[] { 1, 1, 5 }, 3f)] // half 3.5 is first reached at 3
    [InlineData(new double[] { 5, 1, 1 }, 1f)]
    [InlineData(new double[] { 2, 1, 1 }, 1.5f)] // cumulative weight 2 is exactly half: midpoint of 1 and 2
    [InlineData(new double[] { 0.1, 0.1, 0.1, 0.1 }, 2.5f)] // exactly half despite 0.1 not adding up exactly
    public void Aggregate_MedianWeighted_IsTheLowerWeightedMedian(double[] weights, float expected)
    {
        var updates = weights.Select((w, i) => (new[] { (float)(i + 1) }, w)).ToList();

        Assert.Equal(expected, Aggregator.Aggregate(updates, AggregatorKind.Median)[0]);
    }

    [Fact]
    public void Aggregate_MedianWithOneHugeOutlierAmongFive_StaysWithTheHonestValues()
    {
        var random = new Random(21);
        var direction = TestVectors.Gaussian(random, 64);
        var updates = Enumerable.Range(0, 4).Select(_ => (TestVectors.Honest(random, direction, 0.1), 1.0)).ToList();
        updates.Insert(2, (TestVectors.Scaled(direction, -1e6f), 1.0));

        var median = Aggregator.Aggregate(updates, AggregatorKind.Median);
        var mean = Aggregator.Aggregate(updates, AggregatorKind.Mean);

        for (var j = 0; j < direction.Length; j++)
        {
            var honest = updates.Where((_, i) => i != 2).Select(u => u.Item1[j]).ToArray();
            Assert.InRange(median[j], honest.Min(), honest.Max());
        }

        Assert.True(Math.Abs(mean[0]) > 1000, "the mean, for contrast, is carried off by the outlier");
    }

    [Theory]
    [InlineData(AggregatorKind.Mean, 5)]
    [InlineData(AggregatorKind.TrimmedMean, 5)]
    [InlineData(AggregatorKind.Median, 6)]
    [InlineData(AggregatorKind.TrimmedMean, 40)] // more updates than the insertion sort handles
    [InlineData(AggregatorKind.Median, 40)]
    public void Aggregate_ManyChunksInParallel_MatchesAPlainReference(AggregatorKind kind, int count)
    {
        var random = new Random(count);
        var length = count > 32 ? 3000 : 40_000;
        var updates = Enumerable.Range(0, count)
            .Select(_ => (TestVectors.Gaussian(random, length), (double)random.Next(1, 100)))
            .ToList();

        var result = Aggregator.Aggregate(updates, kind);

        for (var j = 0; j < length; j++)
        {
            var column = updates.Select(u => (Value: (double)u.Item1[j], Weight: u.Item2)).OrderBy(c => c.Value).ToList();
            Assert.Equal(Reference(column, kind), result[j], 1e-4);
        }
    }

    [Theory]
    [InlineData(AggregatorKind.Mean)]
    [InlineData(AggregatorKind.TrimmedMean)]
    [InlineData(AggregatorKind.Median)]
    public void Aggregate_ZeroLengthDeltas_ReturnsEmpty(AggregatorKind kind)
    {
        Assert.Empty(Aggregator.Aggregate([([], 1), ([], 2), ([], 3)], kind));
    }

    [Fact]
    public void Aggregate_Empty_Throws()
    {
        Assert.Throws<ArgumentException>(() => Aggregator.Aggregate([], AggregatorKind.Mean));
    }

    [Fact]
    public void Aggregate_LengthMismatch_Throws()
    {
        Assert.Throws<ArgumentException>(() => Aggregator.Aggregate([([1f, 2f], 1), ([1f], 1)], AggregatorKind.Median));
    }

    [Theory]
    [InlineData(0.0)]
    [InlineData(-1.0)]
    [InlineData(double.NaN)]
    public void Aggregate_WeightNotPositive_Throws(double weight)
    {
        Assert.Throws<ArgumentException>(() => Aggregator.Aggregate([([1f], 1), ([1f], weight)], AggregatorKind.Mean));
    }

    [Fact]
    public void Aggregate_NonFiniteValue_Throws()
    {
        Assert.Throws<ArgumentException>(() => Aggregator.Aggregate([([1f], 1), ([float.NaN], 1)], AggregatorKind.Median));
    }

    [Theory]
    [InlineData(0.5)]
    [InlineData(-0.1)]
    public void Aggregate_TrimFractionOutOfRange_Throws(double trimFraction)
    {
        Assert.Throws<ArgumentException>(() => Aggregator.Aggregate([([1f], 1)], AggregatorKind.TrimmedMean, trimFraction));
    }

    [Fact]
    public void Aggregate_FiveMillionByEight_ReportsTimes()
    {
        const int Length = 5_000_000;
        var random = new Random(99);
        var template = TestVectors.Gaussian(random, 4096);
        var updates = Enumerable.Range(0, 8).Select(i =>
        {
            var delta = new float[Length];
            for (var j = 0; j < Length; j++)
            {
                delta[j] = template[(j * (i + 3)) & 4095];
            }

            return (delta, 1000.0 + i);
        }).ToList();

        foreach (var kind in Enum.GetValues<AggregatorKind>())
        {
            Aggregator.Aggregate(updates, kind); // warm up
            var watch = Stopwatch.StartNew();
            var result = Aggregator.Aggregate(updates, kind);
            output.WriteLine($"{kind}: {Length:N0} × {updates.Count} in {watch.Elapsed.TotalMilliseconds:F0} ms on {Environment.ProcessorCount} cores");
            Assert.Equal(Length, result.Length);
        }
    }

    private static double Reference(List<(double Value, double Weight)> sorted, AggregatorKind kind)
    {
        var total = sorted.Sum(c => c.Weight);
        switch (kind)
        {
            case AggregatorKind.Mean:
                return sorted.Sum(c => c.Value * c.Weight) / total;
            case AggregatorKind.TrimmedMean:
                var trim = (int)Math.Floor(0.2 * sorted.Count);
                var kept = sorted.Skip(trim).Take(sorted.Count - (2 * trim)).ToList();
                return kept.Sum(c => c.Value * c.Weight) / kept.Sum(c => c.Weight);
            default:
                var cumulative = 0.0;
                for (var i = 0; i < sorted.Count; i++)
                {
                    cumulative += sorted[i].Weight;
                    if (cumulative == total / 2)
                    {
                        return (sorted[i].Value + sorted[i + 1].Value) / 2;
                    }

                    if (cumulative > total / 2)
                    {
                        return sorted[i].Value;
                    }
                }

                throw new InvalidOperationException("unreachable");
        }
    }
}
