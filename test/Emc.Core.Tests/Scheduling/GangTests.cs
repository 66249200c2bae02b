using Emc.Core.Scheduling;

namespace Emc.Core.Tests.Scheduling;

public class GangTests
{
    private static void AcceptAll(SchedulerHarness harness, IEnumerable<OfferLease> offers)
    {
        foreach (var offer in offers)
        {
            Assert.True(harness.Scheduler.Accept(offer.NodeId, offer.Lease.LeaseId));
        }
    }

    [Fact]
    public void Schedule_EnoughFreeNodes_OffersEveryMemberOnDistinctNodesAndStartsWhenAllAccept()
    {
        var harness = new SchedulerHarness();
        for (var i = 1; i <= 5; i++)
        {
            harness.Scheduler.UpsertNode(SchedulerHarness.Cpu(SchedulerHarness.NodeId(i), slots: 4));
        }

        var job = harness.Scheduler.Submit(SchedulerHarness.Job("alice", 3, gang: true));
        var offers = harness.Schedule();

        Assert.Equal(3, offers.Count);
        Assert.Equal(3, offers.Select(o => o.NodeId).Distinct().Count());
        Assert.All(offers, o => Assert.Equal((job.Id, 3), (o.Lease.GangId, o.Lease.GangSize)));

        AcceptAll(harness, offers.Take(2));
        Assert.Empty(harness.Drain().OfType<StartGang>());
        Assert.All(harness.Scheduler.ListTasks(job.Id, null, null, 10), t => Assert.Equal(TaskState.Leased, t.State));

        AcceptAll(harness, offers.Skip(2));
        var starts = harness.Drain().OfType<StartGang>().ToList();
        Assert.Equal(offers.Select(o => o.Lease.LeaseId).Order(), starts.Select(s => s.LeaseId).Order());
        Assert.All(harness.Scheduler.ListTasks(job.Id, null, null, 10), t => Assert.Equal(TaskState.Running, t.State));

        foreach (var offer in offers)
        {
            harness.Complete(offer);
        }

        Assert.Equal(JobState.Completed, harness.Scheduler.GetJob(job.Id)!.State);
    }

    [Fact]
    public void Schedule_GangLargerThanTheNetwork_HoldsNothingAndSaysWhy()
    {
        var harness = new SchedulerHarness();
        harness.AddCpuNodes(3);
        var gang = harness.Scheduler.Submit(SchedulerHarness.Job("alice", 4, gang: true));
        harness.Scheduler.Submit(SchedulerHarness.Job("bob", 3));

        var offers = harness.Schedule();

        Assert.Equal(3, offers.Count);
        Assert.All(offers, o => Assert.Null(o.Lease.GangId));
        Assert.Equal("the gang needs 4 nodes with any device; 3 connected nodes have it", harness.Scheduler.GetJob(gang.Id)!.Reason);
    }

    [Fact]
    public void Tick_GangNotReservedInTime_ReleasesPartialReservations()
    {
        var harness = new SchedulerHarness();
        harness.AddCpuNodes(4);
        var busy = harness.Scheduler.Submit(SchedulerHarness.Job("bob", 1));
        var running = Assert.Single(harness.Schedule());
        var gang = harness.Scheduler.Submit(SchedulerHarness.Job("alice", 4, gang: true) with { GangTimeout = TimeSpan.FromSeconds(10) });

        Assert.Empty(harness.Schedule());
        Assert.Equal("reserving nodes for the gang: 3 of 4 held", harness.Scheduler.GetJob(gang.Id)!.Reason);
        Assert.Equal(0, harness.Scheduler.Stats().NodesWithFreeSlots);

        // Work that arrives meanwhile cannot take the held nodes.
        harness.Scheduler.Submit(SchedulerHarness.Job("carol", 1));
        Assert.Empty(harness.Schedule());

        harness.Clock.Advance(TimeSpan.FromSeconds(10));
        harness.Scheduler.Heartbeat(running.NodeId, [running.Lease.LeaseId]);
        harness.Scheduler.Tick();

        var task = harness.Task(gang.Id + ".0");
        Assert.Equal(TaskState.Queued, task.State);
        Assert.StartsWith("could not reserve 4 nodes within 10 s (held 3)", task.Reason, StringComparison.Ordinal);
        Assert.Equal(0, task.Retries);

        // Released: carol's task gets a node now (the gang went to the back of the line).
        var offers = harness.Schedule();
        Assert.Contains(offers, o => o.Lease.JobId == "job-3");
        Assert.Equal(JobState.Running, harness.Scheduler.GetJob(busy.Id)!.State);
    }

    [Fact]
    public void Schedule_TwoGangsCompeteForTheSameNodes_OnlyOneHoldsAndBothFinish()
    {
        var harness = new SchedulerHarness();
        harness.AddCpuNodes(4);
        var blocker = harness.Scheduler.Submit(SchedulerHarness.Job("zed", 2));
        var blockers = harness.Schedule();
        Assert.Equal(2, blockers.Count);

        var a = harness.Scheduler.Submit(SchedulerHarness.Job("alice", 3, gang: true));
        var b = harness.Scheduler.Submit(SchedulerHarness.Job("bob", 3, gang: true));
        Assert.Empty(harness.Schedule());

        // Alice's gang holds both free nodes; bob's holds none, so neither can wait on the other.
        Assert.StartsWith("reserving nodes for the gang: 2 of 3", harness.Scheduler.GetJob(a.Id)!.Reason, StringComparison.Ordinal);
        Assert.StartsWith("waiting for 3 of the 4 fitting nodes", harness.Scheduler.GetJob(b.Id)!.Reason, StringComparison.Ordinal);

        foreach (var offer in blockers)
        {
            harness.Complete(offer);
        }

        var finished = 0;
        for (var round = 0; round < 10 && finished < 2; round++)
        {
            var offers = harness.Schedule();
            AcceptAll(harness, offers);
            foreach (var offer in offers)
            {
                harness.Complete(offer);
            }

            finished = new[] { a, b }.Count(j => harness.Scheduler.GetJob(j.Id)!.State == JobState.Completed);
        }

        Assert.Equal(2, finished);
        Assert.Equal(JobState.Completed, harness.Scheduler.GetJob(blocker.Id)!.State);
    }

    [Fact]
    public void RemoveNode_GangMemberLost_RevokesTheRestAndRerunsOnlyUnfinishedMembers()
    {
        var harness = new SchedulerHarness();
        harness.AddCpuNodes(5);
        var job = harness.Scheduler.Submit(SchedulerHarness.Job("alice", 3, gang: true));
        var offers = harness.Schedule();
        AcceptAll(harness, offers);
        harness.Complete(offers[0]);
        harness.Drain();

        harness.Scheduler.RemoveNode(offers[1].NodeId, "was lost");
        var revokes = harness.Drain().OfType<RevokeLease>().ToList();
        Assert.Contains(revokes, r => r.LeaseId == offers[2].Lease.LeaseId);

        var again = harness.Schedule();
        Assert.Equal(2, again.Count);
        Assert.All(again, o => Assert.Equal(2, o.Lease.GangSize));
        Assert.All(again, o => Assert.EndsWith("#2", o.Lease.LeaseId, StringComparison.Ordinal));
        Assert.Equal(TaskState.Completed, harness.Task(offers[0].Lease.TaskId).State);
        Assert.Equal(1, harness.Task(offers[1].Lease.TaskId).Retries);
    }

    [Fact]
    public void Tick_GangMemberNeverAccepts_GangIsReleasedAndThatNodeAvoided()
    {
        var harness = new SchedulerHarness();
        harness.AddCpuNodes(3);
        var job = harness.Scheduler.Submit(SchedulerHarness.Job("alice", 2, gang: true) with { GangTimeout = TimeSpan.FromSeconds(5) });
        var offers = harness.Schedule();
        AcceptAll(harness, offers.Take(1));

        harness.Clock.Advance(TimeSpan.FromSeconds(5));
        harness.Scheduler.Tick();
        var revokes = harness.Drain().OfType<RevokeLease>().ToList();
        Assert.Equal(2, revokes.Count);

        var again = harness.Schedule();
        Assert.Equal(2, again.Count);
        Assert.DoesNotContain(again, o => o.NodeId == offers[1].NodeId);
        Assert.Equal(JobState.Running, harness.Scheduler.GetJob(job.Id)!.State);
    }

    [Fact]
    public void Reject_GangMemberDeclines_WholeGangIsOfferedAgainElsewhere()
    {
        var harness = new SchedulerHarness();
        harness.AddCpuNodes(3);
        harness.Scheduler.Submit(SchedulerHarness.Job("alice", 2, gang: true));
        var offers = harness.Schedule();

        Assert.True(harness.Scheduler.Reject(offers[0].NodeId, offers[0].Lease.LeaseId, "busy"));
        var again = harness.Schedule();

        Assert.Equal(2, again.Count);
        Assert.DoesNotContain(again, o => o.NodeId == offers[0].NodeId);
    }

    [Fact]
    public void Complete_GangMemberFailsBeyondRetries_FailsTheGang()
    {
        var harness = new SchedulerHarness();
        harness.AddCpuNodes(2);
        var job = harness.Scheduler.Submit(SchedulerHarness.Job("alice", 2, gang: true, maxRetries: 1));

        for (var attempt = 0; attempt < 2; attempt++)
        {
            var offers = harness.Schedule();
            Assert.Equal(2, offers.Count);
            AcceptAll(harness, offers);
            harness.Scheduler.Complete(offers[0].NodeId, offers[0].Lease.LeaseId, false, null, "out of memory", retryable: true);
        }

        var view = harness.Scheduler.GetJob(job.Id)!;
        Assert.Equal(JobState.Failed, view.State);
        Assert.Contains("gave up after 2 failed gang attempts", view.Reason, StringComparison.Ordinal);
    }
}
