using System.Net;
using Emc.Client;
using Emc.Coordinator.Ledger;
using Emc.Coordinator.Tests.Infrastructure;
using Emc.Coordinator.Tests.Training;
using Emc.Core.Identity;
using Emc.Core.Pricing;
using Emc.Core.Registry;
using Emc.Core.Training;
using Emc.Ledger;
using Microsoft.Extensions.DependencyInjection;

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
