using System.Net;
using System.Net.Http.Json;
using Emc.Client;
using Emc.Contracts.Node.V1;
using Emc.Coordinator.Registry;
using Emc.Coordinator.Tests.Infrastructure;
using Emc.Core.Identity;
using Emc.Core.Scheduling;
using Emc.Node.Connection;
using TaskState = Emc.Core.Scheduling.TaskState;

namespace Emc.Coordinator.Tests.Scheduling;

/// <summary>The scheduler through its real doors: the REST API, and nodes' gRPC streams. Each test has its own coordinator, since scheduling is network-wide.</summary>
public sealed class SchedulingGatewayTests
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(20);

    private static JobSpec Job(int tasks, string account = "alice", ResourceDemand? demand = null) => new()
    {
        Name = "gateway-test",
        Account = account,
        Demand = demand ?? new ResourceDemand(),
        Tasks = [.. Enumerable.Range(0, tasks).Select(i => new TaskSpec { Kind = "sleep", Input = $"{{\"ms\":{i}}}" })],
    };

    /// <summary>Reads until a message of <paramref name="kind"/> arrives (heartbeat acks and others are skipped).</summary>
    private static async Task<CoordinatorMessage> NextAsync(NodeConnection node, CoordinatorMessage.BodyOneofCase kind)
    {
        using var timeout = new CancellationTokenSource(Wait);
        while (true)
        {
            var message = await node.ReadAsync(timeout.Token) ?? throw new InvalidOperationException("the coordinator ended the stream");
            if (message.BodyCase == kind)
            {
                return message;
            }
        }
    }

    private static async Task<TaskView> WaitForTaskAsync(EmcApiClient api, string id, Func<TaskView, bool> condition)
    {
        using var deadline = new CancellationTokenSource(Wait);
        TaskView? last = null;
        while (!deadline.IsCancellationRequested)
        {
            last = await api.GetTaskAsync(id, CancellationToken.None);
            if (condition(last))
            {
                return last;
            }

            await Task.Delay(20, CancellationToken.None);
        }

        throw new TimeoutException($"task {id} stayed {last?.State}: {last?.Reason}");
    }

    [Fact]
    public async Task Lease_OfferAcceptResult_CompletesTaskAndAcknowledgesOnce()
    {
        await using var coordinator = await TestCoordinator.StartAsync();
        using var key = NodeKey.Create();
        await using var node = await NodeConnection.OpenAsync(coordinator.Channel, key, Registrations.Valid("worker"), "test", CancellationToken.None);
        var job = await coordinator.Api.SubmitJobAsync(Job(1), CancellationToken.None);

        var offer = (await NextAsync(node, CoordinatorMessage.BodyOneofCase.LeaseOffer)).LeaseOffer;
        Assert.Equal(job.Id + ".0#1", offer.LeaseId);
        Assert.Equal(("sleep", "{\"ms\":0}", "cpu"), (offer.Kind, offer.Input, offer.Device));

        await node.SendAsync(new NodeMessage { LeaseAccept = new LeaseAccept { LeaseId = offer.LeaseId } }, CancellationToken.None);
        await WaitForTaskAsync(coordinator.Api, offer.TaskId, t => t.State == TaskState.Running);

        var result = new NodeMessage { TaskResult = new TaskResult { LeaseId = offer.LeaseId, Succeeded = true, Output = "{\"sleptMs\":0}" } };
        await node.SendAsync(result, CancellationToken.None);
        var ack = (await NextAsync(node, CoordinatorMessage.BodyOneofCase.ResultAck)).ResultAck;
        Assert.Equal(Contracts.Node.V1.ResultDisposition.Accepted, ack.Disposition);

        // The node did not hear the ack (say) and sends the result again: recorded once.
        await node.SendAsync(result, CancellationToken.None);
        var again = (await NextAsync(node, CoordinatorMessage.BodyOneofCase.ResultAck)).ResultAck;
        Assert.Equal(Contracts.Node.V1.ResultDisposition.Duplicate, again.Disposition);

        var task = await coordinator.Api.GetTaskAsync(offer.TaskId, CancellationToken.None);
        Assert.Equal(TaskState.Completed, task.State);
        Assert.Equal("{\"sleptMs\":0}", task.Output);
        Assert.Equal(Scheduler.HashOutput("{\"sleptMs\":0}"), task.OutputHash);
        Assert.Equal(JobState.Completed, (await coordinator.Api.GetJobAsync(job.Id, CancellationToken.None)).State);
    }

    [Fact]
    public async Task NodeLost_StreamBreaks_LeaseGoesToAnotherNodeAndLateResultIsSuperseded()
    {
        await using var coordinator = await TestCoordinator.StartAsync();
        using var firstKey = NodeKey.Create();
        using var secondKey = NodeKey.Create();
        var first = await NodeConnection.OpenAsync(coordinator.Channel, firstKey, Registrations.Valid("first"), "test", CancellationToken.None);
        var job = await coordinator.Api.SubmitJobAsync(Job(1), CancellationToken.None);
        var offer = (await NextAsync(first, CoordinatorMessage.BodyOneofCase.LeaseOffer)).LeaseOffer;

        await first.DisposeAsync();
        await WaitForTaskAsync(coordinator.Api, offer.TaskId, t => t.State == TaskState.Queued);
        var queued = await coordinator.Api.GetTaskAsync(offer.TaskId, CancellationToken.None);
        Assert.Contains("was lost", queued.Reason, StringComparison.Ordinal);
        Assert.Equal(1, queued.Retries);

        await using var second = await NodeConnection.OpenAsync(coordinator.Channel, secondKey, Registrations.Valid("second"), "test", CancellationToken.None);
        var reissued = (await NextAsync(second, CoordinatorMessage.BodyOneofCase.LeaseOffer)).LeaseOffer;
        Assert.Equal(job.Id + ".0#2", reissued.LeaseId);
        await second.SendAsync(new NodeMessage { TaskResult = new TaskResult { LeaseId = reissued.LeaseId, Succeeded = true, Output = "second" } }, CancellationToken.None);
        Assert.Equal(Contracts.Node.V1.ResultDisposition.Accepted, (await NextAsync(second, CoordinatorMessage.BodyOneofCase.ResultAck)).ResultAck.Disposition);

        // The first node comes back and delivers its result for the old lease: recorded, not counted.
        await using var back = await NodeConnection.OpenAsync(coordinator.Channel, firstKey, Registrations.Valid("first"), "test", CancellationToken.None);
        await back.SendAsync(new NodeMessage { TaskResult = new TaskResult { LeaseId = offer.LeaseId, Succeeded = true, Output = "first" } }, CancellationToken.None);
        var late = (await NextAsync(back, CoordinatorMessage.BodyOneofCase.ResultAck)).ResultAck;
        Assert.Equal(Contracts.Node.V1.ResultDisposition.Superseded, late.Disposition);
        Assert.Equal("second", (await coordinator.Api.GetTaskAsync(offer.TaskId, CancellationToken.None)).Output);
    }

    [Fact]
    public async Task ForgedResult_FromANodeThatDoesNotHoldTheLease_IsRejected()
    {
        await using var coordinator = await TestCoordinator.StartAsync();
        using var workerKey = NodeKey.Create();
        using var forgerKey = NodeKey.Create();
        await using var worker = await NodeConnection.OpenAsync(coordinator.Channel, workerKey, Registrations.Valid("worker"), "test", CancellationToken.None);
        await coordinator.Api.SubmitJobAsync(Job(1), CancellationToken.None);
        var offer = (await NextAsync(worker, CoordinatorMessage.BodyOneofCase.LeaseOffer)).LeaseOffer;

        await using var forger = await NodeConnection.OpenAsync(coordinator.Channel, forgerKey, Registrations.Valid("forger"), "test", CancellationToken.None);
        await forger.SendAsync(new NodeMessage { TaskResult = new TaskResult { LeaseId = offer.LeaseId, Succeeded = true, Output = "forged" } }, CancellationToken.None);

        var ack = (await NextAsync(forger, CoordinatorMessage.BodyOneofCase.ResultAck)).ResultAck;
        Assert.Equal(Contracts.Node.V1.ResultDisposition.Rejected, ack.Disposition);
        Assert.Equal(TaskState.Leased, (await coordinator.Api.GetTaskAsync(offer.TaskId, CancellationToken.None)).State);
    }

    [Fact]
    public async Task Restart_QueuedAndLeasedWorkSurvives_AndCompletedWorkIsNotRedone()
    {
        var data = Directory.CreateTempSubdirectory("emc-sched-restart-").FullName;
        try
        {
            using var key = NodeKey.Create();
            string jobId;
            LeaseOffer held;
            // The coordinator stops while the node's stream is still open, as in a crash: the node's
            // lease must survive. (A node whose stream ends while the coordinator runs is lost, and its
            // work is rightly reissued, so the node is closed only after the coordinator.)
            // This node sends no heartbeats until it reconnects: the liveness timeout is long enough that a
            // loaded machine does not declare it lost (and reissue its lease) before the coordinator stops.
            var first = await TestCoordinator.StartAsync(data, SlowLiveness);
            var node = await NodeConnection.OpenAsync(first.Channel, key, Registrations.Valid("worker"), "test", CancellationToken.None);
            try
            {
                jobId = (await first.Api.SubmitJobAsync(Job(3), CancellationToken.None)).Id;
                var done = (await NextAsync(node, CoordinatorMessage.BodyOneofCase.LeaseOffer)).LeaseOffer;
                await node.SendAsync(new NodeMessage { TaskResult = new TaskResult { LeaseId = done.LeaseId, Succeeded = true, Output = "zero" } }, CancellationToken.None);
                await NextAsync(node, CoordinatorMessage.BodyOneofCase.ResultAck);
                held = (await NextAsync(node, CoordinatorMessage.BodyOneofCase.LeaseOffer)).LeaseOffer;
                await node.SendAsync(new NodeMessage { LeaseAccept = new LeaseAccept { LeaseId = held.LeaseId } }, CancellationToken.None);
                await WaitForTaskAsync(first.Api, held.TaskId, t => t.State == TaskState.Running);
            }
            finally
            {
                await first.DisposeAsync();
                await node.DisposeAsync();
            }

            await using var second = await TestCoordinator.StartAsync(data, SlowLiveness);
            var job = await second.Api.GetJobAsync(jobId, CancellationToken.None);
            Assert.Equal(new TaskCounts(1, 0, 1, 1, 0, 0), job.Tasks);

            // The node reconnects still running its lease; it heartbeats it and delivers the result.
            await using var again = await NodeConnection.OpenAsync(second.Channel, key, Registrations.Valid("worker"), "test", CancellationToken.None);
            var heartbeat = new NodeMessage { Heartbeat = new Heartbeat { Seq = 1, RunningTasks = 1 } };
            heartbeat.Heartbeat.LeaseIds.Add(held.LeaseId);
            await again.SendAsync(heartbeat, CancellationToken.None);
            await again.SendAsync(new NodeMessage { TaskResult = new TaskResult { LeaseId = held.LeaseId, Succeeded = true, Output = "one" } }, CancellationToken.None);
            Assert.Equal(Contracts.Node.V1.ResultDisposition.Accepted, (await NextAsync(again, CoordinatorMessage.BodyOneofCase.ResultAck)).ResultAck.Disposition);

            // Only the task that never ran is offered: nothing completed is redone.
            var last = (await NextAsync(again, CoordinatorMessage.BodyOneofCase.LeaseOffer)).LeaseOffer;
            Assert.Equal(jobId + ".2#1", last.LeaseId);
            Assert.Equal("zero", (await second.Api.GetTaskAsync(jobId + ".0", CancellationToken.None)).Output);
        }
        finally
        {
            Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
            Directory.Delete(data, recursive: true);
        }
    }

    private static void SlowLiveness(RegistryOptions options)
    {
        TestCoordinator.FastLiveness(options);
        options.HeartbeatTimeout = TimeSpan.FromSeconds(60);
    }

    [Fact]
    public async Task Api_UnschedulableJob_SaysWhyAndBadRequestsAreClear()
    {
        await using var coordinator = await TestCoordinator.StartAsync();
        using var key = NodeKey.Create();
        await using var node = await NodeConnection.OpenAsync(coordinator.Channel, key, Registrations.Valid("cpu-only"), "test", CancellationToken.None);
        var job = await coordinator.Api.SubmitJobAsync(Job(2, demand: new ResourceDemand { Device = Core.Hardware.DeviceKind.Cuda, DeviceMemoryBytes = 12L << 30 }), CancellationToken.None);

        using var deadline = new CancellationTokenSource(Wait);
        JobView view;
        do
        {
            view = await coordinator.Api.GetJobAsync(job.Id, CancellationToken.None);
        }
        while (view.Reason != "no node with a cuda device" && !deadline.IsCancellationRequested && await Task.Delay(20, CancellationToken.None).ContinueWith(_ => true));

        Assert.Equal("no node with a cuda device", view.Reason);
        var tasks = await coordinator.Api.GetTasksAsync(job.Id, TaskState.Queued, null, 10, CancellationToken.None);
        Assert.Equal(2, tasks.Count);
        Assert.All(tasks, t => Assert.Equal("no node with a cuda device", t.Reason));

        async Task<HttpStatusCode> Status(HttpResponseMessage response)
        {
            using (response)
            {
                var problem = await response.Content.ReadAsStringAsync();
                Assert.Contains("detail", problem, StringComparison.Ordinal);
                return response.StatusCode;
            }
        }

        Assert.Equal(HttpStatusCode.BadRequest, await Status(await coordinator.Http.PostAsync("api/v1/jobs", new StringContent("{not json", System.Text.Encoding.UTF8, "application/json"))));
        Assert.Equal(HttpStatusCode.BadRequest, await Status(await coordinator.Http.PostAsJsonAsync("api/v1/jobs", new { account = "alice", tasks = Array.Empty<object>() })));
        Assert.Equal(HttpStatusCode.BadRequest, await Status(await coordinator.Http.PostAsJsonAsync("api/v1/jobs", new { account = "alice", priority = "urgent", tasks = new[] { new { kind = "sleep" } } })));
        Assert.Equal(HttpStatusCode.BadRequest, await Status(await coordinator.Http.GetAsync("api/v1/tasks?state=sleeping")));
        Assert.Equal(HttpStatusCode.BadRequest, await Status(await coordinator.Http.GetAsync("api/v1/tasks?limit=0")));
        Assert.Equal(HttpStatusCode.NotFound, await Status(await coordinator.Http.GetAsync("api/v1/tasks?job=job-999")));
        Assert.Equal(HttpStatusCode.NotFound, await Status(await coordinator.Http.GetAsync("api/v1/jobs/job-999")));
        Assert.Equal(HttpStatusCode.NotFound, await Status(await coordinator.Http.GetAsync("api/v1/tasks/job-1.77")));
        Assert.Equal(HttpStatusCode.NotFound, await Status(await coordinator.Http.PostAsync("api/v1/jobs/job-999/cancel", null)));
        Assert.Equal(HttpStatusCode.BadRequest, await Status(await coordinator.Http.PutAsJsonAsync("api/v1/accounts/alice/weight", new { weight = -1 })));
        Assert.Single(await coordinator.Api.GetJobsAsync(null, null, 100, CancellationToken.None));
    }

    [Fact]
    public async Task Api_SubmitWithIdempotencyKeyTwice_MakesOneJob()
    {
        await using var coordinator = await TestCoordinator.StartAsync();
        var spec = Job(2) with { IdempotencyKey = "client-retry-1" };

        var first = await coordinator.Api.SubmitJobAsync(spec, CancellationToken.None);
        var second = await coordinator.Api.SubmitJobAsync(spec, CancellationToken.None);

        Assert.Equal(first.Id, second.Id);
        Assert.Single(await coordinator.Api.GetJobsAsync(null, null, 100, CancellationToken.None));
        var weight = await coordinator.Api.SetAccountWeightAsync("alice", 3, CancellationToken.None);
        Assert.Equal(3, weight.Weight);
        var cancelled = await coordinator.Api.CancelJobAsync(first.Id, CancellationToken.None);
        Assert.Equal(JobState.Cancelled, cancelled.State);
    }
}
