using Emc.Core.Scheduling;

namespace Emc.Core.Tests.Scheduling;

public class LeaseTests
{
    private static readonly string NodeA = SchedulerHarness.NodeId(1);
    private static readonly string NodeB = SchedulerHarness.NodeId(2);

    [Fact]
    public void Tick_LeaseExpires_TaskIsReissuedWithTheReason()
    {
        var harness = new SchedulerHarness();
        harness.Scheduler.UpsertNode(SchedulerHarness.Cpu(NodeA));
        var job = harness.Scheduler.Submit(SchedulerHarness.Job("alice", 1));
        var first = Assert.Single(harness.Schedule());
        Assert.Equal(job.Id + ".0#1", first.Lease.LeaseId);
        Assert.Equal(harness.Clock.GetUtcNow() + TimeSpan.FromSeconds(30), first.Lease.ExpiresAt);

        harness.Clock.Advance(TimeSpan.FromSeconds(29));
        harness.Scheduler.Tick();
        Assert.Equal(TaskState.Leased, harness.Task(first.Lease.TaskId).State);

        harness.Clock.Advance(TimeSpan.FromSeconds(1));
        harness.Scheduler.Tick();
        var task = harness.Task(first.Lease.TaskId);
        Assert.Equal(TaskState.Queued, task.State);
        Assert.Equal(1, task.Retries);
        Assert.Null(task.NodeId);

        var second = Assert.Single(harness.Schedule());
        Assert.Equal(job.Id + ".0#2", second.Lease.LeaseId);
    }

    [Fact]
    public void Evict_CurrentLease_RevokesItLowersReputationAndReissuesOnAnotherNode()
    {
        var harness = new SchedulerHarness();
        harness.Scheduler.UpsertNode(SchedulerHarness.Cpu(NodeA, gflops: 1000));
        harness.Scheduler.UpsertNode(SchedulerHarness.Cpu(NodeB, gflops: 10));
        var job = harness.Scheduler.Submit(SchedulerHarness.Job("alice", 1, demand: new ResourceDemand { Shared = true }));
        var first = Assert.Single(harness.Schedule());
        Assert.Equal(NodeA, first.NodeId);
        harness.Scheduler.Accept(NodeA, first.Lease.LeaseId);
        var before = harness.Scheduler.GetNode(NodeA)!.Reputation;

        // Only the current holder's lease can be evicted.
        Assert.False(harness.Scheduler.Evict(NodeB, first.Lease.LeaseId, "malformed replies"));
        Assert.True(harness.Scheduler.Evict(NodeA, first.Lease.LeaseId, "malformed replies"));
        Assert.Contains(harness.Drain(), c => c is RevokeLease r && r.LeaseId == first.Lease.LeaseId && r.NodeId == NodeA);
        Assert.True(harness.Scheduler.GetNode(NodeA)!.Reputation < before);
        Assert.Equal(0, harness.Scheduler.GetNode(NodeA)!.UsedSharedSlots);
        var task = harness.Task(job.Id + ".0");
        Assert.Equal((TaskState.Queued, 1), (task.State, task.Retries));
        Assert.Contains("malformed replies", task.Reason, StringComparison.Ordinal);

        // The faster node is avoided from now on; the slow one takes the task.
        var second = Assert.Single(harness.Schedule());
        Assert.Equal(NodeB, second.NodeId);
        Assert.False(harness.Scheduler.Evict(NodeA, first.Lease.LeaseId, "again"));
    }

    [Fact]
    public void Heartbeat_ListsLease_ExtendsItPastTheFirstExpiry()
    {
        var harness = new SchedulerHarness();
        harness.Scheduler.UpsertNode(SchedulerHarness.Cpu(NodeA));
        harness.Scheduler.Submit(SchedulerHarness.Job("alice", 1));
        var offer = Assert.Single(harness.Schedule());
        Assert.True(harness.Scheduler.Accept(NodeA, offer.Lease.LeaseId));

        for (var i = 0; i < 10; i++)
        {
            harness.Clock.Advance(TimeSpan.FromSeconds(20));
            harness.Scheduler.Heartbeat(NodeA, [offer.Lease.LeaseId]);
            harness.Scheduler.Tick();
        }

        var task = harness.Task(offer.Lease.TaskId);
        Assert.Equal(TaskState.Running, task.State);
        Assert.Equal(harness.Clock.GetUtcNow() + TimeSpan.FromSeconds(30), task.LeaseExpiresAt);

        // Heartbeats that leave the lease out stop extending it.
        harness.Clock.Advance(TimeSpan.FromSeconds(20));
        harness.Scheduler.Heartbeat(NodeA, []);
        harness.Clock.Advance(TimeSpan.FromSeconds(10));
        harness.Scheduler.Tick();
        Assert.Equal(TaskState.Queued, harness.Task(offer.Lease.TaskId).State);
    }

    [Fact]
    public void Heartbeat_ListsLeaseNoLongerHeld_RevokesIt()
    {
        var harness = new SchedulerHarness();
        harness.AddCpuNodes(1);
        harness.Scheduler.Submit(SchedulerHarness.Job("alice", 1));
        var offer = Assert.Single(harness.Schedule());
        harness.Clock.Advance(TimeSpan.FromSeconds(31));
        harness.Scheduler.Tick();
        harness.Drain();

        harness.Scheduler.Heartbeat(NodeA, [offer.Lease.LeaseId, "garbage", "job-99.0#1"]);

        var revokes = harness.Drain().OfType<RevokeLease>().ToList();
        Assert.Equal([offer.Lease.LeaseId, "job-99.0#1"], revokes.Select(r => r.LeaseId));
    }

    [Fact]
    public void Tick_RetriesSpent_TaskFailsWithTheReason()
    {
        var harness = new SchedulerHarness();
        harness.AddCpuNodes(1);
        var job = harness.Scheduler.Submit(SchedulerHarness.Job("alice", 1, maxRetries: 2));

        for (var attempt = 1; attempt <= 3; attempt++)
        {
            var offer = Assert.Single(harness.Schedule());
            Assert.EndsWith($"#{attempt}", offer.Lease.LeaseId, StringComparison.Ordinal);
            harness.Clock.Advance(TimeSpan.FromSeconds(30));
            harness.Scheduler.Tick();
        }

        Assert.Empty(harness.Schedule());
        var task = harness.Task(job.Id + ".0");
        Assert.Equal(TaskState.Failed, task.State);
        Assert.Equal(3, task.Retries);
        Assert.Contains("expired", task.Reason, StringComparison.Ordinal);
        Assert.Contains("gave up after 3 failed attempts", task.Reason, StringComparison.Ordinal);
        Assert.Equal(JobState.Failed, harness.Scheduler.GetJob(job.Id)!.State);
    }

    [Fact]
    public void RemoveNode_NodeLost_ItsLeasesAreReissuedAtOnce()
    {
        var harness = new SchedulerHarness();
        harness.Scheduler.UpsertNode(SchedulerHarness.Cpu(NodeA, slots: 2));
        harness.Scheduler.Submit(SchedulerHarness.Job("alice", 2));
        Assert.Equal(2, harness.Schedule().Count);

        harness.Scheduler.RemoveNode(NodeA, "was lost");
        var waiting = harness.Scheduler.ListTasks(null, null, null, 10);
        Assert.All(waiting, task => Assert.Equal(TaskState.Queued, task.State));
        Assert.All(waiting, task => Assert.Equal($"node {NodeA} was lost; no schedulable node is connected", task.Reason));

        harness.Scheduler.UpsertNode(SchedulerHarness.Cpu(NodeB, slots: 2));
        var offers = harness.Schedule();

        Assert.Equal(2, offers.Count);
        Assert.All(offers, offer => Assert.Equal(NodeB, offer.NodeId));
        Assert.All(offers, offer => Assert.EndsWith("#2", offer.Lease.LeaseId, StringComparison.Ordinal));
    }

    [Fact]
    public void Complete_LateResultFromFirstNodeAfterReissue_CountsOnceAndRevokesTheReissue()
    {
        var harness = new SchedulerHarness();
        harness.Scheduler.UpsertNode(SchedulerHarness.Cpu(NodeA));
        harness.Scheduler.Submit(SchedulerHarness.Job("alice", 1));
        var first = Assert.Single(harness.Schedule());
        harness.Clock.Advance(TimeSpan.FromSeconds(30));
        harness.Scheduler.Tick();
        harness.Scheduler.RemoveNode(NodeA, "was lost");
        harness.Scheduler.UpsertNode(SchedulerHarness.Cpu(NodeB));
        var second = Assert.Single(harness.Schedule());
        Assert.Equal(NodeB, second.NodeId);

        // The first node was only slow: its result arrives late and counts, since none counted yet.
        Assert.Equal(ResultDisposition.Accepted, harness.Complete(first, "from A"));
        Assert.Equal(ResultDisposition.Duplicate, harness.Complete(first, "from A"));
        var commands = harness.Drain();
        Assert.Contains(commands, c => c is RevokeLease r && r.LeaseId == second.Lease.LeaseId && r.NodeId == NodeB);

        Assert.Equal(ResultDisposition.Superseded, harness.Complete(second, "from B"));
        Assert.Equal(ResultDisposition.Duplicate, harness.Complete(second, "from B"));
        harness.Drain();

        var task = harness.Task(first.Lease.TaskId);
        Assert.Equal(TaskState.Completed, task.State);
        Assert.Equal(1, task.WinningAttempt);
        Assert.Equal("from A", task.Output);
        Assert.Equal(Scheduler.HashOutput("from A"), task.OutputHash);
        var results = harness.Journal.Results.Values.Where(r => r.TaskId == task.Id).OrderBy(r => r.Attempt).ToList();
        Assert.Equal(2, results.Count);
        Assert.True(results[0].Counted);
        Assert.False(results[1].Counted);
        Assert.Equal(NodeB, results[1].NodeId);
        Assert.Equal(0, harness.Scheduler.GetNode(NodeB)!.UsedSlots);
    }

    [Fact]
    public void Complete_ReissueFinishesFirst_LateOriginalIsSuperseded()
    {
        var harness = new SchedulerHarness();
        harness.AddCpuNodes(1);
        harness.Scheduler.Submit(SchedulerHarness.Job("alice", 1));
        var first = Assert.Single(harness.Schedule());
        harness.Clock.Advance(TimeSpan.FromSeconds(30));
        harness.Scheduler.Tick();
        var second = Assert.Single(harness.Schedule());

        Assert.Equal(ResultDisposition.Accepted, harness.Complete(second, "second"));
        Assert.Equal(ResultDisposition.Superseded, harness.Complete(first, "first"));

        var task = harness.Task(first.Lease.TaskId);
        Assert.Equal(2, task.WinningAttempt);
        Assert.Equal("second", task.Output);
    }

    [Fact]
    public void Complete_ResultFromAnotherNodeOrUnknownLease_IsRejectedAndChangesNothing()
    {
        var harness = new SchedulerHarness();
        harness.AddCpuNodes(2);
        harness.Scheduler.Submit(SchedulerHarness.Job("alice", 1));
        var offer = Assert.Single(harness.Schedule());
        var other = offer.NodeId == NodeA ? NodeB : NodeA;

        Assert.Equal(ResultDisposition.Rejected, harness.Scheduler.Complete(other, offer.Lease.LeaseId, true, "forged", null, false));
        Assert.Equal(ResultDisposition.Rejected, harness.Scheduler.Complete(offer.NodeId, offer.Lease.TaskId + "#2", true, "future", null, false));
        Assert.Equal(ResultDisposition.Rejected, harness.Scheduler.Complete(offer.NodeId, "job-7.0#1", true, "none", null, false));
        Assert.Equal(ResultDisposition.Rejected, harness.Scheduler.Complete(offer.NodeId, "not a lease", true, "none", null, false));
        Assert.Equal(ResultDisposition.Rejected, harness.Scheduler.Complete(offer.NodeId, offer.Lease.LeaseId, true, new string('x', 70_000), null, false));

        var commands = harness.Drain();
        Assert.Equal(5, commands.OfType<AckResult>().Count(a => a.Disposition == ResultDisposition.Rejected));
        Assert.Equal(TaskState.Leased, harness.Task(offer.Lease.TaskId).State);
        Assert.Empty(harness.Journal.Results);
    }

    [Fact]
    public void Complete_RetryableFailure_ReissuesAndNonRetryableFails()
    {
        var harness = new SchedulerHarness();
        harness.AddCpuNodes(1);
        harness.Scheduler.Submit(SchedulerHarness.Job("alice", 2));
        var offers = harness.Schedule();
        var offer = Assert.Single(offers);

        harness.Scheduler.Complete(offer.NodeId, offer.Lease.LeaseId, false, null, "device fell off the bus", retryable: true);
        var retried = harness.Task(offer.Lease.TaskId);
        Assert.Equal(TaskState.Queued, retried.State);
        Assert.Equal(1, retried.Retries);

        var next = Assert.Single(harness.Schedule());
        Assert.Equal(offer.Lease.TaskId, next.Lease.TaskId);
        harness.Scheduler.Complete(next.NodeId, next.Lease.LeaseId, false, null, "input is not JSON", retryable: false);
        var failed = harness.Task(offer.Lease.TaskId);
        Assert.Equal(TaskState.Failed, failed.State);
        Assert.Contains("input is not JSON", failed.Reason, StringComparison.Ordinal);
    }

    [Fact]
    public void Reject_NodeDeclines_TaskGoesElsewhereWithoutUsingARetry()
    {
        var harness = new SchedulerHarness();
        harness.AddCpuNodes(2);
        harness.Scheduler.Submit(SchedulerHarness.Job("alice", 1, maxRetries: 0));
        var offer = Assert.Single(harness.Schedule());

        Assert.True(harness.Scheduler.Reject(offer.NodeId, offer.Lease.LeaseId, "no executor for sleep"));
        var next = Assert.Single(harness.Schedule());

        Assert.NotEqual(offer.NodeId, next.NodeId);
        Assert.Equal(0, harness.Task(offer.Lease.TaskId).Retries);
        Assert.Equal(ResultDisposition.Accepted, harness.Complete(next));
    }

    [Fact]
    public void Reject_AfterAccept_IsIgnored()
    {
        var harness = new SchedulerHarness();
        harness.AddCpuNodes(2);
        harness.Scheduler.Submit(SchedulerHarness.Job("alice", 1));
        var offer = Assert.Single(harness.Schedule());
        Assert.True(harness.Scheduler.Accept(offer.NodeId, offer.Lease.LeaseId));

        Assert.False(harness.Scheduler.Reject(offer.NodeId, offer.Lease.LeaseId, "duplicate offer"));

        Assert.Empty(harness.Schedule());
        Assert.Equal(TaskState.Running, harness.Task(offer.Lease.TaskId).State);
    }

    [Fact]
    public void Accept_StaleLease_IsRevoked()
    {
        var harness = new SchedulerHarness();
        harness.AddCpuNodes(1);
        harness.Scheduler.Submit(SchedulerHarness.Job("alice", 1));
        var offer = Assert.Single(harness.Schedule());
        harness.Clock.Advance(TimeSpan.FromSeconds(30));
        harness.Scheduler.Tick();
        harness.Drain();

        Assert.False(harness.Scheduler.Accept(offer.NodeId, offer.Lease.LeaseId));
        Assert.Contains(harness.Drain(), c => c is RevokeLease r && r.LeaseId == offer.Lease.LeaseId);
    }

    [Fact]
    public void Cancel_RunningJob_RevokesLeasesAndQueuedNeverRun()
    {
        var harness = new SchedulerHarness();
        harness.AddCpuNodes(1);
        var job = harness.Scheduler.Submit(SchedulerHarness.Job("alice", 3));
        var offer = Assert.Single(harness.Schedule());

        Assert.True(harness.Scheduler.Cancel(job.Id, "cancelled by alice"));
        Assert.Contains(harness.Drain(), c => c is RevokeLease r && r.LeaseId == offer.Lease.LeaseId);
        Assert.Empty(harness.Schedule());

        var view = harness.Scheduler.GetJob(job.Id)!;
        Assert.Equal(JobState.Cancelled, view.State);
        Assert.Equal(3, view.Tasks.Cancelled);
        Assert.Equal(0, harness.Scheduler.GetNode(offer.NodeId)!.UsedSlots);
        Assert.False(harness.Scheduler.Cancel("job-404", "x"));
    }

    [Fact]
    public void Tick_FinishedJobOlderThanRetention_IsForgotten()
    {
        var harness = new SchedulerHarness();
        harness.AddCpuNodes(1);
        var job = harness.Scheduler.Submit(SchedulerHarness.Job("alice", 1));
        harness.Complete(Assert.Single(harness.Schedule()));

        harness.Clock.Advance(TimeSpan.FromMinutes(59));
        harness.Scheduler.Tick();
        Assert.True(harness.Scheduler.HasJob(job.Id));
        harness.Clock.Advance(TimeSpan.FromMinutes(1));
        harness.Scheduler.Tick();
        Assert.False(harness.Scheduler.HasJob(job.Id));
    }
}
