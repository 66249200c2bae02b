using Emc.Core.Inference;
using Emc.Core.Verification;

namespace Emc.Core.Tests.Verification;

public sealed class FaultSimulationTests
{
    [Theory]
    [InlineData("sign-flip", FaultMode.SignFlip, 1.0)]
    [InlineData("random", FaultMode.Random, 1.0)]
    [InlineData("scaled", FaultMode.Scaled, 1.0)]
    [InlineData("lazy", FaultMode.Lazy, 1.0)]
    [InlineData("copy", FaultMode.Copy, 1.0)]
    [InlineData("wrong-output", FaultMode.WrongOutput, 0.1)]
    [InlineData("Wrong-Output:0.25", FaultMode.WrongOutput, 0.25)]
    [InlineData("overstated-hardware", FaultMode.OverstatedHardware, 1.0)]
    [InlineData("withhold-state", FaultMode.WithholdState, 1.0)]
    [InlineData("lazy:0.5", FaultMode.Lazy, 0.5)]
    public void Parse_ReadsEveryModeAndFraction(string text, FaultMode mode, double fraction)
    {
        var fault = FaultSimulation.Parse(text);

        Assert.Equal((mode, fraction), (fault.Mode, fault.Fraction));
        Assert.Equal(fault, FaultSimulation.Parse(fault.ToString()));
    }

    [Theory]
    [InlineData("")]
    [InlineData("none")]
    [InlineData("flip")]
    [InlineData("wrong-output:0")]
    [InlineData("wrong-output:1.5")]
    [InlineData("wrong-output:abc")]
    [InlineData("wrong-output:NaN")]
    public void Parse_RefusesAnythingElse(string text)
    {
        var error = Assert.Throws<FormatException>(() => FaultSimulation.Parse(text));

        Assert.True(error.Message.Contains("sign-flip", StringComparison.Ordinal) || error.Message.Contains("(0, 1]", StringComparison.Ordinal), error.Message);
    }

    [Fact]
    public void Strikes_HitsTheGivenFractionOfDraws()
    {
        var fault = new FaultSimulation(FaultMode.WrongOutput, 0.25);

        Assert.True(fault.Strikes(0.2));
        Assert.False(fault.Strikes(0.3));
        Assert.False(new FaultSimulation(FaultMode.None).Strikes(0));
    }
}

public sealed class AuditPolicyTests
{
    [Fact]
    public void Rate_AlwaysDuringWarmup_ThenOneOverRecord_NeverBelowTheFloor()
    {
        var policy = AuditPolicy.Inference;

        Assert.Equal(1, policy.Rate(0));
        Assert.Equal(1, policy.Rate(9));
        Assert.Equal(0.1, policy.Rate(10), 12);
        Assert.Equal(0.05, policy.Rate(20), 12);
        Assert.Equal(0.05, policy.Rate(1_000_000), 12);
        Assert.Equal(1, AuditPolicy.Training.Rate(1));
        Assert.Equal(0.5, AuditPolicy.Training.Rate(2), 12);
    }

    [Fact]
    public void DetectionProbability_TheFloorCatchesATenPercentCheatWithinAThousand()
    {
        var p = AuditPolicy.Inference.DetectionProbability(0.10, 1000);

        Assert.Equal(1 - Math.Pow(0.995, 1000), p, 12);
        Assert.True(p >= 0.99, $"{p}");
    }

    /// <summary>
    /// The policy played out, seeded: a node that built a long honest record (the floor applies) and then
    /// corrupts 10 % of its answers is caught within 1,000 answers in at least 99 % of 4,000 trials; an honest
    /// new node's checks cost less than 10 % of its first 1,000 answers.
    /// </summary>
    [Fact]
    public void Simulation_DetectsCheatersAndCostsLittle()
    {
        var policy = AuditPolicy.Inference;
        var random = new Random(2026);
        const int Trials = 4000;
        var caught = 0;
        for (var trial = 0; trial < Trials; trial++)
        {
            long record = 100_000;
            for (var answer = 0; answer < 1000; answer++)
            {
                var wrong = random.NextDouble() < 0.10;
                if (random.NextDouble() < policy.Rate(record))
                {
                    if (wrong)
                    {
                        caught++;
                        break;
                    }

                    record++;
                }
            }
        }

        Assert.True(caught >= 0.99 * Trials, $"caught {caught} of {Trials}");

        long checks = 0;
        long honestRecord = 0;
        for (var answer = 0; answer < 1000; answer++)
        {
            if (random.NextDouble() < policy.Rate(honestRecord))
            {
                checks++;
                honestRecord++;
            }
        }

        Assert.True(checks < 100, $"{checks} checks of 1000 answers");
        Assert.True(checks >= 50, $"{checks} checks of 1000 answers: the floor alone gives 50");
    }

    [Fact]
    public void Validate_RefusesBadSettings()
    {
        Assert.NotEmpty(new AuditPolicy { Floor = 0 }.Validate());
        Assert.NotEmpty(new AuditPolicy { Floor = 1.5 }.Validate());
        Assert.NotEmpty(new AuditPolicy { Warmup = -1 }.Validate());
        Assert.Empty(AuditPolicy.Inference.Validate());
    }
}

public sealed class TrustBookTests
{
    [Fact]
    public void Record_CountsOutcomes_AndAFaultResetsTheRecordAndHalvesReputation()
    {
        var book = new TrustBook();
        var changes = new List<(string, double)>();
        book.ReputationChanged += (node, value) => changes.Add((node, value));

        for (var i = 0; i < 12; i++)
        {
            book.Record("0xa", "model:m:1", VerifiedOutcome.Valid);
        }

        Assert.Equal(new TrustRecord("0xa", "model:m:1", 12, 12, 0, 0), book.Get("0xa", "model:m:1"));
        Assert.Equal(1.0 / 12, book.AuditRate("0xa", "model:m:1", AuditPolicy.Inference), 12);
        var before = book.Reputation("0xa");
        Assert.True(before > 0.5);

        var after = book.Record("0xa", "model:m:1", VerifiedOutcome.Fault);

        Assert.Equal(new TrustRecord("0xa", "model:m:1", 0, 12, 1, 0), after);
        Assert.Equal(1, book.AuditRate("0xa", "model:m:1", AuditPolicy.Inference));
        Assert.Equal(before * 0.5, book.Reputation("0xa"), 12);
        Assert.Equal(13, changes.Count);

        // Another scope keeps its own record; the reputation is the node's.
        Assert.Equal(0, book.Get("0xa", "training").Consecutive);
        Assert.Equal(0.5, book.Reputation("0xb"));
    }

    [Fact]
    public void Disputed_ResetsTheRecord_ButNotTheReputation()
    {
        var book = new TrustBook();
        book.Record("0xa", "s", VerifiedOutcome.Valid);
        var reputation = book.Reputation("0xa");

        var record = book.Record("0xa", "s", VerifiedOutcome.Disputed);

        Assert.Equal((0L, 1L), (record.Consecutive, record.Disputes));
        Assert.Equal(reputation, book.Reputation("0xa"));
    }

    [Fact]
    public void Restore_PutsBackRecordsAndReputations()
    {
        var book = new TrustBook();
        book.Restore([new TrustRecord("0xa", "s", 30, 40, 1, 2)], [new KeyValuePair<string, double>("0xa", 0.9)]);

        Assert.Equal(30, book.Get("0xa", "s").Consecutive);
        Assert.Equal(0.9, book.Reputation("0xa"));
        Assert.Single(book.Records());
        Assert.Throws<ArgumentException>(() => new TrustBook(new TrustOptions { FaultPenalty = 0 }));
    }

    [Fact]
    public void Snapshot_RestoredIntoANewBook_GivesTheSameRecordsReputationsAndAuditRates()
    {
        var book = new TrustBook();
        for (var i = 0; i < 15; i++)
        {
            book.Record("0xa", "model:m:1", VerifiedOutcome.Valid);
        }

        book.Record("0xa", "training", VerifiedOutcome.Valid);
        book.Record("0xb", "training", VerifiedOutcome.Valid);
        book.Record("0xb", "training", VerifiedOutcome.Fault);
        book.Record("0xc", "hardware", VerifiedOutcome.Disputed);

        var snapshot = book.Snapshot();
        var restored = new TrustBook();
        restored.Restore(snapshot);

        Assert.Equal(book.Records(), restored.Records());
        Assert.Equal(["0xa", "0xb", "0xc"], snapshot.Reputations.Keys.Order(StringComparer.Ordinal));
        foreach (var node in new[] { "0xa", "0xb", "0xc", "0xd" })
        {
            Assert.Equal(book.Reputation(node), restored.Reputation(node));
            foreach (var scope in new[] { "model:m:1", "training", "hardware" })
            {
                Assert.Equal(book.Get(node, scope), restored.Get(node, scope));
                Assert.Equal(book.AuditRate(node, scope, AuditPolicy.Inference), restored.AuditRate(node, scope, AuditPolicy.Inference));
            }
        }

        // The restored book goes on from where the first one was: the next verdict moves both alike.
        Assert.Equal(book.Record("0xa", "model:m:1", VerifiedOutcome.Valid), restored.Record("0xa", "model:m:1", VerifiedOutcome.Valid));
        Assert.Equal(book.Reputation("0xa"), restored.Reputation("0xa"));

        // A snapshot is a copy: later verdicts do not change it.
        Assert.Equal(15, snapshot.Records.Single(r => r.Node == "0xa" && r.Scope == "model:m:1").Consecutive);
    }

    [Fact]
    public void Restore_ReplacesWhatIsHeld_AndRaisesNoEvents()
    {
        var book = new TrustBook();
        book.Record("0xold", "s", VerifiedOutcome.Valid);
        var events = 0;
        book.Recorded += (_, _) => events++;
        book.ReputationChanged += (_, _) => events++;

        book.Restore(new TrustSnapshot([new TrustRecord("0xa", "s", 3, 4, 0, 1)], new Dictionary<string, double> { ["0xa"] = 0.7 }));

        Assert.Equal(0, events);
        Assert.Equal(new TrustRecord("0xold", "s", 0, 0, 0, 0), book.Get("0xold", "s"));
        Assert.Equal(0.5, book.Reputation("0xold"));
        Assert.Equal(0.7, book.Reputation("0xa"));
        Assert.Equal(new TrustRecord("0xa", "s", 3, 4, 0, 1), Assert.Single(book.Snapshot().Records));

        book.Restore(TrustSnapshot.Empty);
        Assert.Empty(book.Records());
        Assert.Empty(book.Reputations());
    }

    [Fact]
    public void Restore_InvalidInput_Throws_AndKeepsWhatWasHeld()
    {
        var book = new TrustBook();
        book.Record("0xa", "s", VerifiedOutcome.Valid);
        var before = book.Snapshot();
        var noReputations = new Dictionary<string, double>();

        Assert.Throws<ArgumentException>(() => book.Restore([new TrustRecord("", "s", 0, 0, 0, 0)], noReputations));
        Assert.Throws<ArgumentException>(() => book.Restore([new TrustRecord("0xa", "", 0, 0, 0, 0)], noReputations));
        Assert.Throws<ArgumentException>(() => book.Restore([new TrustRecord("0xa", "s", -1, 0, 0, 0)], noReputations));
        Assert.Throws<ArgumentException>(() => book.Restore([], new Dictionary<string, double> { ["0xa"] = 1.5 }));
        Assert.Throws<ArgumentException>(() => book.Restore([], new Dictionary<string, double> { ["0xa"] = double.NaN }));
        Assert.Throws<ArgumentNullException>(() => book.Restore(null!));

        Assert.Equal(before.Records, book.Records());
        Assert.Equal(before.Reputations, book.Reputations());
    }

    [Fact]
    public void Recorded_IsRaisedForEveryVerdict_WithTheNewRecordAndReputation()
    {
        var book = new TrustBook();
        var seen = new List<(TrustRecord Record, double Reputation)>();
        book.Recorded += (record, reputation) => seen.Add((record, reputation));

        var valid = book.Record("0xa", "s", VerifiedOutcome.Valid);
        var disputed = book.Record("0xa", "s", VerifiedOutcome.Disputed);
        var fault = book.Record("0xa", "t", VerifiedOutcome.Fault);

        // A dispute leaves the reputation as it was, and is still a change of the record.
        Assert.Equal([(valid, 0.525), (disputed, 0.525), (fault, 0.2625)], seen.Select(s => (s.Record, Math.Round(s.Reputation, 12))));
        Assert.Equal(book.Reputation("0xa"), seen[^1].Reputation);
    }
}

public sealed class OutputComparerTests
{
    private static InferTensor Floats(string name, params float[] values) => InferTensor.Create<float>(name, [values.Length], values);

    [Fact]
    public void Agree_WithinTolerance_DisagreeBeyondIt()
    {
        var comparer = OutputComparer.Default;

        Assert.Null(comparer.Disagreement([Floats("y", 1f, 2f, float.NaN)], [Floats("y", 1.00005f, 2.001f, float.NaN)]));
        Assert.Contains("element 0", comparer.Disagreement([Floats("y", 1f, 2f)], [Floats("y", 2f, 2f)]), StringComparison.Ordinal);
        Assert.NotNull(comparer.Disagreement([Floats("y", 1f)], [Floats("y", float.NaN)]));
        Assert.NotNull(comparer.Disagreement([Floats("y", 1f)], [Floats("y", 1f, 1f)]));
        Assert.NotNull(comparer.Disagreement([Floats("y", 1f)], [Floats("z", 1f)]));
        Assert.NotNull(comparer.Disagreement([Floats("y", 1f)], []));
    }

    [Fact]
    public void Integers_AndBytes_MustBeEqual()
    {
        var comparer = OutputComparer.Default;
        var a = InferTensor.Create<long>("ids", [2], [1L, 2L]);
        var b = InferTensor.Create<long>("ids", [2], [1L, 3L]);
        var text = InferTensor.FromStrings("t", [1], ["cat"]);

        Assert.Null(comparer.Disagreement([a], [InferTensor.Create<long>("ids", [2], [1L, 2L])]));
        Assert.NotNull(comparer.Disagreement([a], [b]));
        Assert.NotNull(comparer.Disagreement([a], [InferTensor.Create<int>("ids", [2], [1, 2])]));
        Assert.Null(comparer.Disagreement([text], [InferTensor.FromStrings("t", [1], ["cat"])]));
        Assert.NotNull(comparer.Disagreement([text], [InferTensor.FromStrings("t", [1], ["car"])]));
    }
}

public sealed class SimulatedFaultsTests
{
    private static float[] Delta() => [1f, -2f, 3f, 0.5f];

    private static double Norm(ReadOnlySpan<float> values)
    {
        double sum = 0;
        foreach (var v in values)
        {
            sum += (double)v * v;
        }

        return Math.Sqrt(sum);
    }

    [Fact]
    public void SignFlip_Scaled_AndNone()
    {
        var flipped = Delta();
        SimulatedFaults.Apply(FaultMode.SignFlip, flipped, [], []);
        Assert.Equal([-1f, 2f, -3f, -0.5f], flipped);

        var scaled = Delta();
        SimulatedFaults.Apply(FaultMode.Scaled, scaled, [], []);
        Assert.Equal([10f, -20f, 30f, 5f], scaled);

        var lazy = Delta();
        SimulatedFaults.Apply(FaultMode.Lazy, lazy, [], []);
        Assert.Equal(Delta(), lazy);
    }

    [Fact]
    public void Random_KeepsTheNormAndLosesTheDirection()
    {
        var original = Enumerable.Range(0, 10_000).Select(i => (float)Math.Sin(i)).ToArray();
        var noise = original.ToArray();
        SimulatedFaults.Apply(FaultMode.Random, noise, [], [], new Random(3));

        Assert.Equal(Norm(original), Norm(noise), 3);
        double dot = 0;
        for (var i = 0; i < noise.Length; i++)
        {
            dot += (double)noise[i] * original[i];
        }

        Assert.True(Math.Abs(dot / (Norm(original) * Norm(noise))) < 0.05);
    }

    [Fact]
    public void Copy_HandsInTheLastOuterStep_OrZerosBeforeTwoRounds()
    {
        var copied = Delta();
        SimulatedFaults.Apply(FaultMode.Copy, copied, [1f, 1f, 1f, 1f], [0.5f, 1.5f, 1f, 0f]);
        Assert.Equal([0.5f, -0.5f, 0f, 1f], copied);

        var first = Delta();
        SimulatedFaults.Apply(FaultMode.Copy, first, [], [1f, 1f, 1f, 1f]);
        Assert.All(first, v => Assert.Equal(0f, v));
    }
}
