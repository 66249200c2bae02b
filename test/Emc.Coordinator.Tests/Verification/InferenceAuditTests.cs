using System.Net.Http.Json;
using Emc.Coordinator.Inference;
using Emc.Coordinator.Ledger;
using Emc.Coordinator.Tests.Infrastructure;
using Emc.Coordinator.Tests.Inference;
using Emc.Coordinator.Verification;
using Emc.Core;
using Emc.Core.Identity;
using Emc.Core.Inference;
using Emc.Core.Verification;
using Emc.Ledger;
using Microsoft.Extensions.DependencyInjection;

namespace Emc.Coordinator.Tests.Verification;

/// <summary>Sampled redundant execution against real node agents in this process, one of them lying.</summary>
public sealed class InferenceAuditTests
{
    private const int Features = 6;

    [Fact]
    public async Task HonestNodes_AgreeOnEveryCheck_AndTheirRecordsGrow()
    {
        await using var coordinator = await TestCoordinator.StartAsync();
        await ServingNetworkTests.RegisterOnnxModelAsync(coordinator, "audited");
        await using var nodes = new ServingNodes(coordinator);
        await nodes.StartAsync(2);
        var router = await DeployAsync(coordinator, "audited", replicas: 2);

        await SendAsync(coordinator, "audited", 120, seed: 1);
        var auditor = coordinator.Host.Services.GetRequiredService<InferenceAuditor>();
        await auditor.DrainAsync(CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(30));

        var audit = (await coordinator.Http.GetFromJsonAsync<DeploymentView>("api/v1/deployments/audited-v1", EmcJson.Options))!.Audit;
        Assert.Equal(120, audit.Answers);

        // A new node is checked on each of its first 10 answers, so at least 10 checks ran, and all agreed.
        Assert.True(audit.Checked >= 10, $"checked {audit.Checked}");
        Assert.Equal(audit.Checked, audit.Agreed);
        Assert.Equal(0, audit.Faults + audit.Disputes + audit.Dropped);
        Assert.Equal(audit.Sampled, audit.Checked + audit.Skipped);
        Assert.Equal(audit.Checked, audit.Executions);
        var trust = coordinator.Host.Services.GetRequiredService<TrustBook>();
        foreach (var node in router.GetReplicaLoads().Select(l => l.NodeId))
        {
            var record = trust.Get(node, "model:audited:1");
            Assert.True(record.Verified >= 10, $"{node}: {record}");
            Assert.Equal(0, record.Faults);
            Assert.True(trust.Reputation(node) > 0.5);
        }

        Assert.Equal(2, router.ReplicaCount);
    }

    [Fact]
    public async Task NodeReturningWrongOutputs_IsCaught_WithTheCoordinatorAsReferee_AndEvicted()
    {
        await using var coordinator = await TestCoordinator.StartAsync();
        await ServingNetworkTests.RegisterOnnxModelAsync(coordinator, "lied-to");
        await using var nodes = new ServingNodes(coordinator);
        await nodes.StartAsync(1);
        await nodes.StartAsync(1, fault: new FaultSimulation(FaultMode.WrongOutput, 0.5));
        var liar = nodes.Agents[1].NodeId!.Value.ToString();
        var honest = nodes.Agents[0].NodeId!.Value.ToString();
        var ledger = coordinator.Host.Services.GetRequiredService<LedgerService>();
        foreach (var node in new[] { liar, honest })
        {
            await coordinator.Api.StakeAsync(node, 10_000_000, "deposit", $"stake-{node}", CancellationToken.None);
        }

        var router = await DeployAsync(coordinator, "lied-to", replicas: 2);
        var auditor = coordinator.Host.Services.GetRequiredService<InferenceAuditor>();
        var findings = new List<AuditFinding>();
        auditor.FaultProven += finding =>
        {
            lock (findings)
            {
                findings.Add(finding);
            }
        };

        // Half the liar's answers are wrong and a new node is checked on every answer: caught within a few.
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while (true)
        {
            await SendAsync(coordinator, "lied-to", 10, seed: findings.Count + Environment.TickCount);
            await auditor.DrainAsync(CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(30));
            lock (findings)
            {
                if (findings.Count > 0)
                {
                    break;
                }
            }

            Assert.True(DateTime.UtcNow < deadline, "the wrong outputs were never caught");
        }

        // With only two nodes, the coordinator itself (ONNX Runtime, trusted) settled it, and only against the liar.
        var finding = Assert.Single(findings.DistinctBy(f => f.Node));
        Assert.Equal(liar, finding.Node);
        Assert.Contains(InferenceAuditor.Coordinator, finding.Witnesses);
        Assert.Contains("output 'logits'", finding.Evidence, StringComparison.Ordinal);
        var trust = coordinator.Host.Services.GetRequiredService<TrustBook>();
        Assert.True(trust.Get(liar, "model:lied-to:1").Faults >= 1);
        Assert.Equal(0, trust.Get(honest, "model:lied-to:1").Faults);
        Assert.True(trust.Reputation(liar) < trust.Reputation(honest));

        // The liar's replica leaves the router; the honest one keeps serving.
        await Polling.UntilAsync(() => router.GetReplicaLoads().All(l => l.NodeId != liar), TimeSpan.FromSeconds(60), "the liar's replica evicted");
        await SendAsync(coordinator, "lied-to", 5, seed: 99);
        var view = (await coordinator.Http.GetFromJsonAsync<DeploymentView>("api/v1/deployments/lied-to-v1", EmcJson.Options))!;
        Assert.True(view.Audit.Faults >= 1);
        Assert.Equal(0, view.Audit.Disputes);

        // The proven fault cost the liar a fifth of its stake; the honest node kept all of its own.
        await Polling.UntilAsync(() => ledger.Ledger.GetBalanceAsync(AccountId.Slashed, CancellationToken.None).Result > 0, TimeSpan.FromSeconds(15), "the slash");
        var slashed = await ledger.Ledger.GetBalanceAsync(AccountId.Slashed, CancellationToken.None);
        Assert.Equal(10_000_000 - slashed, await ledger.Ledger.GetBalanceAsync(AccountId.Stake(EthAddress.Parse(liar)), CancellationToken.None));
        Assert.Equal(10_000_000, await ledger.Ledger.GetBalanceAsync(AccountId.Stake(EthAddress.Parse(honest)), CancellationToken.None));
    }

    [Fact]
    public async Task ThreeNodes_TheMajoritySettlesADisagreement()
    {
        await using var coordinator = await TestCoordinator.StartAsync(services: s => s.AddSingleton(new InferenceAuditOptions { Seed = 7 }));
        await ServingNetworkTests.RegisterOnnxModelAsync(coordinator, "voted");
        await using var nodes = new ServingNodes(coordinator);
        await nodes.StartAsync(2);
        await nodes.StartAsync(1, fault: new FaultSimulation(FaultMode.WrongOutput, 1));
        var liar = nodes.Agents[2].NodeId!.Value.ToString();
        var router = await DeployAsync(coordinator, "voted", replicas: 3);
        var auditor = coordinator.Host.Services.GetRequiredService<InferenceAuditor>();
        AuditFinding? found = null;
        auditor.FaultProven += finding => found ??= finding;

        var deadline = DateTime.UtcNow.AddSeconds(60);
        while (Volatile.Read(ref found) is null)
        {
            await SendAsync(coordinator, "voted", 10, seed: Environment.TickCount);
            await auditor.DrainAsync(CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(30));
            Assert.True(DateTime.UtcNow < deadline, "the wrong outputs were never caught");
        }

        // Two honest nodes outvote the liar; the coordinator did not have to run the model.
        Assert.Equal(liar, found!.Node);
        Assert.DoesNotContain(InferenceAuditor.Coordinator, found.Witnesses);
        Assert.Equal(2, found.Witnesses.Count);
        Assert.DoesNotContain(liar, found.Witnesses);
        await Polling.UntilAsync(() => router.GetReplicaLoads().All(l => l.NodeId != liar), TimeSpan.FromSeconds(60), "the liar's replica evicted");
    }

    private static async Task<ReplicaRouter<RoutedCall, InferResponse>> DeployAsync(TestCoordinator coordinator, string model, int replicas)
    {
        using (var created = await coordinator.Http.PostAsJsonAsync("api/v1/deployments", new DeploymentSpec { Model = model, MinReplicas = replicas, MaxReplicas = replicas }, EmcJson.Options))
        {
            created.EnsureSuccessStatusCode();
        }

        var router = coordinator.Host.Services.GetRequiredService<DeploymentService>().GetRouter(model + "-v1")!;
        await Polling.UntilAsync(() => router.ReplicaCount == replicas, TimeSpan.FromSeconds(60), $"{replicas} replicas ready");
        return router;
    }

    private static async Task SendAsync(TestCoordinator coordinator, string model, int count, int seed)
    {
        var backend = coordinator.Host.Services.GetRequiredService<IInferenceBackend>();
        var random = new Random(seed);
        for (var i = 0; i < count; i++)
        {
            var values = Enumerable.Range(0, Features).Select(_ => (float)random.NextDouble()).ToArray();
            var request = new InferRequest { Inputs = [InferTensor.Create<float>("input", [1, Features], values)] };
            await backend.InferAsync(model, null, request, DateTimeOffset.UtcNow.AddSeconds(10), CancellationToken.None);
        }
    }
}
