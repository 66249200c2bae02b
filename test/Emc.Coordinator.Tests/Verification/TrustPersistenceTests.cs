using Emc.Coordinator.Scheduling;
using Emc.Coordinator.Tests.Infrastructure;
using Emc.Coordinator.Verification;
using Emc.Core.Verification;
using Microsoft.Extensions.DependencyInjection;

namespace Emc.Coordinator.Tests.Verification;

/// <summary>The trust book (verification records and reputations) is kept in the coordinator's database across restarts.</summary>
public sealed class TrustPersistenceTests
{
    private const string Node = "0x00000000000000000000000000000000000000a1";
    private const string Other = "0x00000000000000000000000000000000000000b2";
    private const string Scope = "model:kept:1";

    [Fact]
    public async Task Restart_SameDataFolder_RecordsAndReputationsAreKept()
    {
        var data = Directory.CreateTempSubdirectory("emc-trust-test-").FullName;
        try
        {
            TrustSnapshot before;
            double rate;
            await using (var first = await TestCoordinator.StartAsync(data))
            {
                var trust = first.Host.Services.GetRequiredService<TrustBook>();
                Assert.Empty(trust.Records());
                for (var i = 0; i < 25; i++)
                {
                    trust.Record(Node, Scope, VerifiedOutcome.Valid);
                }

                trust.Record(Node, TrainingVerdicts.Scope, VerifiedOutcome.Valid);
                trust.Record(Node, TrainingVerdicts.Scope, VerifiedOutcome.Disputed);
                trust.Record(Other, Scope, VerifiedOutcome.Valid);
                trust.Record(Other, Scope, VerifiedOutcome.Fault);
                before = trust.Snapshot();
                rate = trust.AuditRate(Node, Scope, AuditPolicy.Inference);
                Assert.True(rate < 1, "a node with 25 verified results is no longer checked on every result");
            }

            await using var second = await TestCoordinator.StartAsync(data);
            var restored = second.Host.Services.GetRequiredService<TrustBook>();

            Assert.Equal(before.Records, restored.Records());
            Assert.Equal(new TrustRecord(Node, Scope, 25, 25, 0, 0), restored.Get(Node, Scope));
            Assert.Equal(new TrustRecord(Node, TrainingVerdicts.Scope, 0, 1, 0, 1), restored.Get(Node, TrainingVerdicts.Scope));
            Assert.Equal(new TrustRecord(Other, Scope, 0, 1, 1, 0), restored.Get(Other, Scope));
            Assert.Equal(before.Reputations[Node], restored.Reputation(Node));
            Assert.Equal(before.Reputations[Other], restored.Reputation(Other));
            Assert.True(restored.Reputation(Node) > 0.5 && restored.Reputation(Other) < 0.5);

            // So the node is audited at the rate its record earned, not at the new-node rate, and the scheduler
            // places it with the reputation it earned (ReputationSync queued it at start, ahead of this question).
            Assert.Equal(rate, restored.AuditRate(Node, Scope, AuditPolicy.Inference));
            var scheduler = second.Host.Services.GetRequiredService<SchedulerService>();
            Assert.Equal(before.Reputations[Node], await scheduler.GetReputationAsync(Node, CancellationToken.None));
            Assert.Equal(before.Reputations[Other], await scheduler.GetReputationAsync(Other, CancellationToken.None));

            // The restored book goes on from there, and is kept again.
            restored.Record(Node, Scope, VerifiedOutcome.Fault);
            var persistence = second.Host.Services.GetRequiredService<TrustPersistence>();
            await persistence.FlushAsync(CancellationToken.None);
            var stored = await second.Host.Services.GetRequiredService<TrustStore>().LoadAsync(CancellationToken.None);
            Assert.Equal(restored.Records(), stored.Records);
            Assert.Equal(restored.Reputation(Node), stored.Reputations[Node]);
        }
        finally
        {
            Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
            Directory.Delete(data, recursive: true);
        }
    }

    [Fact]
    public async Task Verdicts_AreWrittenBehind_WithoutAStop()
    {
        await using var coordinator = await TestCoordinator.StartAsync(services: s => s.AddSingleton(new TrustPersistenceOptions { FlushInterval = TimeSpan.FromMilliseconds(50) }));
        var trust = coordinator.Host.Services.GetRequiredService<TrustBook>();
        var store = coordinator.Host.Services.GetRequiredService<TrustStore>();

        for (var i = 0; i < 3; i++)
        {
            trust.Record(Node, Scope, VerifiedOutcome.Valid);
        }

        // The background flusher writes the newest values within a few intervals.
        var deadline = DateTime.UtcNow.AddSeconds(30);
        TrustSnapshot stored;
        while (!(stored = await store.LoadAsync(CancellationToken.None)).Records.SequenceEqual(trust.Records()))
        {
            Assert.True(DateTime.UtcNow < deadline, "the records were not written within 30 s");
            await Task.Delay(20);
        }

        Assert.Equal(new TrustRecord(Node, Scope, 3, 3, 0, 0), Assert.Single(stored.Records));
        Assert.Equal(trust.Reputation(Node), stored.Reputations[Node]);
    }

    [Fact]
    public async Task Fault_IsWrittenAtOnce_NotAtTheNextInterval()
    {
        // An hour between writes: only a fault's own wake-up can write it within the test.
        await using var coordinator = await TestCoordinator.StartAsync(services: s => s.AddSingleton(new TrustPersistenceOptions { FlushInterval = TimeSpan.FromHours(1) }));
        var trust = coordinator.Host.Services.GetRequiredService<TrustBook>();
        var store = coordinator.Host.Services.GetRequiredService<TrustStore>();
        trust.Record(Node, Scope, VerifiedOutcome.Valid);
        trust.Record(Node, Scope, VerifiedOutcome.Fault);

        var deadline = DateTime.UtcNow.AddSeconds(30);
        TrustSnapshot stored;
        while ((stored = await store.LoadAsync(CancellationToken.None)).Records.Count == 0)
        {
            Assert.True(DateTime.UtcNow < deadline, "the fault was not written within 30 s");
            await Task.Delay(20);
        }

        Assert.Equal(new TrustRecord(Node, Scope, 0, 1, 1, 0), Assert.Single(stored.Records));
        Assert.Equal(trust.Reputation(Node), stored.Reputations[Node]);
    }
}
