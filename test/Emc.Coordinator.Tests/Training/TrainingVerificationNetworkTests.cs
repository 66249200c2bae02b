using System.Collections.Concurrent;
using System.Globalization;
using System.Text;
using Emc.Compute;
using Emc.Coordinator.Ledger;
using Emc.Coordinator.Tests.Infrastructure;
using Emc.Coordinator.Verification;
using Emc.Core.Hardware;
using Emc.Core.Pricing;
using Emc.Core.Training;
using Emc.Core.Verification;
using Microsoft.Extensions.DependencyInjection;
using Xunit.Abstractions;

namespace Emc.Coordinator.Tests.Training;

/// <summary>
/// Tests that time hardware challenges run alone, after the parallel ones: a machine busy with other tests
/// is slower than its benchmark.
/// </summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class SerialTrainingCollection
{
    public const string Name = "serial training";
}

/// <summary>
/// A DiLoCo job on 4 honest nodes and 1 that misbehaves on purpose (<c>--simulate-fault</c>), in this process
/// with the real coordinator, node agents and verification: the faulty node must be proven faulty within 3
/// rounds, no honest node ever, its updates must stay out of the aggregate after that, and the model must
/// end within 1 point of the same job on 5 honest nodes.
/// </summary>
[Collection(SerialTrainingCollection.Name)]
public sealed class TrainingVerificationNetworkTests(ITestOutputHelper output)
{
    private const int Features = 12;
    private const int Classes = 4;
    private const int Rows = 4096;
    private const int Faulty = 4;

    private static readonly Lazy<Task<JobRun>> CleanRun = new(() => RunAsync(fault: null, log: null));

    [Fact]
    public async Task MemberThatDoesNotKeepItsCommittedStates_IsProvenFaulty_AndNobodyElse()
    {
        // The fifth node keeps none of the inner optimizer states it commits to (--simulate-fault withhold-state),
        // so it cannot upload one when its round is replayed.
        var run = await RunAsync(new FaultSimulation(FaultMode.WithholdState), output);
        output.WriteLine(run.Describe());

        Assert.True(run.Job.State == TrainingJobState.Completed, $"{run.Job.State}: {run.Job.Reason}");
        var fault = Assert.Single(run.Faults);
        Assert.True(SameNode(run.Nodes[Faulty], fault.Node), $"{fault.Node} was proven faulty");
        Assert.Equal(TrainingFaultKind.StateWithheld, fault.Kind);
        // The first state it can withhold is round 2's (round 1 starts from a fresh optimizer). Which of its
        // rounds are replayed is sampled (a CI run replayed none of rounds 2 to 5), so the check is that the
        // first replay that asked for such a state proved it, and soon: no replay of its rounds from 2 on
        // passed, and the replay, which runs in the background while later rounds train, ended within two
        // rounds of the round it asked about.
        Assert.InRange(fault.Round, 2, run.Job.Round);
        Assert.DoesNotContain(run.Verified, v => SameNode(v.Node, fault.Node) && v.Check == NodeRoundCheck.Replayed && v.Round >= 2);
        Assert.True(fault.RoundsClosed - fault.Round <= 2, $"round {fault.Round}'s state was proven withheld only after {fault.RoundsClosed} rounds");
        Assert.Contains("holds no committed state", fault.Evidence, StringComparison.Ordinal);
    }

    [Fact]
    public async Task HonestNetwork_NobodyIsProvenFaulty_AndEveryAcceptedRoundIsVerified()
    {
        var clean = await CleanRun.Value;
        output.WriteLine(clean.Describe());

        Assert.True(clean.Job.State == TrainingJobState.Completed, $"{clean.Job.State}: {clean.Job.Reason}");
        Assert.Empty(clean.Faults);

        // Flags are suspicions, not verdicts: an honest update the scoring flags is replayed, verified and paid,
        // but left out of its round. They must stay rare.
        Assert.True(clean.Rounds.Sum(r => r.Aggregated.Count) >= 0.8 * 5 * clean.Job.Round, clean.Describe());
        Assert.All(clean.Nodes, node => Assert.Equal(clean.Job.Round, clean.Verified.Count(v => SameNode(v.Node, node))));
        Assert.Contains(clean.Verified, v => v.Check == NodeRoundCheck.Replayed);
        var rates = clean.PaidPerSample(clean.Nodes);
        Assert.Equal(clean.Nodes.Count, rates.Count);
        Assert.True(rates.Values.Max() <= 1.05 * rates.Values.Min(), $"honest pay per sample differs: {string.Join(", ", rates.Values)}");
        Assert.All(clean.Nodes, n => Assert.Equal(0, clean.Money[n].Slashed + clean.Money[n].Voided));
        Assert.True(clean.Job.Final?.EvalAccuracy > 0.85, $"accuracy {clean.Job.Final?.EvalAccuracy}");
    }

    [Theory]
    [InlineData("sign-flip")]
    [InlineData("random")]
    [InlineData("scaled")]
    [InlineData("lazy")]
    [InlineData("copy")]
    [InlineData("wrong-output")]
    [InlineData("overstated-hardware")]
    public async Task FaultyNode_IsProvenFaultyWithinThreeRounds_AndTheJobEndsAsWellAsWithoutIt(string mode)
    {
        var clean = await CleanRun.Value;
        var run = await RunAsync(FaultSimulation.Parse(mode), output);
        output.WriteLine(run.Describe());

        Assert.True(run.Job.State == TrainingJobState.Completed, $"{run.Job.State}: {run.Job.Reason}");
        var faulty = run.Nodes[Faulty];
        Assert.All(run.Faults, f => Assert.True(SameNode(f.Node, faulty), $"honest node {f.Node} was proven faulty: {f.Kind} {f.Evidence}"));
        Assert.DoesNotContain(run.Verified, v => SameNode(v.Node, faulty) && v.Check == NodeRoundCheck.Replayed && run.Faults.Any(f => f.Round == v.Round));
        if (mode == "wrong-output")
        {
            // An inference fault: its training is honest, and must be treated so.
            Assert.Empty(run.Faults);
            Assert.Equal(run.Job.Round, run.Verified.Count(v => SameNode(v.Node, faulty)));
        }
        else
        {
            var first = Assert.Single(run.Faults);
            Assert.True(first.RoundsClosed <= 3, $"proven after {first.RoundsClosed} rounds: {first.Kind} {first.Evidence}");
            Assert.All(run.Rounds.Where(r => r.Round > first.RoundsClosed), r => Assert.DoesNotContain(r.Aggregated, n => SameNode(n, faulty)));
            Assert.Equal(1, run.Job.Nodes.Single(n => SameNode(n.Key, faulty)).Value.Faults);
        }

        // Money: the faulty node is slashed (never an honest one), and honest nodes are paid the same per sample of work.
        var honest = run.Nodes.Where(n => !SameNode(n, faulty)).ToList();
        Assert.All(honest, n => Assert.Equal(0, run.Money[n].Slashed));
        if (mode != "wrong-output")
        {
            Assert.True(run.Money[faulty].Slashed > 0, $"the faulty node was not slashed: {run.Money[faulty]}");
        }

        var rates = run.PaidPerSample(honest);
        Assert.True(rates.Count >= 3, $"only {rates.Count} honest nodes were paid");
        Assert.True(rates.Values.Max() <= 1.05 * rates.Values.Min(), $"honest pay per sample differs: {string.Join(", ", rates.Values)}");

        var accuracy = run.Job.Final!.EvalAccuracy!.Value;
        var reference = clean.Job.Final!.EvalAccuracy!.Value;
        Assert.True(Math.Abs(accuracy - reference) <= 0.01, $"accuracy {accuracy:0.####} against {reference:0.####} without the faulty node");
    }

    private static bool SameNode(string a, string b) => string.Equals(a, b, StringComparison.OrdinalIgnoreCase);

    private static async Task<JobRun> RunAsync(FaultSimulation? fault, ITestOutputHelper? log, Func<InProcessNodes, CancellationToken, Task>? meddle = null)
    {
        var probe = new MeasuredProbe();
        // Prices high enough that a round of this small model is worth hundreds of units, so rounding each payment up does not blur pay per sample.
        await using var coordinator = await TestCoordinator.StartAsync(services: s => s
            .AddSingleton(new TrainingVerifierOptions { ChallengeSeconds = 0.5, Seed = 7 })
            .AddSingleton(new PriceTable { TrainingUnitsPerPetaflop = 1_000_000_000_000 }));
        var verifier = coordinator.Host.Services.GetRequiredService<TrainingVerifier>();
        var faults = new ConcurrentQueue<TrainingFault>();
        var verified = new ConcurrentQueue<VerifiedNodeRound>();
        var challenges = new ConcurrentQueue<ChallengeResult>();
        verifier.FaultProven += faults.Enqueue;
        verifier.RoundVerified += verified.Enqueue;
        verifier.ChallengeJudged += challenges.Enqueue;

        var csv = WriteCsv(coordinator.DataDirectory);
        await coordinator.Api.UploadDatasetAsync("blobs", "csv", null, null, [csv], CancellationToken.None);
        FaultSimulation?[] modes = [null, null, null, null, fault];
        await using var nodes = await InProcessNodes.StartAsync(coordinator, 5, probe, modes);

        // A paid job: the operator funds its account and deposits every node's stake.
        var ledger = coordinator.Host.Services.GetRequiredService<LedgerService>();
        await coordinator.Api.FundAsync("operator", 1_000_000_000, "fund-operator", CancellationToken.None);
        foreach (var node in nodes.NodeIds)
        {
            await coordinator.Api.StakeAsync(node, ledger.Prices.MinimumStake, "deposit", $"stake-{node}", CancellationToken.None);
        }

        using var stop = new CancellationTokenSource();
        var meddling = meddle?.Invoke(nodes, stop.Token) ?? Task.CompletedTask;
        var started = DateTime.UtcNow;
        var job = await coordinator.Api.SubmitTrainingAsync(
            new TrainingJobSpec
            {
                Name = "verified",
                Model = new ModelSpec { Name = "mlp", Hidden = [16] },
                Dataset = "blobs",
                Algorithm = TrainingAlgorithm.Diloco,
                Nodes = new NodeCount { Min = 4, Max = 5 },
                InnerSteps = 20,
                BatchSize = 32,
                Rounds = 6,
                Inner = new InnerOptimizerSpec { Optimizer = "adamw", LearningRate = 0.005 },
                Evaluation = new EvaluationSpec { HoldoutFraction = 0.25 },
                Seed = 3,
                Budget = 500_000_000,
            },
            CancellationToken.None);
        var done = await TrainingNetworkTests.WaitForEndAsync(coordinator.Api, job.Id, TimeSpan.FromMinutes(3));
        await verifier.IdleAsync(TimeSpan.FromSeconds(60), CancellationToken.None);
        done = await coordinator.Api.GetTrainingJobAsync(job.Id, CancellationToken.None);
        var rounds = await coordinator.Api.GetTrainingRoundsAsync(job.Id, 0, CancellationToken.None);
        await stop.CancelAsync();
        await meddling;
        log?.WriteLine($"{fault?.ToString() ?? "clean"}: {(DateTime.UtcNow - started).TotalSeconds:0.#} s, claimed {MeasuredProbe.Gflops:0.#} GFLOP/s");
        // Every verified node-round is paid: at round close, or (flagged, then cleared by its replay) when its verdict comes.
        var paidBy = DateTime.UtcNow.AddSeconds(15);
        while (verified.Any(v => ledger.Ledger.GetPayment(LedgerService.TrainingPaymentKey(v.JobId, v.Round, v.Node)) is null) && DateTime.UtcNow < paidBy)
        {
            await Task.Delay(50);
        }

        var journal = new List<Emc.Ledger.LedgerTransaction>();
        for (var page = await ledger.Ledger.GetTransactionsAsync(0, 1000, CancellationToken.None); page.Count > 0; page = await ledger.Ledger.GetTransactionsAsync(journal[^1].Sequence, 1000, CancellationToken.None))
        {
            journal.AddRange(page);
        }

        var money = nodes.NodeIds.ToDictionary(
            n => n,
            n => new NodeMoney(
                journal.Where(t => t.Kind == Emc.Ledger.TransactionKind.Pay && SameNode(t.Subject.Node?.ToString() ?? "", n)).Sum(t => t.Entries.Where(e => e.Amount > 0).Sum(e => e.Amount)),
                journal.Where(t => t.Kind == Emc.Ledger.TransactionKind.Void && SameNode(t.Subject.Node?.ToString() ?? "", n)).Sum(t => t.Entries.Where(e => e.Amount > 0).Sum(e => e.Amount)),
                journal.Where(t => t.Kind == Emc.Ledger.TransactionKind.Slash && SameNode(t.Subject.Node?.ToString() ?? "", n)).Sum(t => t.Entries.Where(e => e.Amount > 0).Sum(e => e.Amount))),
            StringComparer.OrdinalIgnoreCase);
        Assert.Equal(0, (await ledger.Ledger.GetBalancesAsync(CancellationToken.None)).Values.Sum());
        var paid = journal.Where(t => t.Kind == Emc.Ledger.TransactionKind.Pay).Select(t => t.IdempotencyKey).ToHashSet(StringComparer.Ordinal);
        return new JobRun(done, [.. rounds], nodes.NodeIds, [.. faults], [.. verified], [.. challenges]) { Money = money, PaidKeys = paid };
    }

    /// <summary>Four classes of Gaussian blobs in 12 dimensions that overlap: accuracy tops out near 0.97.</summary>
    private static string WriteCsv(string directory)
    {
        var random = new Random(11);
        var builder = new StringBuilder(string.Join(",", Enumerable.Range(0, Features).Select(i => $"f{i}")) + ",label\n");
        for (var row = 0; row < Rows; row++)
        {
            var label = row % Classes;
            for (var f = 0; f < Features; f++)
            {
                var noise = Math.Sqrt(-2 * Math.Log(1 - random.NextDouble())) * Math.Cos(2 * Math.PI * random.NextDouble());
                var value = (f % Classes == label ? 2.0 : 0) + noise;
                builder.Append(value.ToString("0.####", CultureInfo.InvariantCulture)).Append(',');
            }

            builder.Append(label.ToString(CultureInfo.InvariantCulture)).Append('\n');
        }

        var path = Path.Combine(directory, "overlapping-blobs.csv");
        File.WriteAllText(path, builder.ToString());
        return path;
    }

    /// <summary>What a node was paid (gross, into its audit window), had voided, and lost to slashing, in units.</summary>
    private sealed record NodeMoney(long Paid, long Voided, long Slashed);

    private sealed record JobRun(TrainingJobView Job, IReadOnlyList<RoundSummary> Rounds, IReadOnlyList<string> Nodes, IReadOnlyList<TrainingFault> Faults, IReadOnlyList<VerifiedNodeRound> Verified, IReadOnlyList<ChallengeResult> Challenges)
    {
        public Dictionary<string, NodeMoney> Money { get; init; } = [];

        /// <summary>The keys of the payments made (pay:JOB:rROUND:NODE).</summary>
        public HashSet<string> PaidKeys { get; init; } = [];

        /// <summary>
        /// Units paid (net of voids) per sample of verified, paid work, per node that was paid. (A node-round
        /// whose replay clears it after the job has ended is paid too: the refund waits for the job's replays,
        /// up to TrainingOptions.RefundWait; see docs/ledger.md.)
        /// </summary>
        public Dictionary<string, double> PaidPerSample(IEnumerable<string> nodes)
        {
            var rates = new Dictionary<string, double>(StringComparer.OrdinalIgnoreCase);
            foreach (var node in nodes)
            {
                var samples = Verified.Where(v => SameNode(v.Node, node) && PaidKeys.Contains(LedgerService.TrainingPaymentKey(v.JobId, v.Round, v.Node))).Sum(v => v.Samples);
                if (samples > 0 && Money[node].Paid > 0)
                {
                    rates[node] = (double)(Money[node].Paid - Money[node].Voided) / samples;
                }
            }

            return rates;
        }

        public string Describe()
        {
            var text = new StringBuilder();
            text.AppendLine(CultureInfo.InvariantCulture, $"{Job.State} after {Job.Round} rounds, accuracy {Job.Final?.EvalAccuracy:0.####}");
            foreach (var round in Rounds)
            {
                text.AppendLine(CultureInfo.InvariantCulture, $"  round {round.Round}: {round.Aggregated.Count} aggregated, left out {string.Join("; ", round.LeftOut.Select(p => $"{Name(p.Key)}: {p.Value}"))}");
            }

            foreach (var challenge in Challenges)
            {
                text.AppendLine(CultureInfo.InvariantCulture, $"  challenge of {Name(challenge.Node)}: {(challenge.Passed ? "passed" : "failed")}, {challenge.Evidence}");
            }

            foreach (var fault in Faults)
            {
                text.AppendLine(CultureInfo.InvariantCulture, $"  fault: {Name(fault.Node)} round {fault.Round} ({fault.RoundsClosed} closed) {fault.Kind}: {fault.Evidence}");
            }

            text.AppendLine(CultureInfo.InvariantCulture, $"  verified: {string.Join(", ", Verified.GroupBy(v => Name(v.Node)).Select(g => $"{g.Key} {g.Count()} ({g.Count(v => v.Check == NodeRoundCheck.Replayed)} replayed)"))}");
            return text.ToString();
        }

        private string Name(string node)
        {
            var index = Nodes.ToList().FindIndex(n => SameNode(n, node));
            return index < 0 ? node : $"node-{index + 1}";
        }
    }

    /// <summary>
    /// Claims what this machine's CPU measures with one libtorch thread (the nodes train with one), taken once,
    /// while nothing else runs: honest claims are the truth, an overstating node's ten times it.
    /// </summary>
    private sealed class MeasuredProbe : IDeviceProbe
    {
        private static readonly Lazy<double> Measured = new(() =>
        {
            TorchRuntime.EnsureInitialized();
            TorchSharp.torch.set_num_threads(1);
            return Compute.DeviceBenchmark.Run("cpu").MatmulGflops;
        });

        public static double Gflops => Measured.Value;

        public int CudaDeviceCount => 0;

        public Core.Hardware.DeviceBenchmark Benchmark(string device, CancellationToken cancellationToken) =>
            new() { Device = device, MatmulGflops = Measured.Value, MemoryBandwidthGBps = 5 };
    }
}
