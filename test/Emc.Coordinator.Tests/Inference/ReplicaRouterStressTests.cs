using System.Collections.Concurrent;
using Emc.Coordinator.Inference;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;
using Xunit.Abstractions;

namespace Emc.Coordinator.Tests.Inference;

/// <summary>Thousands of requests from many tasks against replicas that fail, reject, and come and go.</summary>
public sealed class ReplicaRouterStressTests(ITestOutputHelper output)
{
    private const int Workers = 32;
    private const int RequestsPerWorker = 125;
    private const int Cap = 2;

    [Fact]
    public async Task RouteAsync_ConcurrentRequestsWithFaultsAndChurn_EachEndsOnceAndCountersReturnToZero()
    {
        var clock = new FakeTimeProvider(new DateTimeOffset(2026, 11, 24, 12, 0, 0, TimeSpan.Zero));
        var router = new ReplicaRouter<int, string>(
            "stress",
            new ReplicaRouterOptions { MaxAttempts = 3, MaxQueuedRequests = 100_000, UnhealthyCooldown = TimeSpan.FromMilliseconds(20) },
            clock,
            NullLogger.Instance);

        // Successful executions per request id, across every replica that ever served.
        var executed = new ConcurrentDictionary<int, int>();
        var everyReplica = new ConcurrentBag<FakeReplica>();
        FakeReplica NewReplica(string id)
        {
            var replica = new FakeReplica(id, Cap, node: id);
            replica.Handler = async (request, cancellationToken) =>
            {
                for (var step = Random.Shared.Next(4); step >= 0; step--)
                {
                    await Task.Yield();
                }

                var roll = Random.Shared.Next(100);
                if (roll < 10)
                {
                    throw new ReplicaUnavailableException($"{id} dropped {request}");
                }

                if (roll < 15)
                {
                    throw new ReplicaRejectedException($"{id} refused {request}");
                }

                cancellationToken.ThrowIfCancellationRequested();
                executed.AddOrUpdate(request, 1, (_, count) => count + 1);
                return $"{id}:{request}";
            };
            everyReplica.Add(replica);
            return replica;
        }

        for (var i = 0; i < 6; i++)
        {
            router.AddReplica(NewReplica($"r{i}"));
        }

        using var stop = new CancellationTokenSource();
        var mostQueued = 0;
        var churn = Task.Run(async () =>
        {
            // Nodes leave and rejoin, and time moves on: short deadlines expire, cool-downs end.
            while (!stop.IsCancellationRequested)
            {
                var id = $"r{Random.Shared.Next(6)}";
                router.RemoveReplica(id);
                await Task.Yield();
                router.AddReplica(NewReplica(id));
                clock.Advance(TimeSpan.FromMilliseconds(1));
                mostQueued = Math.Max(mostQueued, router.Queued);
                await Task.Yield();
            }
        });

        var results = new RouteResult<string>[Workers * RequestsPerWorker];
        var workers = Enumerable.Range(0, Workers).Select(worker => Task.Run(async () =>
        {
            for (var i = 0; i < RequestsPerWorker; i++)
            {
                var request = worker * RequestsPerWorker + i;
                var deadline = clock.GetUtcNow() + (request % 7 == 0 ? TimeSpan.FromMilliseconds(5) : TimeSpan.FromHours(1));
                using var cancel = new CancellationTokenSource();
                var pending = router.RouteAsync(request, deadline, cancel.Token).AsTask();
                if (request % 50 == 0)
                {
                    await cancel.CancelAsync();
                }

                results[request] = await pending;
            }
        })).ToArray();

        await Task.WhenAll(workers).WaitAsync(TimeSpan.FromSeconds(20));
        await stop.CancelAsync();
        await churn.WaitAsync(TimeSpan.FromSeconds(5));

        // Every request ended in exactly one outcome, and ran to success exactly when it says so.
        var stats = router.GetStats();
        output.WriteLine($"{stats}; most queued {mostQueued}");
        Assert.Equal(results.Length, stats.Requests);
        Assert.Equal(results.Length, stats.Completed);
        for (var request = 0; request < results.Length; request++)
        {
            var result = results[request];
            var runs = executed.GetValueOrDefault(request);
            Assert.True(result.IsSuccess ? runs == 1 : runs == 0, $"request {request}: {result.Outcome} after {runs} successful runs");
            Assert.InRange(result.Attempts, 0, 3);
        }

        foreach (var outcome in Enum.GetValues<RouteOutcome>())
        {
            Assert.Equal(results.Count(result => result.Outcome == outcome), stats.Count(outcome));
        }

        Assert.Equal(0, stats.Faulted);
        Assert.True(stats.Succeeded > results.Length / 2, $"only {stats.Succeeded} succeeded");
        Assert.True(stats.Retried > 0);

        // Nothing is left in flight or queued, and no replica ever held more than its cap.
        Assert.Equal(0, router.Outstanding);
        Assert.Equal(0, router.Queued);
        Assert.All(router.GetReplicaLoads(), load => Assert.Equal(0, load.Outstanding));
        Assert.All(everyReplica, replica =>
        {
            Assert.Equal(0, replica.InFlight);
            Assert.InRange(replica.MaxInFlight, 0, Cap);
        });
    }
}
