using Emc.Coordinator.Inference;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;

namespace Emc.Coordinator.Tests.Inference;

/// <summary>The router against fake replicas on a fake clock: picking, caps, waiting, retries, deadlines and membership.</summary>
public sealed class ReplicaRouterTests
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(5);

    private readonly FakeTimeProvider _clock = new(new DateTimeOffset(2026, 11, 24, 12, 0, 0, TimeSpan.Zero));

    private ReplicaRouter<int, string> NewRouter(ReplicaRouterOptions? options = null, int seed = 42) =>
        new("test", options ?? new ReplicaRouterOptions(), _clock, NullLogger.Instance, seed);

    private DateTimeOffset In(double seconds) => _clock.GetUtcNow() + TimeSpan.FromSeconds(seconds);

    private Task<RouteResult<string>> Route(ReplicaRouter<int, string> router, int request, double deadlineSeconds = 60, CancellationToken cancellationToken = default) =>
        router.RouteAsync(request, In(deadlineSeconds), cancellationToken).AsTask();

    // ------------------------------------------------------------ picking

    [Fact]
    public async Task RouteAsync_TwoReplicas_PicksTheLessLoaded()
    {
        var router = NewRouter();
        var busy = new FakeReplica("busy", cap: 10) { Hold = true };
        router.AddReplica(busy);
        var held = new[] { Route(router, 1), Route(router, 2) };
        var idle = new FakeReplica("idle", cap: 10);
        router.AddReplica(idle);

        for (var i = 0; i < 20; i++)
        {
            var result = await Route(router, 100 + i);
            Assert.Equal(RouteOutcome.Success, result.Outcome);
            Assert.Equal("idle", result.ReplicaId);
        }

        Assert.Equal(2, busy.Calls);
        busy.Release();
        await Task.WhenAll(held).WaitAsync(Wait);
    }

    [Fact]
    public async Task RouteAsync_ThreeReplicas_NeverPicksTheMostLoadedOfAnyPair()
    {
        // Loads 4, 1, 0: every pair holds a less loaded replica than "heavy", so P2C never sends there;
        // "light" wins only against "heavy" (1 pair in 3), "empty" against both.
        var router = NewRouter(seed: 7);
        var heavy = new FakeReplica("heavy", cap: 10) { Hold = true };
        var light = new FakeReplica("light", cap: 10) { Hold = true };
        var empty = new FakeReplica("empty", cap: 10);
        router.AddReplica(heavy);
        var held = Enumerable.Range(0, 4).Select(i => Route(router, i)).ToList();
        router.AddReplica(light);
        held.Add(Route(router, 4));
        Assert.Equal(1, light.Calls);
        light.Hold = false;
        router.AddReplica(empty);

        for (var i = 0; i < 300; i++)
        {
            Assert.True((await Route(router, 100 + i)).IsSuccess);
        }

        Assert.Equal(4, heavy.Calls);
        Assert.InRange(light.Calls - 1, 60, 140);
        Assert.InRange(empty.Calls, 160, 240);
        heavy.Release();
        light.Release();
        await Task.WhenAll(held).WaitAsync(Wait);
    }

    [Fact]
    public async Task RouteAsync_ManyHeldRequests_SpreadEvenly()
    {
        var router = NewRouter();
        var replicas = Enumerable.Range(0, 4).Select(i => new FakeReplica($"r{i}", cap: 1000) { Hold = true }).ToList();
        replicas.ForEach(router.AddReplica);

        var held = Enumerable.Range(0, 400).Select(i => Route(router, i)).ToList();

        var loads = router.GetReplicaLoads().Select(load => load.Outstanding).ToList();
        Assert.Equal(400, loads.Sum());
        Assert.True(loads.Max() - loads.Min() <= 4, $"loads {string.Join(", ", loads)}");
        Assert.Equal(loads, replicas.Select(replica => replica.InFlight));
        replicas.ForEach(replica => replica.Release());
        Assert.All(await Task.WhenAll(held).WaitAsync(Wait), result => Assert.True(result.IsSuccess));
        Assert.Equal(0, router.Outstanding);
    }

    // ------------------------------------------------------------ caps and waiting

    [Fact]
    public async Task RouteAsync_AllReplicasAtCap_QueuesAndNeverExceedsCap()
    {
        var router = NewRouter();
        var replicas = Enumerable.Range(0, 3).Select(i => new FakeReplica($"r{i}", cap: 2) { Hold = true }).ToList();
        replicas.ForEach(router.AddReplica);

        var requests = Enumerable.Range(0, 20).Select(i => Route(router, i)).ToList();

        Assert.All(replicas, replica => Assert.Equal(2, replica.InFlight));
        Assert.Equal(14, router.Queued);
        Assert.Equal(14, router.GetStats().Queued);
        Assert.DoesNotContain(requests, request => request.IsCompleted);

        // Answer one at a time: the freed slot is the only one, so the oldest waiter takes it there.
        foreach (var replica in replicas)
        {
            await replica.WaitForCallsAsync(2);
        }

        for (var i = 0; i < 14; i++)
        {
            var replica = replicas[i % 3];
            Assert.Equal(1, replica.Release(1));
            await replica.WaitForCallsAsync();
            Assert.Equal(13 - i, router.Queued);
        }

        replicas.ForEach(replica => replica.Release());
        Assert.All(await Task.WhenAll(requests).WaitAsync(Wait), result => Assert.True(result.IsSuccess));
        Assert.All(replicas, replica => Assert.Equal(2, replica.MaxInFlight));
        Assert.Equal(20, replicas.Sum(replica => replica.Calls));
        Assert.Equal(0, router.Queued);
        Assert.Equal(0, router.Outstanding);
    }

    [Fact]
    public async Task RouteAsync_WaitersAreServedInArrivalOrder()
    {
        var router = NewRouter();
        var replica = new FakeReplica("only", cap: 1) { Hold = true };
        router.AddReplica(replica);
        var requests = Enumerable.Range(1, 4).Select(i => Route(router, i)).ToList();
        Assert.Equal(3, router.Queued);

        for (var i = 1; i < 4; i++)
        {
            Assert.Equal(1, replica.Release(1));
            await replica.WaitForCallsAsync(i == 1 ? 2 : 1);
        }

        replica.Release();
        await Task.WhenAll(requests).WaitAsync(Wait);
        Assert.Equal([1, 2, 3, 4], replica.Arrivals);
        Assert.Equal(1, replica.MaxInFlight);
    }

    [Fact]
    public async Task RouteAsync_QueueFull_FailsOverloadedAtOnce()
    {
        var router = NewRouter(new ReplicaRouterOptions { MaxQueuedRequests = 2 });
        var replica = new FakeReplica("only", cap: 1) { Hold = true };
        router.AddReplica(replica);
        var admitted = Enumerable.Range(0, 3).Select(i => Route(router, i)).ToList();

        var refused = Route(router, 99);

        Assert.True(refused.IsCompleted);
        var result = await refused;
        Assert.Equal(RouteOutcome.Overloaded, result.Outcome);
        Assert.Equal(0, result.Attempts);
        Assert.Equal(1, router.GetStats().Overloaded);
        Assert.DoesNotContain(99, replica.Arrivals);

        replica.Hold = false;
        replica.Release();
        Assert.All(await Task.WhenAll(admitted).WaitAsync(Wait), admittedResult => Assert.True(admittedResult.IsSuccess));
    }

    [Fact]
    public async Task RouteAsync_NoQueueAllowed_FailsOverloadedWhenAllBusy()
    {
        var router = NewRouter(new ReplicaRouterOptions { MaxQueuedRequests = 0 });
        var replica = new FakeReplica("only", cap: 1) { Hold = true };
        router.AddReplica(replica);
        var first = Route(router, 1);

        Assert.Equal(RouteOutcome.Overloaded, (await Route(router, 2)).Outcome);

        replica.Hold = false;
        replica.Release();
        Assert.True((await first.WaitAsync(Wait)).IsSuccess);
        Assert.True((await Route(router, 3).WaitAsync(Wait)).IsSuccess);
    }

    // ------------------------------------------------------------ retries

    [Fact]
    public async Task RouteAsync_ReplicaUnavailable_RetriesOnAnotherAndRunsOnce()
    {
        var router = NewRouter();
        var broken = new FakeReplica("broken") { Handler = (_, _) => throw new ReplicaUnavailableException("stream broken") };
        var healthy = new FakeReplica("healthy") { Hold = true };
        router.AddReplica(healthy);
        var preload = Route(router, 0);
        router.AddReplica(broken);

        // "healthy" has one in flight, so the request goes to "broken" first.
        var request = Route(router, 1);
        await healthy.WaitForCallsAsync(2);
        healthy.Release();

        var result = await request.WaitAsync(Wait);
        Assert.Equal(RouteOutcome.Success, result.Outcome);
        Assert.Equal("healthy", result.ReplicaId);
        Assert.Equal(2, result.Attempts);
        Assert.Equal(1, broken.Calls);
        Assert.Equal(0, broken.Successes);
        Assert.Equal([0, 1], healthy.Arrivals);
        Assert.Equal(2, healthy.Successes);
        var stats = router.GetStats();
        Assert.Equal(1, stats.Retried);
        Assert.Equal(3, stats.Routed);
        Assert.Equal(2, stats.Succeeded);
        await preload;
    }

    [Fact]
    public async Task RouteAsync_EveryReplicaUnavailable_TriesEachOnceThenFailsUnavailable()
    {
        var router = NewRouter(new ReplicaRouterOptions { MaxAttempts = 3 });
        var replicas = Enumerable.Range(0, 3)
            .Select(i => new FakeReplica($"r{i}") { Handler = (_, _) => throw new ReplicaUnavailableException($"r{i} gone") })
            .ToList();
        replicas.ForEach(router.AddReplica);

        var result = await Route(router, 1).WaitAsync(Wait);

        Assert.Equal(RouteOutcome.Unavailable, result.Outcome);
        Assert.Equal(3, result.Attempts);
        Assert.IsType<ReplicaUnavailableException>(result.Error);
        Assert.All(replicas, replica => Assert.Equal(1, replica.Calls));
        Assert.Equal(1, router.GetStats().Unavailable);
        Assert.Equal(2, router.GetStats().Retried);
    }

    [Fact]
    public async Task RouteAsync_RetryWhileOtherReplicaIsFull_WaitsForItRatherThanRepeat()
    {
        var router = NewRouter();
        var broken = new FakeReplica("broken") { Handler = (_, _) => throw new ReplicaUnavailableException() };
        var busy = new FakeReplica("busy", cap: 1) { Hold = true };
        router.AddReplica(busy);
        var first = Route(router, 0);
        router.AddReplica(broken);

        var retried = Route(router, 1);

        Assert.Equal(1, broken.Calls);
        Assert.Equal(1, router.Queued);
        Assert.False(retried.IsCompleted);
        busy.Release(1);
        await busy.WaitForCallsAsync(2);
        busy.Release();
        var result = await retried.WaitAsync(Wait);
        Assert.Equal(RouteOutcome.Success, result.Outcome);
        Assert.Equal("busy", result.ReplicaId);
        Assert.Equal(1, broken.Calls);
        Assert.True((await first.WaitAsync(Wait)).IsSuccess);
    }

    [Fact]
    public async Task RouteAsync_MaxAttemptsTwo_StopsAfterTwoSends()
    {
        var router = NewRouter(new ReplicaRouterOptions { MaxAttempts = 2 });
        var replicas = Enumerable.Range(0, 3)
            .Select(i => new FakeReplica($"r{i}") { Handler = (_, _) => throw new ReplicaUnavailableException() })
            .ToList();
        replicas.ForEach(router.AddReplica);

        var result = await Route(router, 1).WaitAsync(Wait);

        Assert.Equal(RouteOutcome.Unavailable, result.Outcome);
        Assert.Equal(2, replicas.Sum(replica => replica.Calls));
        Assert.All(replicas, replica => Assert.True(replica.Calls <= 1));
    }

    [Fact]
    public async Task RouteAsync_OnlyReplicaFailsOnce_RetriesItAfterBackoff()
    {
        var router = NewRouter();
        var failures = 1;
        var replica = new FakeReplica("only")
        {
            Handler = (request, _) => Interlocked.Decrement(ref failures) >= 0
                ? throw new ReplicaUnavailableException("blip")
                : Task.FromResult($"ok:{request}"),
        };
        router.AddReplica(replica);

        var request = Route(router, 1);
        Assert.Equal(1, replica.Calls);
        Assert.False(request.IsCompleted);

        _clock.Advance(TimeSpan.FromSeconds(1));
        var result = await request.WaitAsync(Wait);
        Assert.Equal(RouteOutcome.Success, result.Outcome);
        Assert.Equal("ok:1", result.Response);
        Assert.Equal(2, result.Attempts);
        Assert.Equal(2, replica.Calls);
    }

    [Fact]
    public async Task RouteAsync_ReplicaRejected_PassesErrorBackWithoutRetry()
    {
        var router = NewRouter();
        var rejection = new ReplicaRejectedException("input tensor has the wrong shape", detail: new { code = 400 });
        var replicas = Enumerable.Range(0, 3).Select(i => new FakeReplica($"r{i}") { Handler = (_, _) => throw rejection }).ToList();
        replicas.ForEach(router.AddReplica);

        var result = await Route(router, 1).WaitAsync(Wait);

        Assert.Equal(RouteOutcome.Rejected, result.Outcome);
        Assert.Same(rejection, result.Error);
        Assert.Equal(1, result.Attempts);
        Assert.Equal(1, replicas.Sum(replica => replica.Calls));
        Assert.Equal(0, router.GetStats().Retried);
        Assert.Equal(1, router.GetStats().Rejected);
    }

    [Fact]
    public async Task RouteAsync_ReplicaFailed_IsPassedOverUntilCooldownEnds()
    {
        var router = NewRouter(new ReplicaRouterOptions { UnhealthyCooldown = TimeSpan.FromSeconds(2) });
        var failing = true;
        var flaky = new FakeReplica("flaky", cap: 50)
        {
            Handler = (request, _) => failing ? throw new ReplicaUnavailableException() : Task.FromResult("flaky"),
        };
        var steady = new FakeReplica("steady", cap: 50) { Hold = true };
        router.AddReplica(steady);
        var held = new List<Task<RouteResult<string>>> { Route(router, 0) };
        router.AddReplica(flaky);

        held.Add(Route(router, 1));
        Assert.Equal(1, flaky.Calls);
        failing = false;

        // "steady" is ever busier, yet "flaky" is passed over while it cools down.
        for (var i = 2; i < 12; i++)
        {
            held.Add(Route(router, i));
        }

        Assert.Equal(1, flaky.Calls);
        Assert.False(router.GetReplicaLoads().Single(load => load.ReplicaId == "flaky").Healthy);

        _clock.Advance(TimeSpan.FromSeconds(2));
        var result = await Route(router, 99).WaitAsync(Wait);
        Assert.Equal("flaky", result.ReplicaId);
        Assert.True(router.GetReplicaLoads().Single(load => load.ReplicaId == "flaky").Healthy);

        steady.Release();
        await Task.WhenAll(held).WaitAsync(Wait);
    }

    [Fact]
    public async Task AddReplica_AfterAFailure_ClearsTheCooldown()
    {
        var router = NewRouter();
        var flaky = new FakeReplica("flaky", cap: 50) { Handler = (_, _) => throw new ReplicaUnavailableException() };
        var steady = new FakeReplica("steady", cap: 50) { Hold = true };
        router.AddReplica(steady);
        var held = new List<Task<RouteResult<string>>> { Route(router, 0) };
        router.AddReplica(flaky);
        held.Add(Route(router, 1));
        Assert.False(router.GetReplicaLoads().Single(load => load.ReplicaId == "flaky").Healthy);

        router.AddReplica(new FakeReplica("third", cap: 50) { Hold = true });

        Assert.All(router.GetReplicaLoads(), load => Assert.True(load.Healthy));
        router.RemoveReplica("third");
        steady.Release();
        await Task.WhenAll(held).WaitAsync(Wait);
    }

    // ------------------------------------------------------------ deadlines and cancellation

    [Fact]
    public async Task RouteAsync_DeadlinePassesMidSend_CancelsTheSend()
    {
        var router = NewRouter();
        var replica = new FakeReplica("slow") { Hold = true };
        router.AddReplica(replica);

        var request = Route(router, 1, deadlineSeconds: 1);
        Assert.Equal(1, replica.InFlight);
        Assert.False(replica.LastToken.IsCancellationRequested);

        _clock.Advance(TimeSpan.FromSeconds(1));

        var result = await request.WaitAsync(Wait);
        Assert.Equal(RouteOutcome.DeadlineExceeded, result.Outcome);
        Assert.True(replica.LastToken.IsCancellationRequested);
        Assert.Equal(0, replica.InFlight);
        Assert.Equal(0, router.Outstanding);
        Assert.Equal(1, router.GetStats().DeadlineExceeded);
    }

    [Fact]
    public async Task RouteAsync_DeadlinePassesWhileQueued_FailsWithoutSending()
    {
        var router = NewRouter();
        var replica = new FakeReplica("only", cap: 1) { Hold = true };
        router.AddReplica(replica);
        var first = Route(router, 1, deadlineSeconds: 60);
        var queued = Route(router, 2, deadlineSeconds: 1);
        Assert.Equal(1, router.Queued);

        _clock.Advance(TimeSpan.FromSeconds(1));

        Assert.Equal(RouteOutcome.DeadlineExceeded, (await queued.WaitAsync(Wait)).Outcome);
        Assert.Equal(0, router.Queued);
        Assert.Equal([1], replica.Arrivals);
        replica.Release();
        Assert.True((await first.WaitAsync(Wait)).IsSuccess);
    }

    [Fact]
    public async Task RouteAsync_DeadlineAlreadyPassed_FailsAtOnce()
    {
        var router = NewRouter();
        var replica = new FakeReplica("only");
        router.AddReplica(replica);

        var result = await router.RouteAsync(1, _clock.GetUtcNow());

        Assert.Equal(RouteOutcome.DeadlineExceeded, result.Outcome);
        Assert.Equal(0, replica.Calls);
    }

    [Fact]
    public async Task RouteAsync_CallerCancelsMidSend_CancelsTheSend()
    {
        var router = NewRouter();
        var replica = new FakeReplica("slow") { Hold = true };
        router.AddReplica(replica);
        using var cancel = new CancellationTokenSource();

        var request = Route(router, 1, cancellationToken: cancel.Token);
        await cancel.CancelAsync();

        var result = await request.WaitAsync(Wait);
        Assert.Equal(RouteOutcome.Canceled, result.Outcome);
        Assert.True(replica.LastToken.IsCancellationRequested);
        Assert.Equal(0, router.Outstanding);
    }

    [Fact]
    public async Task RouteAsync_NoDeadline_SendsWithTheCallersToken()
    {
        var router = NewRouter();
        var replica = new FakeReplica("only");
        router.AddReplica(replica);

        var result = await router.RouteAsync(7, DateTimeOffset.MaxValue);

        Assert.Equal("only:7", result.Response);
    }

    // ------------------------------------------------------------ membership

    [Fact]
    public async Task RouteAsync_NoReplicasThenOneAdded_UsesItAtOnce()
    {
        var router = NewRouter();
        var request = Route(router, 1, deadlineSeconds: 5);
        Assert.False(request.IsCompleted);
        Assert.Equal(1, router.Queued);

        router.AddReplica(new FakeReplica("late"));

        var result = await request.WaitAsync(Wait);
        Assert.Equal(RouteOutcome.Success, result.Outcome);
        Assert.Equal("late", result.ReplicaId);
        Assert.Equal(0, router.Queued);
    }

    [Fact]
    public async Task RouteAsync_NoReplicasUntilDeadline_FailsNoReplicas()
    {
        var router = NewRouter();
        var request = Route(router, 1, deadlineSeconds: 5);

        _clock.Advance(TimeSpan.FromSeconds(5));

        Assert.Equal(RouteOutcome.NoReplicas, (await request.WaitAsync(Wait)).Outcome);
        Assert.Equal(1, router.GetStats().NoReplicas);
        Assert.Equal(0, router.Queued);
    }

    [Fact]
    public async Task RemoveReplica_MidRequest_RetriesElsewhere()
    {
        var router = NewRouter();
        var leaving = new FakeReplica("leaving", node: "node-1") { Hold = true };
        router.AddReplica(leaving);
        var request = Route(router, 1);
        Assert.Equal(1, leaving.InFlight);
        var staying = new FakeReplica("staying", node: "node-2");
        router.AddReplica(staying);

        Assert.Equal(1, router.RemoveNode("node-1"));
        Assert.Equal(1, leaving.Fail(new ReplicaUnavailableException("node-1 closed its stream")));

        var result = await request.WaitAsync(Wait);
        Assert.Equal(RouteOutcome.Success, result.Outcome);
        Assert.Equal("staying", result.ReplicaId);
        Assert.Equal(2, result.Attempts);
        Assert.Equal(1, staying.Successes);
        Assert.Equal(0, leaving.Successes);
        Assert.Null(router.GetOutstanding("leaving"));
        Assert.Equal(0, router.Outstanding);
    }

    [Fact]
    public async Task AddReplica_SameId_ReplacesTheOldOne()
    {
        var router = NewRouter();
        var old = new FakeReplica("r", cap: 1) { Hold = true };
        router.AddReplica(old);
        var held = Route(router, 1);
        var fresh = new FakeReplica("r", cap: 1);

        router.AddReplica(fresh);

        Assert.Equal(1, router.ReplicaCount);
        Assert.Equal(0, router.GetOutstanding("r"));
        Assert.Equal("r:2", (await Route(router, 2).WaitAsync(Wait)).Response);
        Assert.Equal(1, old.Calls);
        old.Release();
        Assert.True((await held.WaitAsync(Wait)).IsSuccess);
        Assert.Equal(0, router.Outstanding);
    }

    [Fact]
    public void Constructor_BadOptions_Throws()
    {
        Assert.Throws<ArgumentException>(() => NewRouter(new ReplicaRouterOptions { MaxAttempts = 0 }));
        Assert.Throws<ArgumentException>(() => NewRouter(new ReplicaRouterOptions { MaxQueuedRequests = -1 }));
        Assert.Throws<ArgumentException>(() => NewRouter(new ReplicaRouterOptions { RetryBackoff = TimeSpan.FromSeconds(2), MaxRetryBackoff = TimeSpan.FromSeconds(1) }));
    }

    [Fact]
    public void AddReplica_CapBelowOne_Throws()
    {
        var router = NewRouter();

        Assert.Throws<ArgumentException>(() => router.AddReplica(new FakeReplica("r", cap: 0)));
        Assert.Equal(0, router.ReplicaCount);
    }

    [Fact]
    public void Sample_ReportsQueueAndOutstanding()
    {
        var router = NewRouter();
        var replica = new FakeReplica("only", cap: 2) { Hold = true };
        router.AddReplica(replica);
        _ = Enumerable.Range(0, 5).Select(i => Route(router, i)).ToList();

        var sample = router.Sample();

        Assert.Equal(new LoadSample(_clock.GetUtcNow(), Queued: 3, Outstanding: 2, Replicas: 1), sample);
        Assert.Equal(2, router.GetOutstanding("only"));
        replica.Hold = false;
        replica.Release();
    }

    // ------------------------------------------------------------ checks elsewhere

    [Fact]
    public async Task SendElsewhereAsync_PicksAReplicaOnAnotherNode_NeverQueuesOrCountsInStats()
    {
        var router = NewRouter();
        var first = new FakeReplica("a", cap: 1, node: "node-a");
        var second = new FakeReplica("b", cap: 1, node: "node-b") { Hold = true };
        router.AddReplica(first);
        router.AddReplica(second);

        Assert.Equal("node-b", router.NodeOf("b"));
        Assert.Null(router.NodeOf("nope"));

        // Only node-b qualifies; it takes the check.
        var check = router.SendElsewhereAsync(7, ["node-a"], CancellationToken.None).AsTask();
        await second.WaitForCallsAsync(1);
        Assert.Equal(0, first.Calls);

        // node-b is now at its cap: a second check does not wait for it.
        var busy = await router.SendElsewhereAsync(8, ["node-a"], CancellationToken.None);
        Assert.Equal(RouteOutcome.Overloaded, busy.Outcome);

        second.Release();
        var done = await check.WaitAsync(Wait);
        Assert.Equal((RouteOutcome.Success, "b", "node-b"), (done.Outcome, done.ReplicaId, done.NodeId));

        // Every node excluded: nothing to run on.
        var none = await router.SendElsewhereAsync(9, ["node-a", "node-b"], CancellationToken.None);
        Assert.Equal(RouteOutcome.NoReplicas, none.Outcome);
        Assert.Equal(0, router.GetStats().Requests);
        Assert.Equal(0, router.Outstanding);
    }
}
