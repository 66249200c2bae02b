using Emc.Core.Hardware;
using Emc.Core.Scheduling;
using Microsoft.Extensions.Time.Testing;

namespace Emc.Core.Tests.Scheduling;

/// <summary>A scheduler on a fake clock, with helpers to add nodes and play the nodes' part.</summary>
internal sealed class SchedulerHarness
{
    public SchedulerHarness(SchedulerOptions? options = null, IPlacementPolicy? policy = null)
    {
        Options = options ?? new SchedulerOptions();
        Scheduler = new Scheduler(Options, policy ?? new SpreadPlacementPolicy(), Clock);
    }

    public FakeTimeProvider Clock { get; } = new(new DateTimeOffset(2026, 11, 24, 12, 0, 0, TimeSpan.Zero));

    public SchedulerOptions Options { get; }

    public Scheduler Scheduler { get; private set; }

    /// <summary>Every change drained so far, merged as a database would hold it.</summary>
    public MemoryJournal Journal { get; } = new();

    /// <summary>Commands drained so far, in order.</summary>
    public List<NodeCommand> Commands { get; } = [];

    public static string NodeId(int i) => $"0x{i:x40}";

    public static NodeCapacity Cpu(string id, double gflops = 100, long memory = 16L << 30, int slots = 1, Dictionary<string, string>? labels = null, long price = 0, string[]? cache = null) => new()
    {
        NodeId = id,
        Devices = [new DeviceCapacity { Name = "cpu", Kind = DeviceKind.Cpu, MemoryBytes = memory, Gflops = gflops, Slots = slots }],
        Labels = labels ?? [],
        Price = price,
        CacheKeys = cache ?? [],
    };

    public static NodeCapacity Cuda(string id, long memory, double gflops = 10_000, int gpus = 1) => new()
    {
        NodeId = id,
        Devices =
        [
            new DeviceCapacity { Name = "cpu", Kind = DeviceKind.Cpu, MemoryBytes = 32L << 30, Gflops = 100 },
            .. Enumerable.Range(0, gpus).Select(i => new DeviceCapacity { Name = $"cuda:{i}", Kind = DeviceKind.Cuda, MemoryBytes = memory, Gflops = gflops }),
        ],
    };

    public List<string> AddCpuNodes(int count, int first = 1)
    {
        var ids = new List<string>();
        for (var i = first; i < first + count; i++)
        {
            Scheduler.UpsertNode(Cpu(NodeId(i)));
            ids.Add(NodeId(i));
        }

        return ids;
    }

    public static JobSpec Job(string account, int tasks, PriorityClass priority = PriorityClass.Normal, ResourceDemand? demand = null, bool gang = false, int? maxRetries = null) => new()
    {
        Name = $"{account}-job",
        Account = account,
        Priority = priority,
        Demand = demand ?? new ResourceDemand(),
        Gang = gang,
        MaxRetries = maxRetries,
        Tasks = [.. Enumerable.Range(0, tasks).Select(i => new TaskSpec { Kind = "sleep", Input = $"{{\"ms\":{i}}}" })],
    };

    /// <summary>Runs a pass and drains: returns the offers made.</summary>
    public List<OfferLease> Schedule()
    {
        Scheduler.Schedule();
        return [.. Drain().OfType<OfferLease>()];
    }

    public List<NodeCommand> Drain()
    {
        var changes = Scheduler.DrainChanges();
        Journal.Apply(changes);
        Commands.AddRange(changes.Commands);
        return [.. changes.Commands];
    }

    public ResultDisposition Complete(OfferLease offer, string? output = null) =>
        Scheduler.Complete(offer.NodeId, offer.Lease.LeaseId, true, output ?? $"done {offer.Lease.TaskId}", null, false);

    public TaskView Task(string id) => Scheduler.GetTask(id) ?? throw new InvalidOperationException($"no task {id}");

    /// <summary>Replaces the scheduler with a new one restored from the journal, as a restarted coordinator would.</summary>
    public void Restart()
    {
        Drain();
        Scheduler = new Scheduler(Options, new SpreadPlacementPolicy(), Clock);
        Scheduler.Restore(Journal.Snapshot());
    }
}

/// <summary>Holds the latest record of everything, like the coordinator's database.</summary>
internal sealed class MemoryJournal
{
    public Dictionary<string, JobRecord> Jobs { get; } = [];
    public Dictionary<string, TaskRecord> Tasks { get; } = [];
    public Dictionary<(string, int), ResultRecord> Results { get; } = [];
    public Dictionary<string, double> Weights { get; } = [];

    public void Apply(SchedulerChanges changes)
    {
        foreach (var job in changes.Jobs)
        {
            Jobs[job.Id] = job;
        }

        foreach (var task in changes.Tasks)
        {
            Tasks[task.Id] = task.IsNew ? task : task with { Input = Tasks[task.Id].Input };
        }

        foreach (var result in changes.Results)
        {
            Assert.True(Results.TryAdd((result.TaskId, result.Attempt), result), $"result of {result.TaskId}#{result.Attempt} recorded twice");
        }

        foreach (var (account, weight) in changes.AccountWeights)
        {
            Weights[account] = weight;
        }
    }

    public SchedulerSnapshot Snapshot() => new(
        [.. Jobs.Values],
        [.. Tasks.Values],
        [.. Results.Keys],
        [.. Weights],
        Jobs.Values.Select(job => job.Number).DefaultIfEmpty(0).Max());
}
