using Emc.Core.Tests.Training;
using Emc.Core.Training;
using Emc.Core.Verification;

namespace Emc.Core.Tests.Verification;

public sealed class CopyDetectionTests
{
    [Fact]
    public void Find_HonestMembersTrainingOnTheirOwnData_FlagsNobody()
    {
        var random = new Random(1);
        var direction = TestVectors.Gaussian(random, 2_000);
        var updates = Enumerable.Range(0, 5).Select(i => ($"node-{i}", TestVectors.Honest(random, direction, noise: 1))).ToList();

        Assert.Empty(CopyDetection.Find(updates, lastOuterStep: TestVectors.Gaussian(random, 2_000)));
    }

    [Fact]
    public void Find_ACopyOfAnotherMember_FlagsBothOfThePair()
    {
        var random = new Random(2);
        var direction = TestVectors.Gaussian(random, 2_000);
        var original = TestVectors.Honest(random, direction, noise: 1);
        var copy = original.Select(v => v * 1.5f + (float)(random.NextDouble() - 0.5) * 1e-3f).ToArray(); // rescaled, with a little noise
        var updates = new List<(string, float[])>
        {
            ("a", TestVectors.Honest(random, direction, noise: 1)),
            ("original", original),
            ("b", TestVectors.Honest(random, direction, noise: 1)),
            ("copy", copy),
        };

        var flags = CopyDetection.Find(updates);

        Assert.Equal(["copy", "original"], flags.Select(f => f.Node).Order());
        Assert.Equal("copy", flags.Single(f => f.Node == "original").Source);
        Assert.All(flags, f => Assert.True(f.Cosine >= 0.99, f.Reason));
    }

    [Fact]
    public void Find_TheNetworksLastOuterStep_IsFlaggedAsACopyOfIt()
    {
        var random = new Random(3);
        var direction = TestVectors.Gaussian(random, 2_000);
        var step = TestVectors.Gaussian(random, 2_000);
        var updates = new List<(string, float[])>
        {
            ("honest", TestVectors.Honest(random, direction, noise: 1)),
            ("copier", step.Select(v => v * 0.7f).ToArray()),
        };

        var flag = Assert.Single(CopyDetection.Find(updates, step));

        Assert.Equal(("copier", CopyDetection.OuterStep), (flag.Node, flag.Source));
        Assert.Contains("outer step", flag.Reason, StringComparison.Ordinal);
    }

    [Fact]
    public void Find_ZeroAndNonFiniteUpdates_AreLeftToTheOtherChecks()
    {
        var zero = new float[100];
        var nan = Enumerable.Repeat(float.NaN, 100).ToArray();

        Assert.Empty(CopyDetection.Find([("a", zero), ("b", zero), ("c", nan), ("d", nan)], zero));
    }

    [Fact]
    public void Find_VectorsOfDifferentLengths_AreRefused() =>
        Assert.Throws<ArgumentException>(() => CopyDetection.Find([("a", new float[3]), ("b", new float[4])]));
}

public sealed class ImprovementScoringTests
{
    [Fact]
    public void Judge_HonestRound_FlagsNobody()
    {
        ScoredUpdate[] updates = [new("a", 1.50, 640), new("b", 1.45, 640), new("c", 1.55, 640), new("d", 1.48, 640), new("e", 1.52, 640)];

        var verdicts = ImprovementScoring.Judge(2.30, updates);

        Assert.All(verdicts, v => Assert.False(v.Flagged, v.Reason));
        Assert.Equal(0.80, verdicts[0].Improvement, 6);
    }

    [Fact]
    public void Judge_AnUpdateThatHelpsFarLessThanTheMedian_IsFlagged()
    {
        // A lazy member: a tenth of the steps, a fraction of the gain.
        ScoredUpdate[] updates = [new("a", 1.50, 640), new("b", 1.45, 640), new("lazy", 2.10, 640), new("d", 1.48, 640)];

        var verdicts = ImprovementScoring.Judge(2.30, updates);

        Assert.Equal(["lazy"], verdicts.Where(v => v.Flagged).Select(v => v.Node));
        Assert.Contains("median", verdicts[2].Reason, StringComparison.Ordinal);
    }

    [Fact]
    public void Judge_AnUpdateThatMakesTheModelWorse_IsFlaggedEvenWithoutAMedian()
    {
        ScoredUpdate[] updates = [new("honest", 1.50, 640), new("sign-flip", 3.40, 640)];

        var verdicts = ImprovementScoring.Judge(2.30, updates);

        Assert.Equal(["sign-flip"], verdicts.Where(v => v.Flagged).Select(v => v.Node));
        Assert.Contains("worse", verdicts[1].Reason, StringComparison.Ordinal);
    }

    [Fact]
    public void Judge_AMemberWithFewerSteps_IsScaledUpAndNotFlaggedForThem()
    {
        // A slow member ran a quarter of the median's steps and gained 40 % of the median's improvement.
        ScoredUpdate[] updates = [new("a", 1.50, 640), new("b", 1.50, 640), new("c", 1.50, 640), new("slow", 1.98, 160)];

        var verdicts = ImprovementScoring.Judge(2.30, updates);

        Assert.All(verdicts, v => Assert.False(v.Flagged, v.Reason));
        Assert.Equal(0.32 * 4, verdicts[3].Scaled, 6);
    }

    [Fact]
    public void Judge_LateInTrainingWhenTheMedianIsTiny_OnlyWorseUpdatesAreFlagged()
    {
        ScoredUpdate[] updates = [new("a", 0.2999, 640), new("b", 0.3, 640), new("c", 0.29995, 640), new("noisy", 0.3003, 640)];

        var verdicts = ImprovementScoring.Judge(0.3, updates);

        Assert.All(verdicts, v => Assert.False(v.Flagged, v.Reason));
    }

    [Fact]
    public void Judge_NonFiniteLoss_IsFlagged()
    {
        var verdicts = ImprovementScoring.Judge(2.3, [new("a", 1.5, 10), new("nan", double.NaN, 10)]);

        Assert.True(verdicts[1].Flagged);
        Assert.False(verdicts[0].Flagged);
    }
}

public sealed class ReplayComparisonTests
{
    [Fact]
    public void Compare_TheSameUpdateQuantisedTwice_Agrees()
    {
        var random = new Random(4);
        var update = TestVectors.Gaussian(random, 10_000, scale: 1e-3);
        var nearly = update.Select(v => v * (1 + (float)((random.NextDouble() - 0.5) * 1e-4))).ToArray();
        var claimed = UpdateCodec.Decode(UpdateCodec.Encode(update, UpdatePrecision.Int8), update.Length);
        var replayed = UpdateCodec.Decode(UpdateCodec.Encode(nearly, UpdatePrecision.Int8), update.Length);

        var match = ReplayComparison.Compare(claimed, replayed);

        Assert.True(match.Agree, match.Evidence);
        Assert.True(match.Distance < 0.01, match.Evidence);
    }

    [Theory]
    [InlineData("sign-flip", 2.0)]
    [InlineData("scaled", 0.9)]
    [InlineData("zero", 1.0)]
    public void Compare_AFaultyUpdate_IsFarBeyondTheTolerance(string fault, double expected)
    {
        var honest = TestVectors.Gaussian(new Random(5), 1_000);
        var claimed = fault switch
        {
            "sign-flip" => TestVectors.Scaled(honest, -1),
            "scaled" => TestVectors.Scaled(honest, 10),
            _ => new float[honest.Length],
        };

        var match = ReplayComparison.Compare(claimed, honest);

        Assert.False(match.Agree);
        Assert.Equal(expected, match.Distance, 3);
    }

    [Fact]
    public void Compare_NoiseWithTheSameNorm_Disagrees()
    {
        var random = new Random(6);
        var match = ReplayComparison.Compare(TestVectors.Gaussian(random, 1_000), TestVectors.Gaussian(random, 1_000));

        Assert.False(match.Agree);
        Assert.InRange(match.Distance, 1.2, 1.6);
    }

    [Fact]
    public void Compare_NonFiniteValues_AgreeOnlyWhenBothSidesHaveThem()
    {
        float[] nan = [1, float.NaN];
        float[] finite = [1, 2];

        Assert.True(ReplayComparison.Compare(nan, nan).Agree);
        Assert.False(ReplayComparison.Compare(nan, finite).Agree);
        Assert.False(ReplayComparison.Compare(finite, nan).Agree);
        Assert.False(ReplayComparison.Compare(finite, [1f, 2f, 3f]).Agree);
        Assert.Equal(0, ReplayComparison.Compare(new float[3], new float[3]).Distance);
    }
}

public sealed class MatmulChallengeTests
{
    [Theory]
    [InlineData(10.0, 1.0, 1024, 5)]
    [InlineData(50.0, 1.0, 1024, 23)]
    [InlineData(500.0, 1.0, 2048, 29)]
    [InlineData(0.5, 1.0, 256, 15)]
    [InlineData(60_000.0, 1.0, 4096, 256)]
    public void Size_TakesAboutTheAskedTimeAtTheClaimedSpeed(double gflops, double seconds, int size, int products)
    {
        var work = MatmulChallenge.Size(gflops, seconds, seed: 1);

        Assert.Equal((size, products), (work.Size, work.Products));
        Assert.Empty(MatmulChallenge.Validate(work));
        if (products < MatmulChallenge.MaxProducts)
        {
            Assert.InRange(MatmulChallenge.SecondsAt(work, gflops), 0.8 * seconds, 1.2 * seconds);
        }
    }

    [Fact]
    public void Check_TheRightProduct_Passes_AndAnyWrongOneFails()
    {
        var work = new ChallengeWork { Seed = 42, Size = 256, Products = 3 };
        var c = MatmulChallenge.Compute(work);

        Assert.True(MatmulChallenge.Check(work, c, new Random(1)) < 1e-4);

        // One product short (a node that skipped work) ...
        var shorter = MatmulChallenge.Compute(work with { Products = 2 });
        Assert.True(MatmulChallenge.Check(work, shorter, new Random(1)) > 0.5);

        // ... one element changed ...
        var tampered = (float[])c.Clone();
        tampered[12_345] += 1;
        Assert.True(MatmulChallenge.Check(work, tampered, new Random(2)) > 1e-3);

        // ... another seed, or the wrong size.
        Assert.True(MatmulChallenge.Check(work, MatmulChallenge.Compute(work with { Seed = 43 }), new Random(3)) > 0.5);
        Assert.True(double.IsPositiveInfinity(MatmulChallenge.Check(work, new float[10], new Random(4))));
    }

    [Fact]
    public void Fill_IsDeterministic_AndScaledSoProductsKeepTheirSize()
    {
        var a = new float[256 * 256];
        var again = new float[256 * 256];
        MatmulChallenge.Fill(7, 0, 256, a);
        MatmulChallenge.Fill(7, 0, 256, again);

        Assert.Equal(a, again);
        var variance = a.Average(v => (double)v * v);
        Assert.InRange(variance, 0.9 / 256, 1.1 / 256);
        Assert.InRange(MatmulChallenge.Shift(7, 1, 256), 0, 255);
    }

    [Fact]
    public void JudgeTime_TenTimesSlowerThanClaimed_IsTooSlow_ALoadedMachineIsNot()
    {
        var work = MatmulChallenge.Size(100, 1, seed: 1);
        var expected = MatmulChallenge.SecondsAt(work, 100);

        Assert.True(MatmulChallenge.JudgeTime(work, 100, 10 * expected, tolerance: 3, graceSeconds: 1).TooSlow);
        var (tooSlow, evidence) = MatmulChallenge.JudgeTime(work, 100, 2.5 * expected, tolerance: 3, graceSeconds: 1);
        Assert.False(tooSlow, evidence);
        Assert.Contains("GFLOP/s", evidence, StringComparison.Ordinal);
    }
}

public sealed class InnerStateCodecTests
{
    [Fact]
    public void EncodeDecode_RoundTrips()
    {
        InnerStateEntry[] entries = [new(5, 3, [[1, 2, 3], [4, 5, 6]]), new(5, 2, [[7, 8], [9, 10]])];

        var (kind, decoded) = InnerStateCodec.Decode(InnerStateCodec.Encode(InnerStateKind.AdamW, entries), maxValues: 5);

        Assert.Equal(InnerStateKind.AdamW, kind);
        Assert.Equal(2, decoded.Count);
        Assert.Equal(entries[1].Moments[1], decoded[1].Moments[1]);
        Assert.Equal(5, decoded[0].Step);
    }

    [Fact]
    public void Decode_RefusesMalformedStates()
    {
        var good = InnerStateCodec.Encode(InnerStateKind.Sgd, [new InnerStateEntry(0, 2, [[1, 2]])]);

        Assert.Throws<InvalidDataException>(() => InnerStateCodec.Decode(good.AsSpan(0, good.Length - 1), 10));
        Assert.Throws<InvalidDataException>(() => InnerStateCodec.Decode([.. good, 0], 10));
        Assert.Throws<InvalidDataException>(() => InnerStateCodec.Decode(good, maxValues: 1));
        Assert.Throws<InvalidDataException>(() => InnerStateCodec.Decode("EMCW0000000000"u8.ToArray(), 10));
        var nan = InnerStateCodec.Encode(InnerStateKind.Sgd, [new InnerStateEntry(0, 2, [[1, float.NaN]])]);
        Assert.Throws<InvalidDataException>(() => InnerStateCodec.Decode(nan, 10));
        var lying = (byte[])good.Clone();
        lying[8] = 200; // claims 200 entries
        Assert.Throws<InvalidDataException>(() => InnerStateCodec.Decode(lying, 10));
    }
}
