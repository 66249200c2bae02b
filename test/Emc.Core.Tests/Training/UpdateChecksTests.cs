using Emc.Core.Training;

namespace Emc.Core.Tests.Training;

public class UpdateChecksTests
{
    private const int Length = 2000;

    [Fact]
    public void Check_HonestNoisyUpdates_AcceptsAll()
    {
        for (var seed = 0; seed < 20; seed++)
        {
            var random = new Random(seed);
            var direction = TestVectors.Gaussian(random, Length);
            var updates = Enumerable.Range(0, 8)
                .Select(i => new NodeUpdate($"node{i}", TestVectors.Honest(random, direction, noise: 0.3 + (0.1 * i)), 1000 + (100 * i)))
                .ToList();

            var verdicts = UpdateChecks.Check(updates);

            Assert.All(verdicts, v => Assert.True(v.Accepted, $"seed {seed}: {v.NodeId} rejected: {v.Reason}"));
            Assert.All(verdicts, v => Assert.InRange(v.Cosine, 0.5, 1));
        }
    }

    [Fact]
    public void Check_NaN_RejectsOnlyThatUpdate()
    {
        var updates = Honest(new Random(1), 4);
        updates[1].Delta[17] = float.NaN;

        var verdicts = UpdateChecks.Check(updates);

        Assert.False(verdicts[1].Accepted);
        Assert.Equal("non-finite values", verdicts[1].Reason);
        Assert.True(double.IsNaN(verdicts[1].Norm));
        Assert.All(verdicts.Where((_, i) => i != 1), v => Assert.True(v.Accepted));
    }

    [Fact]
    public void Check_Infinity_Rejects()
    {
        var updates = Honest(new Random(2), 3);
        updates[0].Delta[0] = float.PositiveInfinity;

        Assert.Equal("non-finite values", UpdateChecks.Check(updates)[0].Reason);
    }

    [Fact]
    public void Check_HundredTimesTheNorm_Rejects()
    {
        var random = new Random(3);
        var updates = Honest(random, 5);
        updates.Add(new NodeUpdate("big", TestVectors.Scaled(updates[0].Delta, 100), 1000));

        var verdicts = UpdateChecks.Check(updates);

        Assert.False(verdicts[^1].Accepted);
        Assert.StartsWith("norm ", verdicts[^1].Reason, StringComparison.Ordinal);
        Assert.Equal(100 * verdicts[0].Norm, verdicts[^1].Norm, 0.01 * verdicts[^1].Norm);
        Assert.All(verdicts.Take(5), v => Assert.True(v.Accepted, v.Reason));
    }

    [Fact]
    public void Check_FastNodeWithThreeTimesTheStepsAndNorm_IsAcceptedButThreeTimesTheNormForTheSameWorkIsNot()
    {
        var random = new Random(4);
        var updates = Honest(random, 3);
        updates.Add(new NodeUpdate("fast", TestVectors.Scaled(updates[0].Delta, 3), 3000));
        updates.Add(new NodeUpdate("inflated", TestVectors.Scaled(updates[1].Delta, 3), 1000));

        var verdicts = UpdateChecks.Check(updates);

        Assert.True(verdicts[3].Accepted, verdicts[3].Reason);
        Assert.False(verdicts[4].Accepted);
        Assert.StartsWith("norm ", verdicts[4].Reason, StringComparison.Ordinal);
    }

    [Fact]
    public void Check_SignFlippedAmongFourHonest_RejectsAsPointingAway()
    {
        var random = new Random(4);
        var direction = Direction(random);
        var updates = Honest(random, 4, direction);
        updates.Insert(2, new NodeUpdate("flipped", TestVectors.Scaled(TestVectors.Honest(random, direction, 0.5), -1), 1000));

        var verdicts = UpdateChecks.Check(updates);

        Assert.False(verdicts[2].Accepted);
        Assert.StartsWith("points away from the round's consensus", verdicts[2].Reason, StringComparison.Ordinal);
        Assert.True(verdicts[2].Cosine < -0.5);
        Assert.All(verdicts.Where((_, i) => i != 2), v => Assert.True(v.Accepted, v.Reason));
    }

    [Fact]
    public void Check_SamplesNotPositive_Rejects()
    {
        var updates = Honest(new Random(5), 3);
        updates[2] = updates[2] with { Samples = 0 };

        var verdict = UpdateChecks.Check(updates)[2];

        Assert.False(verdict.Accepted);
        Assert.Contains("samples must be positive", verdict.Reason, StringComparison.Ordinal);
    }

    [Fact]
    public void Check_ZeroVectorWithSamples_Accepts()
    {
        var updates = Honest(new Random(6), 4);
        updates.Add(new NodeUpdate("lazy", new float[Length], 1000));

        var verdict = UpdateChecks.Check(updates)[^1];

        Assert.True(verdict.Accepted, verdict.Reason);
        Assert.Equal(0, verdict.Norm);
        Assert.True(double.IsNaN(verdict.Cosine));
    }

    [Fact]
    public void Check_TwoUpdates_SkipsTheRoundStatistics()
    {
        var updates = Honest(new Random(7), 1);
        updates.Add(new NodeUpdate("big", TestVectors.Scaled(updates[0].Delta, -100), 1000));

        var verdicts = UpdateChecks.Check(updates);

        Assert.All(verdicts, v => Assert.True(v.Accepted));
        Assert.All(verdicts, v => Assert.True(double.IsNaN(v.Cosine)));
    }

    [Fact]
    public void Check_NearlyEqualNorms_SlightlyLongerUpdateIsAccepted()
    {
        // Every norm the same but one 30% longer: the MAD is 0, and only the 1.5 × median floor keeps it.
        var random = new Random(8);
        var direction = Direction(random);
        var updates = Enumerable.Range(0, 5).Select(i => new NodeUpdate($"n{i}", Normalised(TestVectors.Honest(random, direction, 0.3)), 10)).ToList();
        updates.Add(new NodeUpdate("longer", TestVectors.Scaled(Normalised(TestVectors.Honest(random, direction, 0.3)), 1.3f), 10));
        updates.Add(new NodeUpdate("twice", TestVectors.Scaled(Normalised(TestVectors.Honest(random, direction, 0.3)), 2f), 10));

        var verdicts = UpdateChecks.Check(updates);

        Assert.True(verdicts[5].Accepted, verdicts[5].Reason);
        Assert.False(verdicts[6].Accepted);
    }

    [Fact]
    public void Check_LengthMismatch_Throws()
    {
        var updates = Honest(new Random(9), 2);
        updates.Add(new NodeUpdate("short", new float[3], 1));

        Assert.Throws<ArgumentException>(() => UpdateChecks.Check(updates));
    }

    [Fact]
    public void Check_Empty_ReturnsNoVerdicts()
    {
        Assert.Empty(UpdateChecks.Check([]));
    }

    [Fact]
    public void Check_InvalidOptions_Throws()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => UpdateChecks.Check([], new UpdateCheckOptions { NormMedianFactor = 0.5 }));
        Assert.Throws<ArgumentOutOfRangeException>(() => UpdateChecks.Check([], new UpdateCheckOptions { MinCosine = 2 }));
    }

    private static float[] Direction(Random random) => TestVectors.Gaussian(random, Length);

    private static List<NodeUpdate> Honest(Random random, int count, float[]? direction = null)
    {
        direction ??= Direction(random);
        return Enumerable.Range(0, count)
            .Select(i => new NodeUpdate($"node{i}", TestVectors.Honest(random, direction, 0.5), 1000))
            .ToList();
    }

    private static float[] Normalised(float[] values)
    {
        var norm = (float)Math.Sqrt(values.Sum(v => (double)v * v));
        return TestVectors.Scaled(values, 1 / norm);
    }
}
