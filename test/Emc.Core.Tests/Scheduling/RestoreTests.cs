using Emc.Core.Scheduling;

namespace Emc.Core.Tests.Scheduling;

public class RestoreTests
{
    [Fact]
    public void Restore_AfterRestart_KeepsCompletedQueuedAndLeasedWorkAndRedoesNothing()
    {
        var harness = new SchedulerHarness();
        var nodes = harness.AddCpuNodes(2);
        harness.Scheduler.SetAccountWeight("alice", 3);
        var job = harness.Scheduler.Submit(SchedulerHarness.Job("alice", 5));
        var first = harness.Schedule();
        harness.Complete(first[0], "zero");
        var second = harness.Schedule();
        var leased = new[] { first[1], second[0] };

        harness.Restart();

        var view = harness.Scheduler.GetJob(job.Id)!;
        Assert.Equal(new TaskCounts(2, 2, 0, 1, 0, 0), view.Tasks);
        Assert.Equal(3, harness.Scheduler.AccountWeight("alice"));
        Assert.Equal("zero", harness.Task(first[0].Lease.TaskId).Output);

        // The nodes reconnect: their leases are charged to them again, so nothing new fits yet.
        foreach (var node in nodes)
        {
            harness.Scheduler.UpsertNode(SchedulerHarness.Cpu(node));
        }

        Assert.Empty(harness.Schedule());

        // A late duplicate of the completed result is still recognised after the restart.
        Assert.Equal(ResultDisposition.Duplicate, harness.Complete(first[0], "zero"));

        foreach (var offer in leased)
        {
            Assert.Equal(ResultDisposition.Accepted, harness.Complete(offer));
        }

        var rest = new List<OfferLease>();
        for (var i = 0; i < 5 && harness.Scheduler.GetJob(job.Id)!.State != JobState.Completed; i++)
        {
            var offers = harness.Schedule();
            rest.AddRange(offers);
            foreach (var offer in offers)
            {
                harness.Complete(offer);
            }
        }

        Assert.Equal(JobState.Completed, harness.Scheduler.GetJob(job.Id)!.State);
        Assert.Equal(2, rest.Count);
        Assert.All(rest, o => Assert.EndsWith("#1", o.Lease.LeaseId, StringComparison.Ordinal));
        harness.Drain();
        Assert.Equal(5, harness.Journal.Results.Count);
    }

    [Fact]
    public void Restore_NodeNeverComesBack_LeaseExpiresAFullDurationAfterTheRestart()
    {
        var harness = new SchedulerHarness();
        harness.AddCpuNodes(1);
        var job = harness.Scheduler.Submit(SchedulerHarness.Job("alice", 1));
        var offer = Assert.Single(harness.Schedule());

        // The coordinator was down for longer than the lease.
        harness.Clock.Advance(TimeSpan.FromMinutes(5));
        harness.Restart();
        harness.Scheduler.UpsertNode(SchedulerHarness.Cpu(SchedulerHarness.NodeId(2)));
        harness.Scheduler.Tick();
        Assert.Empty(harness.Schedule());

        harness.Clock.Advance(TimeSpan.FromSeconds(30));
        harness.Scheduler.Tick();
        var again = Assert.Single(harness.Schedule());
        Assert.Equal(SchedulerHarness.NodeId(2), again.NodeId);
        Assert.Equal(job.Id + ".0#2", again.Lease.LeaseId);
        _ = offer;
    }

    [Fact]
    public void Restore_GangNotStarted_IsReleasedAndOfferedAgain()
    {
        var harness = new SchedulerHarness();
        var nodes = harness.AddCpuNodes(2);
        var job = harness.Scheduler.Submit(SchedulerHarness.Job("alice", 2, gang: true));
        var offers = harness.Schedule();
        harness.Scheduler.Accept(offers[0].NodeId, offers[0].Lease.LeaseId);

        harness.Restart();
        foreach (var node in nodes)
        {
            harness.Scheduler.UpsertNode(SchedulerHarness.Cpu(node));
        }

        var again = harness.Schedule();
        Assert.Equal(2, again.Count);
        Assert.All(again, o => Assert.EndsWith("#2", o.Lease.LeaseId, StringComparison.Ordinal));

        // The old offer is revoked when a node mentions it.
        harness.Scheduler.Heartbeat(offers[0].NodeId, [offers[0].Lease.LeaseId]);
        Assert.Contains(harness.Drain(), c => c is RevokeLease r && r.LeaseId == offers[0].Lease.LeaseId);
        Assert.Equal(JobState.Running, harness.Scheduler.GetJob(job.Id)!.State);
    }

    [Fact]
    public void Restore_RunningGang_KeepsItsLeases()
    {
        var harness = new SchedulerHarness();
        var nodes = harness.AddCpuNodes(2);
        var job = harness.Scheduler.Submit(SchedulerHarness.Job("alice", 2, gang: true));
        var offers = harness.Schedule();
        foreach (var offer in offers)
        {
            harness.Scheduler.Accept(offer.NodeId, offer.Lease.LeaseId);
        }

        harness.Restart();
        foreach (var node in nodes)
        {
            harness.Scheduler.UpsertNode(SchedulerHarness.Cpu(node));
        }

        Assert.Empty(harness.Schedule());
        foreach (var offer in offers)
        {
            Assert.Equal(ResultDisposition.Accepted, harness.Complete(offer));
        }

        Assert.Equal(JobState.Completed, harness.Scheduler.GetJob(job.Id)!.State);
    }

    [Fact]
    public void Submit_AfterRestore_ContinuesJobNumbersAndHonoursIdempotencyKeys()
    {
        var harness = new SchedulerHarness();
        var first = harness.Scheduler.Submit(SchedulerHarness.Job("alice", 1) with { IdempotencyKey = "upload-42" });

        harness.Restart();

        var again = harness.Scheduler.Submit(SchedulerHarness.Job("alice", 1) with { IdempotencyKey = "upload-42" });
        var next = harness.Scheduler.Submit(SchedulerHarness.Job("alice", 1));
        Assert.Equal(first.Id, again.Id);
        Assert.Equal("job-2", next.Id);
    }
}
