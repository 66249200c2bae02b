using System.Text.Json;
using Emc.Coordinator.Persistence;
using Emc.Coordinator.Scheduling;
using Emc.Core;
using Emc.Core.Hardware;
using Emc.Core.Scheduling;
using Microsoft.Data.Sqlite;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;

namespace Emc.Coordinator.Tests.Scheduling;

/// <summary>The scheduler store on a real, migrated SQLite file, registered as the coordinator registers it.</summary>
public sealed class SchedulerStoreTests : IAsyncLifetime
{
    private const string NodeId = "0x00000000000000000000000000000000000000a1";

    private static readonly CancellationToken None = CancellationToken.None;
    private static readonly ResourceDemand AnyDemand = new();

    private readonly string _directory = Directory.CreateTempSubdirectory("emc-scheduler-store-test-").FullName;
    private ServiceProvider _services = null!;
    private SchedulerStore _store = null!;

    public async Task InitializeAsync()
    {
        var services = new ServiceCollection();
        services.AddSingleton(TimeProvider.System);
        services.AddEmcPersistence(_directory);
        _services = services.BuildServiceProvider();
        await _services.GetRequiredService<DatabaseInitializer>().InitializeAsync(None);
        _store = _services.GetRequiredService<SchedulerStore>();
    }

    public async Task DisposeAsync()
    {
        await _services.DisposeAsync();
        SqliteConnection.ClearAllPools();
        Directory.Delete(_directory, recursive: true);
    }

    [Fact]
    public async Task LoadAsync_AfterSubmitScheduleAcceptComplete_RestoresSameJobsAndTasks()
    {
        var scheduler = NewScheduler();
        scheduler.Submit(Job("alice", "a", "b", "c") with { Demand = new ResourceDemand { Device = DeviceKind.Cpu, Labels = new Dictionary<string, string> { ["region"] = "eu" } } });
        scheduler.SetAccountWeight("alice", 2.5);
        await SaveAsync(scheduler);

        scheduler.UpsertNode(Node(slots: 2));
        await SaveAsync(scheduler);

        Assert.Equal(2, scheduler.Schedule());
        await SaveAsync(scheduler);

        Assert.True(scheduler.Accept(NodeId, "job-1.0#1"));
        await SaveAsync(scheduler);

        Assert.Equal(ResultDisposition.Accepted, scheduler.Complete(NodeId, "job-1.1#1", true, "out-b", null, retryable: false));
        await SaveAsync(scheduler);

        scheduler.Submit(Job("bob", "x"));
        scheduler.Cancel("job-2", "cancelled by bob");
        await SaveAsync(scheduler);

        var snapshot = await _store.LoadAsync(DateTimeOffset.UtcNow.AddHours(-1), None);
        Assert.Equal(2, snapshot.LastJobNumber);
        Assert.Equal(["job-1", "job-2"], snapshot.Jobs.Select(j => j.Id));
        Assert.Equal(4, snapshot.Tasks.Count);
        Assert.All(snapshot.Tasks, task => Assert.False(task.IsNew));
        Assert.Equal("c", snapshot.Tasks.Single(t => t.Id == "job-1.2").Input);
        Assert.Equal([("job-1.1", 1)], snapshot.RecordedResults);
        Assert.Equal([KeyValuePair.Create("alice", 2.5)], snapshot.AccountWeights);

        var restored = NewScheduler();
        restored.Restore(snapshot);

        foreach (var jobId in new[] { "job-1", "job-2" })
        {
            var before = scheduler.GetJob(jobId)!;
            var after = restored.GetJob(jobId)!;
            Assert.Equal(Normalize(before), Normalize(after));
            Assert.Equal(JsonSerializer.Serialize(before.Demand, EmcJson.Options), JsonSerializer.Serialize(after.Demand, EmcJson.Options));
        }

        Assert.Equal(
            scheduler.ListTasks(null, null, null, 100).Select(Normalize),
            restored.ListTasks(null, null, null, 100).Select(Normalize));
        Assert.Equal("out-b", restored.GetTask("job-1.1")!.Output);
        Assert.Equal(2.5, restored.AccountWeight("alice"));

        // The recorded result came back, so the same result sent again is known as a duplicate.
        Assert.Equal(ResultDisposition.Duplicate, restored.Complete(NodeId, "job-1.1#1", true, "out-b", null, retryable: false));
    }

    [Fact]
    public async Task GetJobAsync_AfterScheduling_MatchesSchedulerViews()
    {
        var scheduler = NewScheduler();
        scheduler.UpsertNode(Node(slots: 4));
        scheduler.Submit(Job("alice", "a", "b", "c"));
        scheduler.Schedule();
        scheduler.Accept(NodeId, "job-1.0#1");
        scheduler.Complete(NodeId, "job-1.1#1", true, "out-b", null, retryable: false);
        scheduler.Submit(Job("bob", "x", "y") with { MaxRetries = 0, Priority = PriorityClass.High });
        scheduler.Schedule();
        scheduler.Complete(NodeId, "job-2.0#1", false, null, "out of memory", retryable: false);
        scheduler.Cancel("job-2", "cancelled by bob");
        await SaveAsync(scheduler);

        foreach (var jobId in new[] { "job-1", "job-2" })
        {
            var live = scheduler.GetJob(jobId)!;
            var stored = await _store.GetJobAsync(jobId, None);
            Assert.NotNull(stored);
            Assert.Equal(Normalize(live), Normalize(stored));
        }

        var failed = await _store.GetJobAsync("job-2", None);
        Assert.Equal(JobState.Cancelled, failed!.State);
        Assert.Equal(new TaskCounts(0, 0, 0, 0, 1, 1), failed.Tasks);
        Assert.Equal($"failed on node {NodeId}: out of memory", failed.Reason);
        Assert.Equal(scheduler.GetJob("job-2")!.Reason, failed.Reason);
        Assert.NotNull(failed.FinishedAt);

        var liveTasks = scheduler.ListTasks(null, null, null, 100).Select(Normalize).ToList();
        var storedTasks = (await _store.ListTasksAsync(null, null, null, 100, None)).Select(Normalize).ToList();
        Assert.Equal(liveTasks, storedTasks);

        var running = Assert.Single(await _store.ListTasksAsync("job-1", TaskState.Running, null, 100, None));
        Assert.Equal("job-1.0", running.Id);
        Assert.Equal(NodeId, running.NodeId);
        Assert.Equal("cpu", running.Device);
        Assert.NotNull(running.LeaseExpiresAt);
        Assert.Equal("alice", running.Account);

        var completed = await _store.GetTaskAsync("job-1.1", None);
        Assert.NotNull(completed);
        Assert.Equal(Normalize(scheduler.GetTask("job-1.1")!), Normalize(completed));
        Assert.Equal("out-b", completed.Output);
        Assert.Equal(Scheduler.HashOutput("out-b"), completed.OutputHash);
        Assert.Equal(1, completed.WinningAttempt);
        Assert.Equal(NodeId, completed.NodeId);

        var cancelled = await _store.GetTaskAsync("job-2.1", None);
        Assert.Equal(PriorityClass.High, cancelled!.Priority);
        Assert.Equal(0, cancelled.MaxRetries);
        Assert.Equal("cancelled by bob", cancelled.Reason);
    }

    [Fact]
    public async Task ListJobsAsync_StateAndAccountFilters_ReturnsMatchingJobsInNumberOrder()
    {
        var scheduler = NewScheduler();
        for (var i = 0; i < 12; i++)
        {
            scheduler.Submit(Job(i % 2 == 0 ? "alice" : "bob", "x"));
        }

        scheduler.Cancel("job-11", "stop");
        await SaveAsync(scheduler);

        var all = await _store.ListJobsAsync(null, null, 100, None);
        Assert.Equal(Enumerable.Range(1, 12).Select(n => $"job-{n}"), all.Select(j => j.Id));
        Assert.Equal(
            scheduler.ListJobs(null, null, 100).Select(Normalize),
            all.Select(Normalize));

        var alice = await _store.ListJobsAsync(JobState.Queued, "alice", 3, None);
        Assert.Equal(["job-1", "job-3", "job-5"], alice.Select(j => j.Id));

        var cancelled = Assert.Single(await _store.ListJobsAsync(JobState.Cancelled, null, 100, None));
        Assert.Equal("job-11", cancelled.Id);
        Assert.Equal("stop", cancelled.Reason);
        Assert.Equal(new TaskCounts(0, 0, 0, 0, 0, 1), cancelled.Tasks);

        Assert.Empty(await _store.ListJobsAsync(null, "carol", 100, None));
    }

    [Fact]
    public async Task ListTasksAsync_AfterTaskId_PagesInNumericOrder()
    {
        var scheduler = NewScheduler();
        scheduler.Submit(Job("alice", "x"));
        scheduler.Submit(Job("alice", [.. Enumerable.Range(0, 12).Select(i => $"in-{i}")]));
        for (var i = 3; i <= 11; i++)
        {
            scheduler.Submit(Job("alice", "x"));
        }

        await SaveAsync(scheduler);

        var page = await _store.ListTasksAsync("job-2", null, "job-2.9", 10, None);
        Assert.Equal(["job-2.10", "job-2.11"], page.Select(t => t.Id));
        Assert.All(page, task => Assert.Null(task.Output));

        var acrossJobs = await _store.ListTasksAsync(null, null, "job-2.11", 2, None);
        Assert.Equal(["job-3.0", "job-4.0"], acrossJobs.Select(t => t.Id));

        var tail = await _store.ListTasksAsync(null, TaskState.Queued, "job-9.0", 10, None);
        Assert.Equal(["job-10.0", "job-11.0"], tail.Select(t => t.Id));

        // Walking every page in small steps visits each task once, in the scheduler's order.
        var walked = new List<string>();
        string? after = null;
        while (true)
        {
            var next = await _store.ListTasksAsync(null, null, after, 5, None);
            if (next.Count == 0)
            {
                break;
            }

            walked.AddRange(next.Select(t => t.Id));
            after = next[^1].Id;
        }

        Assert.Equal(scheduler.ListTasks(null, null, null, 1000).Select(t => t.Id), walked);
    }

    [Fact]
    public async Task Queries_UnknownIds_ReturnNullOrEmpty()
    {
        var scheduler = NewScheduler();
        scheduler.Submit(Job("alice", "x"));
        await SaveAsync(scheduler);

        Assert.Null(await _store.GetJobAsync("job-99", None));
        Assert.Null(await _store.GetJobAsync("nonsense", None));
        Assert.Null(await _store.GetTaskAsync("job-1.5", None));
        Assert.Null(await _store.GetTaskAsync("job-99.0", None));
        Assert.Null(await _store.FindJobByIdempotencyKeyAsync("never-used", None));
        Assert.Empty(await _store.ListTasksAsync("job-99", null, null, 10, None));
    }

    [Fact]
    public async Task FindJobByIdempotencyKeyAsync_StoredKey_ReturnsFirstJob()
    {
        var scheduler = NewScheduler();
        scheduler.Submit(Job("alice", "x") with { IdempotencyKey = "order-17" });
        await SaveAsync(scheduler);

        var job = await _store.FindJobByIdempotencyKeyAsync("order-17", None);
        Assert.Equal("job-1", job?.Id);
    }

    [Fact]
    public async Task SaveAsync_SameResultTwice_StoresItOnce()
    {
        var at = DateTimeOffset.UtcNow;
        var first = new ResultRecord("job-1.0", 1, NodeId, true, "first", Scheduler.HashOutput("first"), null, true, at);
        var second = first with { Output = "second", OutputHash = Scheduler.HashOutput("second"), Counted = false };

        await _store.SaveAsync(Changes(results: [first]), None);
        await _store.SaveAsync(Changes(results: [second]), None);

        await using var db = await _services.GetRequiredService<IDbContextFactory<EmcDbContext>>().CreateDbContextAsync(None);
        var stored = Assert.Single(await db.TaskResults.AsNoTracking().ToListAsync(None));
        Assert.Equal("first", stored.Output);
        Assert.True(stored.Counted);
        Assert.Equal(at.ToUnixTimeMilliseconds(), stored.AtUnixMs);
    }

    [Fact]
    public async Task SaveAsync_SameChangesTwice_LeavesSameRows()
    {
        var scheduler = NewScheduler();
        scheduler.Submit(Job("alice", "a", "b"));
        var changes = scheduler.DrainChanges();

        await _store.SaveAsync(changes, None);
        await _store.SaveAsync(changes, None);

        var snapshot = await _store.LoadAsync(DateTimeOffset.UtcNow, None);
        Assert.Single(snapshot.Jobs);
        Assert.Equal(2, snapshot.Tasks.Count);
    }

    [Fact]
    public async Task SaveAsync_UpdateOfTaskNeverStored_ThrowsAndWritesNothing()
    {
        var scheduler = NewScheduler();
        scheduler.Submit(Job("alice", "a"));
        var changes = scheduler.DrainChanges();
        var dropped = changes with { Tasks = [.. changes.Tasks.Select(task => task with { IsNew = false, Input = null })] };

        await Assert.ThrowsAsync<InvalidOperationException>(() => _store.SaveAsync(dropped, None));

        // One transaction: the job written before the failing task is rolled back with it.
        Assert.Null(await _store.GetJobAsync("job-1", None));
    }

    [Fact]
    public async Task LoadAsync_JobsFinishedLongAgo_LeftOutButNumberKept()
    {
        var now = DateTimeOffset.UtcNow;
        var scheduler = NewScheduler();
        scheduler.Submit(Job("alice", "a"));
        scheduler.Submit(Job("alice", "b"));
        scheduler.Submit(Job("alice", "c"));
        var changes = scheduler.DrainChanges();
        var jobs = changes.Jobs.Select(job => job.Id switch
        {
            "job-1" => job with { State = JobState.Completed, FinishedAt = now.AddHours(-2) },
            "job-2" => job with { State = JobState.Cancelled, FinishedAt = now.AddMinutes(-5) },
            _ => job,
        }).ToList();
        await _store.SaveAsync(changes with { Jobs = jobs }, None);

        var snapshot = await _store.LoadAsync(now.AddHours(-1), None);

        Assert.Equal(["job-2", "job-3"], snapshot.Jobs.Select(j => j.Id));
        Assert.Equal(["job-2.0", "job-3.0"], snapshot.Tasks.Select(t => t.Id).Order(StringComparer.Ordinal));
        Assert.Equal(3, snapshot.LastJobNumber);
    }

    [Fact]
    public async Task LoadAsync_EmptyDatabase_ReturnsEmptySnapshot()
    {
        var snapshot = await _store.LoadAsync(DateTimeOffset.UtcNow, None);

        Assert.Empty(snapshot.Jobs);
        Assert.Empty(snapshot.Tasks);
        Assert.Empty(snapshot.RecordedResults);
        Assert.Empty(snapshot.AccountWeights);
        Assert.Equal(0, snapshot.LastJobNumber);
    }

    [Fact]
    public async Task SaveAsync_HundredThousandTaskJob_SavesAndLoadsEveryTask()
    {
        var scheduler = NewScheduler();
        var tasks = Enumerable.Range(0, JobSpecValidator.MaxTasksPerJob).Select(i => new TaskSpec { Kind = "square", Input = $"{{\"x\":{i}}}" }).ToList();
        scheduler.Submit(new JobSpec { Account = "alice", Tasks = tasks });
        await SaveAsync(scheduler);

        var snapshot = await _store.LoadAsync(DateTimeOffset.UtcNow, None);
        Assert.Equal(100_000, snapshot.Tasks.Count);
        Assert.Equal("{\"x\":99999}", snapshot.Tasks.Single(t => t.Index == 99_999).Input);

        var restored = NewScheduler();
        restored.Restore(snapshot);
        Assert.Equal(new TaskCounts(100_000, 0, 0, 0, 0, 0), restored.GetJob("job-1")!.Tasks);
        Assert.Equal(100_000, restored.QueuedItems);

        var stored = await _store.GetJobAsync("job-1", None);
        Assert.Equal(100_000, stored!.Tasks.Queued);
        var last = Assert.Single(await _store.ListTasksAsync("job-1", null, "job-1.99998", 10, None));
        Assert.Equal("job-1.99999", last.Id);
    }

    private static Scheduler NewScheduler() => new(new SchedulerOptions(), new SpreadPlacementPolicy(), TimeProvider.System);

    private static NodeCapacity Node(int slots) => new()
    {
        NodeId = NodeId,
        Devices = [new DeviceCapacity { Name = "cpu", Kind = DeviceKind.Cpu, MemoryBytes = 8L << 30, Gflops = 50, Slots = slots }],
        Labels = new Dictionary<string, string> { ["region"] = "eu" },
    };

    private static JobSpec Job(string account, params string[] inputs) => new()
    {
        Name = "test job",
        Account = account,
        Tasks = [.. inputs.Select(input => new TaskSpec { Kind = "echo", Input = input })],
    };

    private static SchedulerChanges Changes(IReadOnlyList<ResultRecord> results) => new([], [], results, [], []);

    private Task SaveAsync(Scheduler scheduler) => _store.SaveAsync(scheduler.DrainChanges(), None);

    // The store keeps times to the millisecond, and only the live scheduler knows why queued work
    // waits; the rest of a view must read the same.
    private static JobView Normalize(JobView view) => view with
    {
        Demand = AnyDemand,
        Reason = view.State.IsTerminal() ? view.Reason : null,
        CreatedAt = Millis(view.CreatedAt),
        UpdatedAt = Millis(view.UpdatedAt),
        FinishedAt = view.FinishedAt is { } finished ? Millis(finished) : null,
    };

    // A restored lease gets a fresh expiry, so the expiry is compared only where it is asserted.
    private static TaskView Normalize(TaskView view) => view with
    {
        Reason = view.State == TaskState.Queued ? null : view.Reason,
        LeaseExpiresAt = null,
        CreatedAt = Millis(view.CreatedAt),
        UpdatedAt = Millis(view.UpdatedAt),
    };

    private static DateTimeOffset Millis(DateTimeOffset time) => DateTimeOffset.FromUnixTimeMilliseconds(time.ToUnixTimeMilliseconds());
}
