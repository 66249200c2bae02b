using Emc.Core.Scheduling;

namespace Emc.Core.Tests.Scheduling;

public class FairShareTests
{
    /// <summary>Places tasks on the harness's nodes, completing every lease at once, until <paramref name="placements"/> are made; counts them by account.</summary>
    private static Dictionary<string, int> Run(SchedulerHarness harness, int placements)
    {
        var byAccount = new Dictionary<string, int>();
        var made = 0;
        while (made < placements)
        {
            var offers = harness.Schedule();
            Assert.NotEmpty(offers);
            foreach (var offer in offers)
            {
                if (made == placements)
                {
                    break;
                }

                var account = harness.Task(offer.Lease.TaskId).Account;
                byAccount[account] = byAccount.GetValueOrDefault(account) + 1;
                made++;
            }

            foreach (var offer in offers)
            {
                harness.Complete(offer);
            }
        }

        return byAccount;
    }

    [Fact]
    public void Schedule_AccountsWeightedOneToThree_GetQuarterAndThreeQuarters()
    {
        var harness = new SchedulerHarness();
        harness.AddCpuNodes(16);
        harness.Scheduler.SetAccountWeight("alice", 1);
        harness.Scheduler.SetAccountWeight("bob", 3);
        harness.Scheduler.Submit(SchedulerHarness.Job("alice", 12_000));
        harness.Scheduler.Submit(SchedulerHarness.Job("bob", 12_000));

        var counts = Run(harness, 10_000);

        var alice = counts["alice"] / 10_000.0;
        var bob = counts["bob"] / 10_000.0;
        Assert.InRange(alice, 0.225, 0.275);
        Assert.InRange(bob, 0.725, 0.775);
    }

    [Fact]
    public void Schedule_AccountArrivesLate_GetsItsShareFromThenOnNotABurst()
    {
        var harness = new SchedulerHarness();
        harness.AddCpuNodes(10);
        harness.Scheduler.Submit(SchedulerHarness.Job("alice", 5_000));
        Run(harness, 2_000);

        harness.Scheduler.Submit(SchedulerHarness.Job("bob", 5_000));
        var counts = Run(harness, 2_000);

        // Equal weights: bob's idle time earns him no catch-up burst.
        Assert.InRange(counts["bob"], 900, 1_100);
    }

    [Fact]
    public void Schedule_LowPriorityBesideBusyHighClass_StillProgresses()
    {
        var harness = new SchedulerHarness();
        harness.AddCpuNodes(8);
        harness.Scheduler.Submit(SchedulerHarness.Job("big", 20_000, PriorityClass.High));
        var low = harness.Scheduler.Submit(SchedulerHarness.Job("small", 200, PriorityClass.Low));

        var counts = Run(harness, 4_200);

        // Class weights 16:1: the low job gets about 1 placement in 17 while both have work.
        Assert.InRange(counts["small"], 200, 200);
        Assert.Equal(JobState.Completed, harness.Scheduler.GetJob(low.Id)!.State);
        Assert.InRange(counts["big"], 4_000, 4_000);
    }

    [Fact]
    public void Schedule_PriorityClasses_HighGetsSixteenTimesLow()
    {
        var harness = new SchedulerHarness();
        harness.AddCpuNodes(8);
        harness.Scheduler.Submit(SchedulerHarness.Job("a", 10_000, PriorityClass.High));
        harness.Scheduler.Submit(SchedulerHarness.Job("b", 10_000, PriorityClass.Low));

        var counts = Run(harness, 3_400);

        Assert.InRange(counts["b"], 190, 210);
    }

    [Fact]
    public void Schedule_BlockedDemandAtHead_DoesNotHoldUpOtherWork()
    {
        var harness = new SchedulerHarness();
        harness.AddCpuNodes(2);
        var gpuJob = harness.Scheduler.Submit(SchedulerHarness.Job("alice", 5, demand: new ResourceDemand { Device = Emc.Core.Hardware.DeviceKind.Cuda }));
        harness.Scheduler.Submit(SchedulerHarness.Job("alice", 2));

        var offers = harness.Schedule();

        Assert.Equal(2, offers.Count);
        Assert.All(offers, offer => Assert.StartsWith("job-2.", offer.Lease.TaskId, StringComparison.Ordinal));
        Assert.Equal("no node with a cuda device", harness.Scheduler.GetJob(gpuJob.Id)!.Reason);
    }

    [Fact]
    public void SetAccountWeight_BadWeight_Throws()
    {
        var harness = new SchedulerHarness();
        Assert.Throws<SchedulingException>(() => harness.Scheduler.SetAccountWeight("alice", 0));
        Assert.Throws<SchedulingException>(() => harness.Scheduler.SetAccountWeight("alice", double.NaN));
        Assert.Throws<SchedulingException>(() => harness.Scheduler.SetAccountWeight("bad account", 1));
    }
}
