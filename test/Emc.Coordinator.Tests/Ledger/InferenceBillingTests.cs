using System.Globalization;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Emc.Coordinator.Inference;
using Emc.Coordinator.Ledger;
using Emc.Coordinator.Tests.Inference;
using Emc.Coordinator.Tests.Infrastructure;
using Emc.Coordinator.Verification;
using Emc.Core;
using Emc.Core.Identity;
using Emc.Core.Inference;
using Emc.Core.Verification;
using Emc.Ledger;
using Microsoft.Extensions.DependencyInjection;

namespace Emc.Coordinator.Tests.Ledger;

/// <summary>Paid inference against real node agents in this process: budgets, charges, payments, refunds and voids.</summary>
public sealed class InferenceBillingTests
{
    private const int Features = 6;
    private static readonly CancellationToken None = CancellationToken.None;

    [Fact]
    public async Task PaidDeployment_ChargesEachAnsweredRequest_StopsWhenSpent_ResumesAfterATopUp_AndRefundsTheRestAtUndeploy()
    {
        await using var coordinator = await TestCoordinator.StartAsync(services: s => s.AddSingleton(new InferenceAuditOptions { Enabled = false }));
        await ServingNetworkTests.RegisterOnnxModelAsync(coordinator, "paid");
        await using var nodes = new ServingNodes(coordinator);
        await nodes.StartAsync(2);
        await nodes.StakeAsync();
        const long Funds = 1_000_000;
        await coordinator.Api.FundAsync("operator", Funds, "fund-1", None);

        // 100 units a request: 2,550 units pay for 25 requests, not 26.
        var view = await coordinator.Api.DeployAsync(new DeploymentSpec { Model = "paid", MinReplicas = 2, MaxReplicas = 2, Budget = 2_550 }, None);
        Assert.Equal(2_550, view.BudgetLeft);
        Assert.Equal(Funds - 2_550, (await coordinator.Api.GetBalanceAsync("operator", None)).Available);
        var router = coordinator.Host.Services.GetRequiredService<DeploymentService>().GetRouter(view.Id)!;
        await Polling.UntilAsync(() => router.ReplicaCount == 2, TimeSpan.FromSeconds(60), "2 replicas ready");

        for (var i = 0; i < 25; i++)
        {
            await InferAsync(coordinator, "paid", i);
        }

        // The 26th is refused with the protocol's error and 402, over REST as well, and nothing is charged for it.
        var refused = await Assert.ThrowsAsync<OipException>(() => InferAsync(coordinator, "paid", 25));
        Assert.Equal(OipErrorKind.PaymentRequired, refused.Kind);
        using (var response = await coordinator.Http.PostAsync("v2/models/paid/infer", JsonContent.Create(RestBody(26))))
        {
            Assert.Equal(HttpStatusCode.PaymentRequired, response.StatusCode);
            using var error = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
            Assert.Contains("budget", error.RootElement.GetProperty("error").GetString(), StringComparison.Ordinal);
        }

        using var channel = Grpc.Net.Client.GrpcChannel.ForAddress(coordinator.Host.Endpoints.GrpcUrl, new Grpc.Net.Client.GrpcChannelOptions { HttpHandler = Bearer.Handler(coordinator.OperatorKey) });
        var grpc = new Emc.Contracts.Inference.V2.GRPCInferenceService.GRPCInferenceServiceClient(channel);
        var grpcRequest = new Emc.Contracts.Inference.V2.ModelInferRequest { ModelName = "paid" };
        grpcRequest.Inputs.Add(new Emc.Contracts.Inference.V2.ModelInferRequest.Types.InferInputTensor
        {
            Name = "input",
            Datatype = "FP32",
            Shape = { 1, Features },
            Contents = new Emc.Contracts.Inference.V2.InferTensorContents { Fp32Contents = { new float[Features] } },
        });
        var rpc = await Assert.ThrowsAsync<Grpc.Core.RpcException>(async () => await grpc.ModelInferAsync(grpcRequest));
        Assert.Equal(Grpc.Core.StatusCode.ResourceExhausted, rpc.StatusCode);
        Assert.Contains("budget", rpc.Status.Detail, StringComparison.Ordinal);

        var billing = coordinator.Host.Services.GetRequiredService<InferenceBilling>();
        await billing.PostAsync(None);
        var ledger = coordinator.Host.Services.GetRequiredService<LedgerService>().Ledger;
        var escrow = AccountId.ForEscrow(EscrowId.Deployment(view.Spec.Escrow!));
        Assert.Equal(InferenceBilling.EscrowName(view.Id, view.CreatedAt), view.Spec.Escrow);
        var payments = await PaymentsAsync(ledger, view.Id);
        Assert.Equal(25, payments.Sum(p => Requests(p)));
        Assert.Equal(2_500, payments.Sum(p => -p.AmountFor(escrow)));
        Assert.Equal(50, await ledger.GetBalanceAsync(escrow, None));
        Assert.Equal(50, (await coordinator.Api.GetDeploymentAsync(view.Id, None)).BudgetLeft);

        // Both nodes served and are paid into their audit windows: what the escrow gave, less the 5% fee.
        var held = 0L;
        foreach (var agent in nodes.Agents)
        {
            held += await ledger.GetBalanceAsync(AccountId.Held(agent.NodeId!.Value), None);
        }

        var fees = await ledger.GetBalanceAsync(AccountId.Treasury, None);
        Assert.Equal(2_500, held + fees);
        Assert.Equal(payments.Sum(p => p.AmountFor(AccountId.Treasury)), fees);

        // A top-up lets it serve again.
        var topped = await coordinator.Api.TopUpDeploymentAsync(view.Id, 1_000, "top-up-1", None);
        Assert.Equal(1_050, topped.BudgetLeft);
        Assert.Equal(1_050, (await coordinator.Api.TopUpDeploymentAsync(view.Id, 1_000, "top-up-1", None)).BudgetLeft);
        for (var i = 0; i < 10; i++)
        {
            await InferAsync(coordinator, "paid", 100 + i);
        }

        Assert.Equal(OipErrorKind.PaymentRequired, (await Assert.ThrowsAsync<OipException>(() => InferAsync(coordinator, "paid", 200))).Kind);

        // Undeploying posts what is left to pay and refunds the rest, once.
        await coordinator.Api.UndeployAsync(view.Id, None);
        payments = await PaymentsAsync(ledger, view.Id);
        Assert.Equal(35, payments.Sum(p => Requests(p)));
        Assert.Equal(0, await ledger.GetBalanceAsync(escrow, None));
        var journal = await AllAsync(ledger);
        var refund = Assert.Single(journal, t => t.Kind == TransactionKind.Refund);
        Assert.Equal(50, refund.AmountFor(AccountId.User("operator")));
        Assert.Equal(Funds - 3_500, (await coordinator.Api.GetBalanceAsync("operator", None)).Available);
        Assert.Equal(0, journal.SelectMany(t => t.Entries).Sum(e => e.Amount));
        Assert.Equal(payments.Count, payments.Select(p => p.IdempotencyKey).Distinct().Count());
    }

    [Fact]
    public async Task AUsersDeployment_WithoutABudget_OrWithMoreThanItHas_IsRefusedWith402_AndCreatesNothing()
    {
        await using var coordinator = await TestCoordinator.StartAsync();
        var alice = await coordinator.CreateUserAsync("alice", funds: 1_000_000);
        var onnx = await ServingNetworkTests.RegisterOnnxModelAsync(coordinator, "unused");
        var file = Path.Combine(coordinator.DataDirectory, "alice.onnx");
        await File.WriteAllBytesAsync(file, onnx);
        await alice.Api.PushModelAsync(file, "alice-model", null, "onnx", [], [], None);

        foreach (var spec in new[]
        {
            new DeploymentSpec { Model = "alice-model" },
            new DeploymentSpec { Model = "alice-model", Budget = 1_000_001 },
            new DeploymentSpec { Model = "alice-model", Budget = 5, Escrow = "someone-elses" },
        })
        {
            using var response = await alice.Http.PostAsJsonAsync("api/v1/deployments", spec, EmcJson.Options);
            Assert.True(response.StatusCode is HttpStatusCode.PaymentRequired or HttpStatusCode.BadRequest, $"{response.StatusCode}: {await response.Content.ReadAsStringAsync()}");
            Assert.Contains(spec.Escrow is null ? "budget" : "escrow", await response.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        }

        Assert.Empty(await alice.Api.GetDeploymentsAsync(None));
        var balance = await alice.Api.GetBalanceAsync("me", None);
        Assert.Equal(1_000_000, balance.Available);
        Assert.Empty(balance.Escrows);

        // With a budget it has, it is deployed and the budget is reserved.
        var view = await alice.Api.DeployAsync(new DeploymentSpec { Model = "alice-model", Budget = 400_000 }, None);
        Assert.Equal(400_000, view.BudgetLeft);
        Assert.Equal(600_000, (await alice.Api.GetBalanceAsync("me", None)).Available);

        // Deploying it again is refused before any money moves: not even an escrow opened and refunded.
        var ledger = coordinator.Host.Services.GetRequiredService<LedgerService>().Ledger;
        var journal = (await AllAsync(ledger)).Count;
        using (var again = await alice.Http.PostAsJsonAsync("api/v1/deployments", new DeploymentSpec { Model = "alice-model", Budget = 1_000 }, EmcJson.Options))
        {
            Assert.Equal(HttpStatusCode.Conflict, again.StatusCode);
        }

        Assert.Equal(journal, (await AllAsync(ledger)).Count);
        Assert.Equal(600_000, (await alice.Api.GetBalanceAsync("me", None)).Available);
        await alice.Api.UndeployAsync(view.Id, None);
        Assert.Equal(1_000_000, (await alice.Api.GetBalanceAsync("me", None)).Available);
    }

    [Fact]
    public async Task ANodeProvenToAnswerWrongly_LosesItsHeldPayments_AndIsNotPaidForWhatItAnsweredSince()
    {
        await using var coordinator = await TestCoordinator.StartAsync();
        await ServingNetworkTests.RegisterOnnxModelAsync(coordinator, "lied-to");
        await using var nodes = new ServingNodes(coordinator);
        await nodes.StartAsync(1);
        await nodes.StartAsync(1, fault: new FaultSimulation(FaultMode.WrongOutput, 0.3));
        await nodes.StakeAsync();
        var honest = nodes.Agents[0].NodeId!.Value;
        var liar = nodes.Agents[1].NodeId!.Value;
        await coordinator.Api.FundAsync("operator", 1_000_000, "fund-1", None);
        var view = await coordinator.Api.DeployAsync(new DeploymentSpec { Model = "lied-to", MinReplicas = 2, MaxReplicas = 2, Budget = 500_000 }, None);
        var router = coordinator.Host.Services.GetRequiredService<DeploymentService>().GetRouter(view.Id)!;
        await Polling.UntilAsync(() => router.ReplicaCount == 2, TimeSpan.FromSeconds(60), "2 replicas ready");
        var auditor = coordinator.Host.Services.GetRequiredService<InferenceAuditor>();
        var billing = coordinator.Host.Services.GetRequiredService<InferenceBilling>();
        var caught = 0;
        auditor.FaultProven += _ => Interlocked.Increment(ref caught);

        // Posted as it goes, so that the liar has payments held when it is caught.
        var deadline = DateTime.UtcNow.AddSeconds(60);
        for (var round = 0; Volatile.Read(ref caught) == 0; round++)
        {
            for (var i = 0; i < 10; i++)
            {
                await InferAsync(coordinator, "lied-to", (round * 10) + i);
            }

            await billing.PostAsync(None);
            await auditor.DrainAsync(None).WaitAsync(TimeSpan.FromSeconds(30));
            Assert.True(DateTime.UtcNow < deadline, "the wrong outputs were never caught");
        }

        var ledger = coordinator.Host.Services.GetRequiredService<LedgerService>().Ledger;
        await Polling.UntilAsync(() => ledger.GetBalanceAsync(AccountId.Held(liar), None).Result == 0, TimeSpan.FromSeconds(15), "the liar's held payments voided");
        await Polling.UntilAsync(() => router.GetReplicaLoads().All(l => l.NodeId != liar.ToString()), TimeSpan.FromSeconds(60), "the liar's replica evicted");
        for (var i = 0; i < 10; i++)
        {
            await InferAsync(coordinator, "lied-to", 1_000 + i);
        }

        await billing.PostAsync(None);

        // The liar ends with nothing earned; the honest node keeps what it was paid; every voided unit went back to the escrow.
        Assert.Equal(0, await ledger.GetBalanceAsync(AccountId.Held(liar), None));
        Assert.Equal(0, await ledger.GetBalanceAsync(AccountId.Node(liar), None));
        Assert.True(await ledger.GetBalanceAsync(AccountId.Held(honest), None) > 0);
        var journal = await AllAsync(ledger);
        var liarsPayments = journal.Where(t => t.Kind == TransactionKind.Pay && t.Subject.Node == liar).Select(t => t.IdempotencyKey).ToHashSet();
        var voided = journal.Where(t => t.Kind == TransactionKind.Void).Select(t => t.IdempotencyKey["void:".Length..]).ToHashSet();
        Assert.Equal(liarsPayments, voided);
        var escrow = AccountId.ForEscrow(EscrowId.Deployment(InferenceBilling.EscrowName(view.Id, view.CreatedAt)));
        var paidOut = journal.Where(t => t.Kind is TransactionKind.Pay or TransactionKind.Void).Sum(t => t.AmountFor(escrow));
        Assert.Equal(500_000 + paidOut, await ledger.GetBalanceAsync(escrow, None));
        Assert.Equal(0, journal.SelectMany(t => t.Entries).Sum(e => e.Amount));
    }

    private static async Task<List<LedgerTransaction>> AllAsync(GeneralLedger ledger)
    {
        var all = new List<LedgerTransaction>();
        while (true)
        {
            var page = await ledger.GetTransactionsAsync(all.Count == 0 ? 0 : all[^1].Sequence, GeneralLedger.MaxPageSize, None);
            if (page.Count == 0)
            {
                return all;
            }

            all.AddRange(page);
        }
    }

    private static async Task<List<LedgerTransaction>> PaymentsAsync(GeneralLedger ledger, string deploymentId) =>
        [.. (await AllAsync(ledger)).Where(t => t.Kind == TransactionKind.Pay && t.References.JobId == deploymentId)];

    /// <summary>The requests a payment covers, from its memo ("N requests, T tokens").</summary>
    private static long Requests(LedgerTransaction payment) =>
        long.Parse(payment.References.Memo![..payment.References.Memo!.IndexOf(' ', StringComparison.Ordinal)], CultureInfo.InvariantCulture);

    private static Task<InferResponse> InferAsync(TestCoordinator coordinator, string model, int seed)
    {
        var random = new Random(seed);
        var values = Enumerable.Range(0, Features).Select(_ => (float)random.NextDouble()).ToArray();
        var request = new InferRequest { Inputs = [InferTensor.Create<float>("input", [1, Features], values)] };
        return coordinator.Host.Services.GetRequiredService<IInferenceBackend>().InferAsync(model, null, request, DateTimeOffset.UtcNow.AddSeconds(10), None);
    }

    private static object RestBody(int seed)
    {
        var random = new Random(seed);
        return new { inputs = new[] { new { name = "input", datatype = "FP32", shape = new[] { 1, Features }, data = Enumerable.Range(0, Features).Select(_ => random.NextDouble()).ToArray() } } };
    }
}
