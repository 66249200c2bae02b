using Emc.Core.Hardware;
using Emc.Core.Scheduling;

namespace Emc.Core.Tests.Scheduling;

public class PlacementTests
{
    private const long GiB = 1L << 30;

    [Fact]
    public void Schedule_DemandNoNodeMeets_ExplainsWhichConstraintAndPlacesWhenANodeFits()
    {
        var harness = new SchedulerHarness();
        var job = harness.Scheduler.Submit(SchedulerHarness.Job("alice", 1, demand: new ResourceDemand { Device = DeviceKind.Cuda, DeviceMemoryBytes = 12 * GiB }));
        Assert.Empty(harness.Schedule());
        Assert.Equal("no schedulable node is connected", harness.Scheduler.GetJob(job.Id)!.Reason);

        harness.AddCpuNodes(3);
        Assert.Empty(harness.Schedule());
        Assert.Equal("no node with a cuda device", harness.Scheduler.GetJob(job.Id)!.Reason);

        harness.Scheduler.UpsertNode(SchedulerHarness.Cuda(SchedulerHarness.NodeId(10), 8 * GiB));
        Assert.Empty(harness.Schedule());
        Assert.Equal("no node with ≥ 12 GiB device memory on a cuda device", harness.Scheduler.GetJob(job.Id)!.Reason);
        Assert.Equal("no node with ≥ 12 GiB device memory on a cuda device", harness.Task(job.Id + ".0").Reason);

        harness.Scheduler.UpsertNode(SchedulerHarness.Cuda(SchedulerHarness.NodeId(11), 24 * GiB, gpus: 2));
        var offer = Assert.Single(harness.Schedule());
        Assert.Equal(SchedulerHarness.NodeId(11), offer.NodeId);
        Assert.StartsWith("cuda:", offer.Lease.Device, StringComparison.Ordinal);
    }

    [Fact]
    public void Schedule_FittingNodesBusy_SaysItWaitsForCapacity()
    {
        var harness = new SchedulerHarness();
        harness.AddCpuNodes(2);
        var job = harness.Scheduler.Submit(SchedulerHarness.Job("alice", 3));

        Assert.Equal(2, harness.Schedule().Count);

        Assert.Equal("waiting for a free slot on one of the 2 fitting nodes", harness.Scheduler.GetJob(job.Id)!.Reason);
    }

    [Fact]
    public void Schedule_SpeedLabelsAndPrice_AreHardConstraints()
    {
        var harness = new SchedulerHarness();
        harness.Scheduler.UpsertNode(SchedulerHarness.Cpu(SchedulerHarness.NodeId(1), gflops: 50, labels: new() { ["region"] = "eu" }, price: 10));
        harness.Scheduler.UpsertNode(SchedulerHarness.Cpu(SchedulerHarness.NodeId(2), gflops: 500, labels: new() { ["region"] = "us" }, price: 10));
        harness.Scheduler.UpsertNode(SchedulerHarness.Cpu(SchedulerHarness.NodeId(3), gflops: 500, labels: new() { ["region"] = "eu" }, price: 90));
        harness.Scheduler.UpsertNode(SchedulerHarness.Cpu(SchedulerHarness.NodeId(4), gflops: 500, labels: new() { ["region"] = "eu" }, price: 20));

        var demand = new ResourceDemand { MinGflops = 100, Labels = new Dictionary<string, string> { ["region"] = "eu" }, MaxPrice = 50 };
        harness.Scheduler.Submit(SchedulerHarness.Job("alice", 2, demand: demand));

        var offer = Assert.Single(harness.Schedule());
        Assert.Equal(SchedulerHarness.NodeId(4), offer.NodeId);

        var asia = harness.Scheduler.Submit(SchedulerHarness.Job("bob", 1, demand: new ResourceDemand { Labels = new Dictionary<string, string> { ["region"] = "asia" } }));
        harness.Schedule();
        Assert.Equal("no node labelled region=asia", harness.Scheduler.GetJob(asia.Id)!.Reason);

        var fast = harness.Scheduler.Submit(SchedulerHarness.Job("bob", 1, demand: new ResourceDemand { MinGflops = 1000 }));
        var cheap = harness.Scheduler.Submit(SchedulerHarness.Job("bob", 1, demand: new ResourceDemand { MaxPrice = 5 }));
        harness.Schedule();
        Assert.Equal("no node with a device of ≥ 1000 GFLOP/s", harness.Scheduler.GetJob(fast.Id)!.Reason);
        Assert.Equal("no node at a price ≤ 5", harness.Scheduler.GetJob(cheap.Id)!.Reason);
    }

    [Fact]
    public void Schedule_NodeCachesTheData_IsPreferred()
    {
        var harness = new SchedulerHarness(new SchedulerOptions { MaxScoredCandidates = 2 });
        harness.AddCpuNodes(200);
        var holder = SchedulerHarness.NodeId(500);
        harness.Scheduler.UpsertNode(SchedulerHarness.Cpu(holder, cache: ["sha256-dataset"]));
        harness.Scheduler.Submit(SchedulerHarness.Job("alice", 1, demand: new ResourceDemand { CacheKeys = ["sha256-dataset"] }));

        var offer = Assert.Single(harness.Schedule());

        Assert.Equal(holder, offer.NodeId);
    }

    [Fact]
    public void Schedule_SpreadAndPackPolicies_DifferInHowTheyFillNodes()
    {
        var spread = new SchedulerHarness();
        var pack = new SchedulerHarness(policy: new PackPlacementPolicy());
        foreach (var harness in new[] { spread, pack })
        {
            harness.Scheduler.UpsertNode(SchedulerHarness.Cpu(SchedulerHarness.NodeId(1), slots: 4));
            harness.Scheduler.UpsertNode(SchedulerHarness.Cpu(SchedulerHarness.NodeId(2), slots: 4));
            for (var i = 0; i < 4; i++)
            {
                harness.Scheduler.Submit(SchedulerHarness.Job("alice", 1));
                harness.Schedule();
            }
        }

        Assert.Equal([2, 2], [.. new[] { 1, 2 }.Select(i => spread.Scheduler.GetNode(SchedulerHarness.NodeId(i))!.UsedSlots)]);
        Assert.Equal(4, new[] { 1, 2 }.Max(i => pack.Scheduler.GetNode(SchedulerHarness.NodeId(i))!.UsedSlots));
        Assert.Equal("pack", pack.Scheduler.Stats().Policy);
    }

    [Fact]
    public void Schedule_DeviceMemory_IsSharedOutAcrossSlots()
    {
        var harness = new SchedulerHarness(new SchedulerOptions { TasksPerDevice = 4 });
        harness.Scheduler.UpsertNode(SchedulerHarness.Cuda(SchedulerHarness.NodeId(1), 24 * GiB));
        harness.Scheduler.Submit(SchedulerHarness.Job("alice", 4, demand: new ResourceDemand { Device = DeviceKind.Cuda, DeviceMemoryBytes = 10 * GiB }));

        // Two 10 GiB tasks fit in 24 GiB; the third waits although slots are free.
        Assert.Equal(2, harness.Schedule().Count);
        var offer = harness.Commands.OfType<OfferLease>().First();
        harness.Complete(offer);
        Assert.Single(harness.Schedule());
    }

    [Fact]
    public void Schedule_SharedTasks_TakeMemoryAndSharedPlacesButNoTaskSlot()
    {
        var harness = new SchedulerHarness(new SchedulerOptions { SharedTasksPerDevice = 3 });
        var a = SchedulerHarness.NodeId(1);
        harness.Scheduler.UpsertNode(SchedulerHarness.Cpu(a, memory: 10 * GiB));
        var shared = new ResourceDemand { Shared = true, DeviceMemoryBytes = 2 * GiB };

        // A training task holds the only slot; three replicas still fit beside it, a fourth waits for a shared place.
        harness.Scheduler.Submit(SchedulerHarness.Job("trainer", 1));
        Assert.Single(harness.Schedule());
        var replicas = harness.Scheduler.Submit(SchedulerHarness.Job("deployments", 4, demand: shared));
        var offers = harness.Schedule();
        Assert.Equal(3, offers.Count);
        Assert.All(offers, offer => Assert.Equal(a, offer.NodeId));
        var node = harness.Scheduler.GetNode(a)!;
        Assert.Equal((1, 3), (node.UsedSlots, node.UsedSharedSlots));
        Assert.Equal(6 * GiB, node.Devices[0].UsedMemoryBytes);
        Assert.Equal("waiting for a free shared place (and its memory) on one of the 1 fitting node", harness.Scheduler.GetJob(replicas.Id)!.Reason);

        // Ending one replica frees its place and memory for the fourth.
        harness.Complete(offers[0]);
        Assert.Single(harness.Schedule());
        Assert.Equal(6 * GiB, node.Devices[0].UsedMemoryBytes);
    }

    [Fact]
    public void Schedule_SharedTasks_AreBoundedByMemoryAndSpreadOverNodes()
    {
        var harness = new SchedulerHarness();
        harness.Scheduler.UpsertNode(SchedulerHarness.Cpu(SchedulerHarness.NodeId(1), memory: 5 * GiB));
        harness.Scheduler.UpsertNode(SchedulerHarness.Cpu(SchedulerHarness.NodeId(2), memory: 5 * GiB));
        harness.Scheduler.Submit(SchedulerHarness.Job("deployments", 6, demand: new ResourceDemand { Shared = true, DeviceMemoryBytes = 2 * GiB }));

        // 2 GiB each: two per 5 GiB node, spread evenly; the rest wait although shared places are free.
        var offers = harness.Schedule();
        Assert.Equal(4, offers.Count);
        Assert.Equal(2, offers.Count(offer => offer.NodeId == SchedulerHarness.NodeId(1)));
    }

    [Fact]
    public void Schedule_SpreadGroup_PutsAGroupsTasksOnDistinctNodesBeforeDoublingUp()
    {
        var harness = new SchedulerHarness();
        var fast = SchedulerHarness.NodeId(1);
        var slow = SchedulerHarness.NodeId(2);
        harness.Scheduler.UpsertNode(SchedulerHarness.Cpu(fast, gflops: 1000, cache: ["model"]));
        harness.Scheduler.UpsertNode(SchedulerHarness.Cpu(slow, gflops: 10));
        var replica = new ResourceDemand { Shared = true, CacheKeys = ["model"], SpreadGroup = "tiny-v1" };

        // Speed and locality favour the fast node, but the group's second task goes to the other one; the third doubles up.
        harness.Scheduler.Submit(SchedulerHarness.Job("deployments", 1, demand: replica));
        Assert.Equal(fast, Assert.Single(harness.Schedule()).NodeId);
        harness.Scheduler.Submit(SchedulerHarness.Job("deployments", 1, demand: replica));
        Assert.Equal(slow, Assert.Single(harness.Schedule()).NodeId);
        harness.Scheduler.Submit(SchedulerHarness.Job("deployments", 1, demand: replica));
        Assert.Equal(fast, Assert.Single(harness.Schedule()).NodeId);

        // Another group does not count against the nodes.
        harness.Scheduler.Submit(SchedulerHarness.Job("deployments", 1, demand: replica with { SpreadGroup = "other-v1" }));
        Assert.Equal(fast, Assert.Single(harness.Schedule()).NodeId);
        Assert.Equal(2, harness.Scheduler.GetNode(fast)!.GroupCount("tiny-v1"));
    }

    [Fact]
    public void Submit_SharedGang_IsRefused()
    {
        var harness = new SchedulerHarness();
        var error = Assert.Throws<SchedulingException>(() => harness.Scheduler.Submit(SchedulerHarness.Job("alice", 2, demand: new ResourceDemand { Shared = true }, gang: true)));
        Assert.Contains("a gang cannot be shared", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Schedule_DrainingNode_GetsNoNewWorkButKeepsItsLeases()
    {
        var harness = new SchedulerHarness();
        var a = SchedulerHarness.NodeId(1);
        harness.Scheduler.UpsertNode(SchedulerHarness.Cpu(a, slots: 2));
        harness.Scheduler.Submit(SchedulerHarness.Job("alice", 1));
        var offer = Assert.Single(harness.Schedule());

        harness.Scheduler.SetDraining(a);
        harness.Scheduler.Submit(SchedulerHarness.Job("alice", 1));

        Assert.Empty(harness.Schedule());
        Assert.Equal(ResultDisposition.Accepted, harness.Complete(offer));
    }

    [Fact]
    public void Stats_CountsNodesAndWork()
    {
        var harness = new SchedulerHarness();
        harness.AddCpuNodes(3);
        harness.Scheduler.Submit(SchedulerHarness.Job("alice", 5));
        var offers = harness.Schedule();
        harness.Scheduler.Accept(offers[0].NodeId, offers[0].Lease.LeaseId);

        var stats = harness.Scheduler.Stats();

        Assert.Equal(3, stats.Nodes);
        Assert.Equal(0, stats.NodesWithFreeSlots);
        Assert.Equal(2, stats.Queued);
        Assert.Equal(2, stats.Leased);
        Assert.Equal(1, stats.Running);
        Assert.Equal(3, stats.Placements);
    }
}
