using Emc.Contracts.Node.V1;
using Emc.Node.Work;
using Microsoft.Extensions.Logging.Abstractions;

namespace Emc.Node.Tests.Work;

[System.Diagnostics.CodeAnalysis.SuppressMessage("Design", "CA1001", Justification = "xunit disposes the runner through IAsyncLifetime.")]
public sealed class LeaseRunnerTests : IAsyncLifetime
{
    private readonly ControlledExecutor _executor = new("fake");
    private readonly RecordingOutbox _outbox = new();
    private readonly LeaseRunner _runner;

    public LeaseRunnerTests()
    {
        _runner = new LeaseRunner(new TaskExecutors([_executor]), ["cpu", "cuda:0"], NullLogger.Instance);
    }

    public async Task InitializeAsync() => await _runner.AttachAsync(_outbox, CancellationToken.None);

    public async Task DisposeAsync() => await _runner.DisposeAsync();

    [Fact]
    public async Task Offer_KnownKindOnOwnDevice_AcceptsRunsAndSendsResult()
    {
        await _runner.OfferAsync(Offer("t1#1", input: "{\"x\":1}"), CancellationToken.None);

        var accept = await _outbox.NextAsync(NodeMessage.BodyOneofCase.LeaseAccept);
        Assert.Equal("t1#1", accept.LeaseAccept.LeaseId);
        var run = await _executor.NextRunAsync();
        Assert.Equal(new TaskContext("t1#1", "t1", "job-1", "{\"x\":1}", "cpu"), run.Context);

        run.Outcome.SetResult("done");

        var result = (await _outbox.NextAsync(NodeMessage.BodyOneofCase.TaskResult)).TaskResult;
        Assert.Equal("t1#1", result.LeaseId);
        Assert.True(result.Succeeded);
        Assert.Equal("done", result.Output);
        Assert.Equal(["t1#1"], _runner.HeldLeaseIds);

        _runner.Acknowledge(new ResultAck { LeaseId = "t1#1", Disposition = ResultDisposition.Accepted });

        Assert.True(_runner.IsIdle);
        Assert.Empty(_runner.HeldLeaseIds);
    }

    [Fact]
    public async Task Offer_DeviceAlias_RunsOnTheNormalisedDevice()
    {
        await _runner.OfferAsync(Offer("t1#1", device: "cuda"), CancellationToken.None);

        await _outbox.NextAsync(NodeMessage.BodyOneofCase.LeaseAccept);
        Assert.Equal("cuda:0", (await _executor.NextRunAsync()).Context.Device);
    }

    [Fact]
    public async Task Offer_UnknownKind_Rejects()
    {
        await _runner.OfferAsync(Offer("t1#1", kind: "train"), CancellationToken.None);

        var reject = (await _outbox.NextAsync(NodeMessage.BodyOneofCase.LeaseReject)).LeaseReject;
        Assert.Equal("t1#1", reject.LeaseId);
        Assert.Contains("no executor for kind 'train'", reject.Reason, StringComparison.Ordinal);
        Assert.Contains("fake", reject.Reason, StringComparison.Ordinal);
        Assert.True(_runner.IsIdle);
    }

    [Theory]
    [InlineData("cuda:1")]
    [InlineData("tpu:0")]
    [InlineData("")]
    public async Task Offer_DeviceNotOffered_Rejects(string device)
    {
        await _runner.OfferAsync(Offer("t1#1", device: device), CancellationToken.None);

        var reject = (await _outbox.NextAsync(NodeMessage.BodyOneofCase.LeaseReject)).LeaseReject;
        Assert.Equal("t1#1", reject.LeaseId);
        Assert.Contains("is not offered by this node (it offers cpu, cuda:0)", reject.Reason, StringComparison.Ordinal);
        Assert.True(_runner.IsIdle);
    }

    [Fact]
    public async Task Offer_LeaseAlreadyHeld_RejectsTheDuplicateAndKeepsTheFirst()
    {
        await _runner.OfferAsync(Offer("t1#1"), CancellationToken.None);
        await _outbox.NextAsync(NodeMessage.BodyOneofCase.LeaseAccept);
        var run = await _executor.NextRunAsync();

        await _runner.OfferAsync(Offer("t1#1"), CancellationToken.None);

        var reject = (await _outbox.NextAsync(NodeMessage.BodyOneofCase.LeaseReject)).LeaseReject;
        Assert.Contains("already held", reject.Reason, StringComparison.Ordinal);
        Assert.Equal(1, _runner.RunningCount);
        Assert.False(run.Cancelled.Task.IsCompleted);
    }

    [Fact]
    public async Task GangMember_WaitsForGangStart_ThenRuns()
    {
        await _runner.OfferAsync(Offer("t1#1", gangId: "job-1"), CancellationToken.None);
        await _outbox.NextAsync(NodeMessage.BodyOneofCase.LeaseAccept);

        // Not started (a non-gang lease is running by the time OfferAsync returns), but held.
        Assert.Equal(0, _runner.RunningCount);
        Assert.Equal(["t1#1"], _runner.HeldLeaseIds);

        await _runner.HandleAsync(new CoordinatorMessage { GangStart = new GangStart { GangId = "another-gang", LeaseId = "t1#1" } }, CancellationToken.None);
        await _runner.HandleAsync(new CoordinatorMessage { GangStart = new GangStart { GangId = "job-1", LeaseId = "t2#1" } }, CancellationToken.None);
        Assert.Equal(0, _runner.RunningCount);

        await _runner.HandleAsync(new CoordinatorMessage { GangStart = new GangStart { GangId = "job-1", LeaseId = "t1#1" } }, CancellationToken.None);

        Assert.Equal(1, _runner.RunningCount);
        var run = await _executor.NextRunAsync();
        Assert.Equal("t1#1", run.Context.LeaseId);
        run.Outcome.SetResult("ok");
        Assert.True((await _outbox.NextAsync(NodeMessage.BodyOneofCase.TaskResult)).TaskResult.Succeeded);
    }

    [Fact]
    public async Task Revoke_RunningLease_CancelsItAndSendsNoResult()
    {
        await _runner.OfferAsync(Offer("t1#1"), CancellationToken.None);
        await _outbox.NextAsync(NodeMessage.BodyOneofCase.LeaseAccept);
        var run = await _executor.NextRunAsync();

        await _runner.HandleAsync(new CoordinatorMessage { LeaseRevoke = new LeaseRevoke { LeaseId = "t1#1", Reason = "reissued" } }, CancellationToken.None);

        await run.Cancelled.Task.WaitAsync(Wait.Timeout);
        Assert.Empty(_runner.HeldLeaseIds);
        // Idle only once the executor has returned; by then any result would have been sent.
        await _runner.WhenIdleAsync(CancellationToken.None).WaitAsync(Wait.Timeout);
        Assert.False(_outbox.HasMore);
    }

    [Fact]
    public async Task Revoke_GangMemberNotStarted_ForgetsIt()
    {
        await _runner.OfferAsync(Offer("t1#1", gangId: "job-1"), CancellationToken.None);
        await _outbox.NextAsync(NodeMessage.BodyOneofCase.LeaseAccept);

        _runner.Revoke(new LeaseRevoke { LeaseId = "t1#1", Reason = "gang released" });
        _runner.StartGang(new GangStart { GangId = "job-1", LeaseId = "t1#1" });

        Assert.True(_runner.IsIdle);
        Assert.Equal(0, _runner.RunningCount);
        Assert.False(_outbox.HasMore);
    }

    [Fact]
    public async Task Result_AfterEachReconnect_IsSentAgainUntilAcknowledged()
    {
        await _runner.OfferAsync(Offer("t1#1"), CancellationToken.None);
        await _outbox.NextAsync(NodeMessage.BodyOneofCase.LeaseAccept);
        (await _executor.NextRunAsync()).Outcome.SetResult("out");
        Assert.Equal("out", (await _outbox.NextAsync(NodeMessage.BodyOneofCase.TaskResult)).TaskResult.Output);

        for (var reconnect = 0; reconnect < 2; reconnect++)
        {
            _runner.Detach(_outbox);
            var next = new RecordingOutbox();
            await _runner.AttachAsync(next, CancellationToken.None);

            var again = (await next.NextAsync(NodeMessage.BodyOneofCase.TaskResult)).TaskResult;
            Assert.Equal("t1#1", again.LeaseId);
            Assert.Equal("out", again.Output);
            Assert.False(next.HasMore);
            _runner.Detach(next);
        }

        // Any disposition ends it, a rejection too.
        await _runner.HandleAsync(new CoordinatorMessage { ResultAck = new ResultAck { LeaseId = "t1#1", Disposition = ResultDisposition.Rejected, Message = "no" } }, CancellationToken.None);
        var last = new RecordingOutbox();
        await _runner.AttachAsync(last, CancellationToken.None);

        Assert.False(last.HasMore);
        Assert.True(_runner.IsIdle);
    }

    [Fact]
    public async Task Result_FinishedWhileDisconnected_IsSentOnTheNextSession()
    {
        await _runner.OfferAsync(Offer("t1#1"), CancellationToken.None);
        await _outbox.NextAsync(NodeMessage.BodyOneofCase.LeaseAccept);
        var run = await _executor.NextRunAsync();
        _runner.Detach(_outbox);

        run.Outcome.SetResult("late");
        var next = new RecordingOutbox();
        await _runner.AttachAsync(next, CancellationToken.None);

        // Whether it finished before or after the attach, the result reaches the new session.
        Assert.Equal("late", (await next.NextAsync(NodeMessage.BodyOneofCase.TaskResult)).TaskResult.Output);
        Assert.False(_outbox.HasMore);
    }

    [Fact]
    public async Task FillHeartbeat_ListsRunningWaitingAndUnacknowledgedLeases()
    {
        await _runner.OfferAsync(Offer("a#1"), CancellationToken.None);             // running
        await _runner.OfferAsync(Offer("b#1", gangId: "g"), CancellationToken.None); // waiting for its gang
        await _runner.OfferAsync(Offer("c#1"), CancellationToken.None);             // result not yet acknowledged
        await _runner.OfferAsync(Offer("d#1"), CancellationToken.None);             // acknowledged
        await _runner.OfferAsync(Offer("e#1"), CancellationToken.None);             // revoked
        await _runner.OfferAsync(Offer("f#1", kind: "unknown"), CancellationToken.None); // rejected
        var runs = new Dictionary<string, ControlledRun>();
        for (var i = 0; i < 4; i++)
        {
            var run = await _executor.NextRunAsync();
            runs[run.Context.LeaseId] = run;
        }

        runs["c#1"].Outcome.SetResult("c");
        runs["d#1"].Outcome.SetResult("d");
        await WaitForResultsAsync("c#1", "d#1");
        _runner.Acknowledge(new ResultAck { LeaseId = "d#1", Disposition = ResultDisposition.Accepted });
        _runner.Revoke(new LeaseRevoke { LeaseId = "e#1" });

        var heartbeat = new Heartbeat { Seq = 7 };
        _runner.FillHeartbeat(heartbeat);

        Assert.Equal(["a#1", "b#1", "c#1"], heartbeat.LeaseIds);
        Assert.Equal(1, heartbeat.RunningTasks);
        Assert.Equal(7ul, heartbeat.Seq);
    }

    [Fact]
    public async Task Drain_RejectsNewOffersAndCompletesWhenRunningWorkIsAcknowledged()
    {
        await _runner.OfferAsync(Offer("a#1"), CancellationToken.None);
        await _runner.OfferAsync(Offer("g#1", gangId: "g"), CancellationToken.None);
        await _outbox.NextAsync(NodeMessage.BodyOneofCase.LeaseAccept);
        await _outbox.NextAsync(NodeMessage.BodyOneofCase.LeaseAccept);
        var run = await _executor.NextRunAsync();

        await _runner.BeginDrainAsync(CancellationToken.None);
        var idle = _runner.WhenIdleAsync(CancellationToken.None);

        // A gang that has not started is given back rather than held through the drain.
        var released = (await _outbox.NextAsync(NodeMessage.BodyOneofCase.LeaseReject)).LeaseReject;
        Assert.Equal(("g#1", "the node is draining"), (released.LeaseId, released.Reason));
        Assert.True(_runner.IsDraining);

        await _runner.OfferAsync(Offer("b#1"), CancellationToken.None);
        var reject = (await _outbox.NextAsync(NodeMessage.BodyOneofCase.LeaseReject)).LeaseReject;
        Assert.Equal(("b#1", "the node is draining"), (reject.LeaseId, reject.Reason));

        run.Outcome.SetResult("finished");
        await _outbox.NextAsync(NodeMessage.BodyOneofCase.TaskResult);
        Assert.False(idle.IsCompleted); // the result is not acknowledged yet
        Assert.Equal(["a#1"], _runner.HeldLeaseIds);

        _runner.Acknowledge(new ResultAck { LeaseId = "a#1", Disposition = ResultDisposition.Accepted });

        await idle.WaitAsync(Wait.Timeout);
        Assert.True(_runner.IsIdle);
    }

    [Fact]
    public async Task WhenIdleAsync_NothingHeld_CompletesAtOnce()
    {
        await _runner.BeginDrainAsync(CancellationToken.None);

        Assert.True(_runner.WhenIdleAsync(CancellationToken.None).IsCompletedSuccessfully);
        Assert.False(_outbox.HasMore);
    }

    [Fact]
    public async Task ExecutorFailure_NotRetryable_SendsErrorWithRetryableFalse()
    {
        await _runner.OfferAsync(Offer("t1#1"), CancellationToken.None);
        (await _executor.NextRunAsync()).Outcome.SetException(new TaskFailedException("bad input", retryable: false));

        var result = (await ResultAsync()).TaskResult;

        Assert.False(result.Succeeded);
        Assert.Equal("bad input", result.Error);
        Assert.False(result.Retryable);
        Assert.Equal("", result.Output);
    }

    [Fact]
    public async Task ExecutorFailure_Retryable_SendsErrorWithRetryableTrue()
    {
        await _runner.OfferAsync(Offer("t1#1"), CancellationToken.None);
        (await _executor.NextRunAsync()).Outcome.SetException(new TaskFailedException("device busy", retryable: true));

        var result = (await ResultAsync()).TaskResult;

        Assert.Equal(("device busy", true, false), (result.Error, result.Retryable, result.Succeeded));
    }

    [Fact]
    public async Task ExecutorFailure_UnexpectedException_IsARetryableFailureWithItsMessage()
    {
        await _runner.OfferAsync(Offer("t1#1"), CancellationToken.None);
        (await _executor.NextRunAsync()).Outcome.SetException(new InvalidOperationException("out of device memory"));

        var result = (await ResultAsync()).TaskResult;

        Assert.Equal(("out of device memory", true, false), (result.Error, result.Retryable, result.Succeeded));
    }

    [Fact]
    public async Task ExecutorOutput_TooLong_IsANonRetryableFailure()
    {
        await _runner.OfferAsync(Offer("t1#1"), CancellationToken.None);
        (await _executor.NextRunAsync()).Outcome.SetResult(new string('x', LeaseRunner.MaxOutputChars + 1));

        var result = (await ResultAsync()).TaskResult;

        Assert.False(result.Succeeded);
        Assert.False(result.Retryable);
        Assert.Contains("at most 65536", result.Error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task DisposeAsync_RunningWork_IsCancelledWithoutResult()
    {
        await _runner.OfferAsync(Offer("t1#1"), CancellationToken.None);
        await _outbox.NextAsync(NodeMessage.BodyOneofCase.LeaseAccept);
        var run = await _executor.NextRunAsync();

        await _runner.DisposeAsync().AsTask().WaitAsync(Wait.Timeout);

        Assert.True(run.Cancelled.Task.IsCompleted);
        Assert.False(_outbox.HasMore);
    }

    private static LeaseOffer Offer(string leaseId, string kind = "fake", string device = "cpu", string gangId = "", string input = "{}") => new()
    {
        LeaseId = leaseId,
        TaskId = leaseId.Split('#')[0],
        JobId = "job-1",
        Kind = kind,
        Input = input,
        Device = device,
        GangId = gangId,
        GangSize = gangId.Length > 0 ? 2 : 0,
    };

    private async Task<NodeMessage> ResultAsync()
    {
        await _outbox.NextAsync(NodeMessage.BodyOneofCase.LeaseAccept);
        return await _outbox.NextAsync(NodeMessage.BodyOneofCase.TaskResult);
    }

    private async Task WaitForResultsAsync(params string[] leaseIds)
    {
        var missing = leaseIds.ToHashSet();
        while (missing.Count > 0)
        {
            var message = await _outbox.NextAsync();
            if (message.BodyCase == NodeMessage.BodyOneofCase.TaskResult)
            {
                missing.Remove(message.TaskResult.LeaseId);
            }
        }
    }
}
