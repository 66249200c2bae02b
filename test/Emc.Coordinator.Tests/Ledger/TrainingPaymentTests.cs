using System.Collections.Concurrent;
using System.Net;
using Emc.Client;
using Emc.Coordinator.Ledger;
using Emc.Coordinator.Tests.Infrastructure;
using Emc.Coordinator.Tests.Training;
using Emc.Coordinator.Training;
using Emc.Coordinator.Verification;
using Emc.Core.Identity;
using Emc.Core.Pricing;
using Emc.Core.Registry;
using Emc.Core.Training;
using Emc.Core.Verification;
using Emc.Ledger;
using Emc.Node.Work;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace Emc.Coordinator.Tests.Ledger;

/// <summary>A paid training job: its budget in escrow, its staked nodes paid per accepted round, the rest refunded.</summary>
public sealed class TrainingPaymentTests
{
    [Fact]
    public async Task PaidJob_PaysStakedNodesPerRound_TakesTheFee_RefundsTheRest_AndTheBooksBalance()
    {
        // A price at which a round of this small model is worth thousands of units, so rounding is negligible.
        await using var coordinator = await TestCoordinator.StartAsync(services: s => s.AddSingleton(new PriceTable { TrainingUnitsPerPetaflop = 1_000_000_000_000 }));
        var erin = await coordinator.CreateUserAsync("erin", funds: 50_000_000);
        var csv = TrainingNetworkTests.WriteCsv(coordinator.DataDirectory, seed: 3);
        await erin.Api.UploadDatasetAsync("erin-data", "csv", null, null, [csv], CancellationToken.None);
        await using var nodes = await InProcessNodes.StartAsync(coordinator, 2);
        var service = coordinator.Host.Services.GetRequiredService<LedgerService>();
        var ledger = service.Ledger;
        var addresses = (await coordinator.Api.GetNodesAsync(NodeStatus.Connected, CancellationToken.None)).Select(n => EthAddress.Parse(n.Id)).ToList();

        // Without stake the nodes may not take paid work: the job waits and says why.
        const long Budget = 20_000_000;
        var job = await erin.Api.SubmitTrainingAsync(Spec(Budget), CancellationToken.None);
        await WaitAsync(async () => (await erin.Api.GetTrainingJobAsync(job.Id, CancellationToken.None)).Reason?.Contains("without the stake paid work needs", StringComparison.Ordinal) == true, "the job waits for staked nodes");
        Assert.Equal(30_000_000, await ledger.GetBalanceAsync(AccountId.User("erin"), CancellationToken.None));
        Assert.Equal(Budget, await ledger.GetBalanceAsync(AccountId.ForEscrow(EscrowId.Job(job.Id)), CancellationToken.None));

        foreach (var node in addresses)
        {
            await coordinator.Api.StakeAsync(node.ToString(), service.Prices.MinimumStake, "deposit", $"stake-{node}", CancellationToken.None);
        }

        var done = await TrainingNetworkTests.WaitForEndAsync(erin.Api, job.Id, TimeSpan.FromMinutes(3));
        Assert.True(done.State == TrainingJobState.Completed, $"{done.State}: {done.Reason}");

        // The refund follows the job's end (the model is registered first).
        await WaitAsync(async () => await ledger.GetBalanceAsync(AccountId.ForEscrow(EscrowId.Job(job.Id)), CancellationToken.None) == 0, "the refund");

        // Every accepted member of every training round was paid once, the fee went to the treasury, and
        // what the job did not spend came back to erin.
        var payments = (await ledger.GetTransactionsAsync(0, 1000, CancellationToken.None)).Where(t => t.Kind == TransactionKind.Pay).ToList();
        Assert.Equal(done.Round, payments.Select(p => p.References.Round).Distinct().Count());
        Assert.Equal(2 * done.Round, payments.Count);
        Assert.All(payments, p => Assert.Equal(job.Id, p.References.JobId));
        Assert.Equal(payments.Count, payments.Select(p => p.IdempotencyKey).Distinct().Count());
        var gross = payments.Sum(p => -p.AmountFor(AccountId.ForEscrow(EscrowId.Job(job.Id))));
        var fees = payments.Sum(p => p.AmountFor(AccountId.Treasury));
        Assert.True(gross > 0);
        Assert.Equal((gross * service.Prices.FeeBasisPoints) / 10_000, fees, 2.0 * payments.Count);
        var earned = addresses.Select(a => ledger.GetBalanceAsync(AccountId.Held(a), CancellationToken.None).Result + ledger.GetBalanceAsync(AccountId.Node(a), CancellationToken.None).Result).ToList();
        Assert.All(earned, e => Assert.True(e > 0));

        // Nodes of one class earn the same per sample of accepted work (within 5 %); inner steps follow each
        // node's measured speed, so their totals may differ.
        var rounds = await erin.Api.GetTrainingRoundsAsync(job.Id, 0, CancellationToken.None);
        var rates = addresses.Select((a, i) => (double)earned[i] / rounds.Sum(r => r.AcceptedSamples.GetValueOrDefault(a.ToString()))).ToList();
        Assert.True(Math.Abs(rates[0] - rates[1]) <= 0.05 * Math.Max(rates[0], rates[1]), $"{rates[0]} against {rates[1]} units per sample");
        Assert.Equal(0, await ledger.GetBalanceAsync(AccountId.ForEscrow(EscrowId.Job(job.Id)), CancellationToken.None));
        Assert.Equal(50_000_000 - gross, await ledger.GetBalanceAsync(AccountId.User("erin"), CancellationToken.None));
        var balances = await ledger.GetBalancesAsync(CancellationToken.None);
        Assert.Equal(0, balances.Values.Sum());
    }

    [Fact]
    public async Task Submission_WithoutABudgetOrBeyondTheBalance_IsRefused_AndNothingIsCreated()
    {
        await using var coordinator = await TestCoordinator.StartAsync();
        var frank = await coordinator.CreateUserAsync("frank", funds: 1_000_000);
        var csv = TrainingNetworkTests.WriteCsv(coordinator.DataDirectory, seed: 4);
        await frank.Api.UploadDatasetAsync("frank-data", "csv", null, null, [csv], CancellationToken.None);
        var ledger = coordinator.Host.Services.GetRequiredService<LedgerService>().Ledger;
        var before = (await ledger.GetTransactionsAsync(0, 1000, CancellationToken.None)).Count;

        var noBudget = await Assert.ThrowsAsync<EmcApiException>(() => frank.Api.SubmitTrainingAsync(Spec(null, "frank-data"), CancellationToken.None));
        var tooMuch = await Assert.ThrowsAsync<EmcApiException>(() => frank.Api.SubmitTrainingAsync(Spec(2_000_000, "frank-data"), CancellationToken.None));
        var negative = await Assert.ThrowsAsync<EmcApiException>(() => frank.Api.SubmitTrainingAsync(Spec(-1, "frank-data"), CancellationToken.None));

        Assert.Equal(HttpStatusCode.PaymentRequired, noBudget.Status);
        Assert.Contains("needs a budget", noBudget.Message, StringComparison.Ordinal);
        Assert.Equal(HttpStatusCode.PaymentRequired, tooMuch.Status);
        Assert.Contains("insufficient balance", tooMuch.Message, StringComparison.Ordinal);
        Assert.Equal(HttpStatusCode.BadRequest, negative.Status);
        Assert.Empty(await frank.Api.GetTrainingJobsAsync(null, 100, CancellationToken.None));
        Assert.Equal(before, (await ledger.GetTransactionsAsync(0, 1000, CancellationToken.None)).Count);
        Assert.Equal(1_000_000, await ledger.GetBalanceAsync(AccountId.User("frank"), CancellationToken.None));
    }

    [Fact]
    public async Task FlaggedNodeRoundClearedAfterTheJobEnded_IsPaidOnce_AndTheRefundWaitsForIt()
    {
        // Every update is flagged as a copy of the other (any positive cosine is "a copy" here), so round 1 is
        // empty and the job fails at once (one empty round allowed); both flagged node-rounds are replayed only
        // after that, and their replays clear them.
        await using var coordinator = await StartFlaggingAsync(null);
        var grace = await coordinator.CreateUserAsync("grace", funds: 50_000_000);
        await grace.Api.UploadDatasetAsync("grace-data", "csv", null, null, [TrainingNetworkTests.WriteCsv(coordinator.DataDirectory, seed: 6)], CancellationToken.None);
        await using var nodes = await InProcessNodes.StartAsync(coordinator, 2);
        var service = coordinator.Host.Services.GetRequiredService<LedgerService>();
        var ledger = service.Ledger;
        foreach (var node in nodes.NodeIds)
        {
            await coordinator.Api.StakeAsync(node, service.Prices.MinimumStake, "deposit", $"stake-{node}", CancellationToken.None);
        }

        var verifier = coordinator.Host.Services.GetRequiredService<TrainingVerifier>();
        var verified = new ConcurrentQueue<VerifiedNodeRound>();
        verifier.RoundVerified += verified.Enqueue;

        const long Budget = 20_000_000;
        var job = await grace.Api.SubmitTrainingAsync(Spec(Budget, "grace-data"), CancellationToken.None);
        var done = await TrainingNetworkTests.WaitForEndAsync(grace.Api, job.Id, TimeSpan.FromMinutes(3));
        Assert.True(done.State == TrainingJobState.Failed, $"{done.State}: {done.Reason}");
        Assert.Contains("copy", done.Reason, StringComparison.Ordinal);
        var escrow = AccountId.ForEscrow(EscrowId.Job(job.Id));
        await WaitAsync(async () => await ledger.GetBalanceAsync(escrow, CancellationToken.None) == 0, "the refund");
        await verifier.IdleAsync(TimeSpan.FromSeconds(60), CancellationToken.None);

        // Both node-rounds were cleared by a replay after the job had ended...
        Assert.Equal(2, verified.Count);
        Assert.All(verified, v => Assert.Equal((job.Id, 1L, NodeRoundCheck.Replayed, false), (v.JobId, v.Round, v.Check, v.Aggregated)));
        Assert.All(verified, v => Assert.True(v.At >= done.FinishedAt, $"verified at {v.At:O}, the job ended at {done.FinishedAt:O}"));

        // ...and each was paid exactly once, from the escrow, before its one refund.
        var journal = await JournalAsync(ledger);
        var payments = journal.Where(t => t.Kind == TransactionKind.Pay && t.References.JobId == job.Id).ToList();
        Assert.Equal(
            nodes.NodeIds.Select(n => LedgerService.TrainingPaymentKey(job.Id, 1, n)).Order(StringComparer.Ordinal),
            payments.Select(p => p.IdempotencyKey).Order(StringComparer.Ordinal));
        var refund = Assert.Single(journal, t => t.Kind == TransactionKind.Refund && t.References.JobId == job.Id);
        Assert.All(payments, p => Assert.True(p.Sequence < refund.Sequence, $"payment {p.IdempotencyKey} came after the refund"));
        var gross = payments.Sum(p => -p.AmountFor(escrow));
        Assert.True(gross > 0);
        Assert.Equal(Budget - gross, refund.AmountFor(AccountId.User("grace")));
        Assert.Equal(50_000_000 - gross, await ledger.GetBalanceAsync(AccountId.User("grace"), CancellationToken.None));

        // The verdicts release the payments to the nodes at once.
        foreach (var node in nodes.NodeIds.Select(EthAddress.Parse))
        {
            await WaitAsync(async () => await ledger.GetBalanceAsync(AccountId.Node(node), CancellationToken.None) > 0, $"the release to {node}");
        }

        Assert.Equal(0, (await ledger.GetBalancesAsync(CancellationToken.None)).Values.Sum());
    }

    [Fact]
    public async Task Restart_WhileAnEndedJobWaitsForItsReplays_RefundsAtStart_AndPaysNothingAfter()
    {
        var data = Directory.CreateTempSubdirectory("emc-refund-restart-test-").FullName;
        try
        {
            // As above, but the nodes never finish a replay: the ended job's refund waits (up to 10 minutes).
            string jobId;
            List<string> nodeIds;
            const long Budget = 20_000_000;
            var stalled = new StalledReplays();
            InProcessNodes? nodes = null;
            try
            {
                await using var first = await StartFlaggingAsync(data);
                var henry = await first.CreateUserAsync("henry", funds: 50_000_000);
                await henry.Api.UploadDatasetAsync("henry-data", "csv", null, null, [TrainingNetworkTests.WriteCsv(first.DataDirectory, seed: 7)], CancellationToken.None);
                nodes = await InProcessNodes.StartAsync(first, 2, executors: [stalled]);
                nodeIds = [.. nodes.NodeIds];
                var service = first.Host.Services.GetRequiredService<LedgerService>();
                foreach (var node in nodeIds)
                {
                    await first.Api.StakeAsync(node, service.Prices.MinimumStake, "deposit", $"stake-{node}", CancellationToken.None);
                }

                var job = await henry.Api.SubmitTrainingAsync(Spec(Budget, "henry-data"), CancellationToken.None);
                jobId = job.Id;
                var done = await TrainingNetworkTests.WaitForEndAsync(henry.Api, job.Id, TimeSpan.FromMinutes(3));
                Assert.True(done.State == TrainingJobState.Failed, $"{done.State}: {done.Reason}");

                // A replay of the job's work is running on a node: the job has ended, and its escrow is held for it.
                await stalled.Entered.Task.WaitAsync(TimeSpan.FromSeconds(60));
                Assert.True(first.Host.Services.GetRequiredService<TrainingVerifier>().PendingReplays > 0);
                Assert.Equal(Budget, await service.Ledger.GetBalanceAsync(AccountId.ForEscrow(EscrowId.Job(job.Id)), CancellationToken.None));

                // The coordinator stops while the nodes still hold the replays (the training service stops before
                // the verifier, so the replays it drops cannot lead to a refund on the way out).
            }
            finally
            {
                if (nodes is not null)
                {
                    await nodes.DisposeAsync();
                }
            }

            await using var second = await StartFlaggingAsync(data);
            var ledger = second.Host.Services.GetRequiredService<LedgerService>().Ledger;
            var escrow = AccountId.ForEscrow(EscrowId.Job(jobId));

            // The restart dropped the replays and refunded the ended job's escrow, once.
            await WaitAsync(async () => await ledger.GetBalanceAsync(escrow, CancellationToken.None) == 0, "the refund at start");
            Assert.Equal(50_000_000, await ledger.GetBalanceAsync(AccountId.User("henry"), CancellationToken.None));

            // A verdict that came now would pay nothing, and say so without an exception.
            var training = second.Host.Services.GetRequiredService<TrainingService>();
            var settlement = second.Host.Services.GetServices<IHostedService>().OfType<TrainingSettlement>().Single();
            foreach (var node in nodeIds)
            {
                Assert.False(await training.PayClearedAsync(jobId, 1, node, 64, CancellationToken.None));
                Assert.False(await settlement.ReleaseAsync(new VerifiedNodeRound(jobId, 1, node, 64, 4, 1, NodeRoundCheck.Replayed, false, DateTimeOffset.UtcNow), CancellationToken.None));
            }

            var journal = await JournalAsync(ledger);
            Assert.DoesNotContain(journal, t => t.Kind == TransactionKind.Pay && t.References.JobId == jobId);
            Assert.Single(journal, t => t.Kind == TransactionKind.Refund && t.References.JobId == jobId);
            Assert.Equal(0, await ledger.GetBalanceAsync(escrow, CancellationToken.None));
            Assert.Equal(0, (await ledger.GetBalancesAsync(CancellationToken.None)).Values.Sum());
        }
        finally
        {
            Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
            Directory.Delete(data, recursive: true);
        }
    }

    /// <summary>
    /// A coordinator whose training verifier flags every update of a multi-node round (copy detection with a
    /// threshold any two honestly trained updates pass) and whose jobs fail after one empty round.
    /// </summary>
    private static Task<TestCoordinator> StartFlaggingAsync(string? data) =>
        TestCoordinator.StartAsync(data, services: s => s
            .AddSingleton(new PriceTable { TrainingUnitsPerPetaflop = 1_000_000_000_000 })
            .AddSingleton(new TrainingVerifierOptions { CopyThreshold = 1e-9, Challenges = false, Seed = 1 })
            .AddSingleton(new TrainingOptions { MaxEmptyRounds = 1 }));

    private static async Task<List<LedgerTransaction>> JournalAsync(GeneralLedger ledger)
    {
        var journal = new List<LedgerTransaction>();
        for (var page = await ledger.GetTransactionsAsync(0, 1000, CancellationToken.None); page.Count > 0; page = await ledger.GetTransactionsAsync(journal[^1].Sequence, 1000, CancellationToken.None))
        {
            journal.AddRange(page);
        }

        return journal;
    }

    /// <summary>Takes a node's replays and never finishes them (until the node stops).</summary>
    private sealed class StalledReplays : ITaskExecutor
    {
        public TaskCompletionSource Entered { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public string Kind => ReplayWork.TaskKind;

        public async Task<string> RunAsync(TaskContext context, CancellationToken cancellationToken)
        {
            Entered.TrySetResult();
            await Task.Delay(Timeout.Infinite, cancellationToken);
            return "";
        }
    }

    private static TrainingJobSpec Spec(long? budget, string dataset = "erin-data") => new()
    {
        Name = "paid",
        Model = new ModelSpec { Name = "mlp", Hidden = [16] },
        Dataset = dataset,
        Algorithm = TrainingAlgorithm.Diloco,
        Nodes = new NodeCount { Min = 2, Max = 2 },
        BatchSize = 16,
        InnerSteps = 4,
        Rounds = 3,
        Evaluation = new EvaluationSpec { HoldoutFraction = 0.25 },
        Seed = 5,
        Budget = budget,
    };

    private static async Task WaitAsync(Func<Task<bool>> condition, string what)
    {
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while (!await condition())
        {
            Assert.True(DateTime.UtcNow < deadline, $"timed out waiting: {what}");
            await Task.Delay(100);
        }
    }
}
