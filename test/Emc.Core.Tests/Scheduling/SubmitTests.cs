using Emc.Core.Scheduling;

namespace Emc.Core.Tests.Scheduling;

public class SubmitTests
{
    public static TheoryData<JobSpec, string> InvalidJobs => new()
    {
        { SchedulerHarness.Job("", 1), "account must be" },
        { SchedulerHarness.Job("has space", 1), "account must be" },
        { SchedulerHarness.Job("alice", 0), "at least one task" },
        { SchedulerHarness.Job("alice", 1) with { Priority = (PriorityClass)7 }, "priority must be" },
        { SchedulerHarness.Job("alice", 1, demand: new ResourceDemand { DeviceMemoryBytes = -1 }), "deviceMemoryBytes" },
        { SchedulerHarness.Job("alice", 1, demand: new ResourceDemand { MinGflops = double.NaN }), "minGflops" },
        { SchedulerHarness.Job("alice", 1, demand: new ResourceDemand { Labels = new Dictionary<string, string> { ["re gion"] = "eu" } }), "labels" },
        { SchedulerHarness.Job("alice", 1) with { Tasks = [new TaskSpec { Kind = "sleep", Input = new string('x', 70_000) }] }, "input must be at most" },
        { SchedulerHarness.Job("alice", 1) with { Tasks = [new TaskSpec { Kind = "" }] }, "kind must be" },
        { SchedulerHarness.Job("alice", 1) with { MaxRetries = 21 }, "maxRetries" },
        { SchedulerHarness.Job("alice", 1) with { LeaseDuration = TimeSpan.FromMilliseconds(10) }, "leaseDuration" },
        { SchedulerHarness.Job("alice", 1) with { IdempotencyKey = "" }, "idempotencyKey" },
    };

    [Theory]
    [MemberData(nameof(InvalidJobs))]
    public void Submit_InvalidJob_ThrowsWithAClearMessageAndStoresNothing(JobSpec spec, string expected)
    {
        var harness = new SchedulerHarness();

        var error = Assert.Throws<SchedulingException>(() => harness.Scheduler.Submit(spec));

        Assert.Contains(expected, error.Message, StringComparison.Ordinal);
        Assert.True(harness.Scheduler.DrainChanges().IsEmpty);
        Assert.Equal(0, harness.Scheduler.Stats().Jobs);
    }

    [Fact]
    public void Submit_ValidJob_QueuesEveryTaskAndRecordsThem()
    {
        var harness = new SchedulerHarness();

        var job = harness.Scheduler.Submit(SchedulerHarness.Job("alice", 3));

        Assert.Equal("job-1", job.Id);
        Assert.Equal(JobState.Queued, job.State);
        Assert.Equal(3, job.Tasks.Queued);
        var changes = harness.Scheduler.DrainChanges();
        Assert.True(Assert.Single(changes.Jobs).IsNew);
        Assert.Equal(3, changes.Tasks.Count);
        Assert.All(changes.Tasks, t => Assert.True(t.IsNew));
        Assert.All(changes.Tasks, t => Assert.NotNull(t.Input));
        Assert.Equal(["job-1.0", "job-1.1", "job-1.2"], harness.Scheduler.ListTasks("job-1", null, null, 10).Select(t => t.Id));
    }

    [Fact]
    public void ListTasks_PagesInIdOrder()
    {
        var harness = new SchedulerHarness();
        harness.Scheduler.Submit(SchedulerHarness.Job("alice", 12));
        harness.Scheduler.Submit(SchedulerHarness.Job("bob", 3));

        var page = harness.Scheduler.ListTasks(null, null, "job-1.9", 4);

        Assert.Equal(["job-1.10", "job-1.11", "job-2.0", "job-2.1"], page.Select(t => t.Id));
        Assert.Empty(harness.Scheduler.ListTasks(null, TaskState.Completed, null, 10));
        Assert.Null(harness.Scheduler.GetTask("job-1.12"));
        Assert.Null(harness.Scheduler.GetTask("nonsense"));
    }
}
