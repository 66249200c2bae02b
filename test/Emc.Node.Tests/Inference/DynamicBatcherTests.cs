using Emc.Node.Inference;
using Microsoft.Extensions.Time.Testing;

namespace Emc.Node.Tests.Inference;

public sealed class DynamicBatcherTests
{
    private static readonly TimeSpan Timeout = BatchProbe.Timeout;

    [Fact]
    public async Task EnqueueAsync_NoDelay_SingleItemRunsAtOnceAlone()
    {
        var probe = new BatchProbe(blocking: false);
        await using var batcher = Create(probe, new BatchingOptions { MaxBatchSize = 8 });

        var result = await batcher.EnqueueAsync(7, CancellationToken.None).WaitAsync(Timeout);

        Assert.Equal("r7", result);
        Assert.Equal(new[] { 7 }, (await probe.NextAsync()).Items);
    }

    [Fact]
    public async Task EnqueueAsync_NoDelay_BurstQueuedWhileBusyGoesOutInCeilNOverMaxBatchesWithoutWaiting()
    {
        var probe = new BatchProbe(blocking: true);
        var clock = new FakeTimeProvider();
        await using var batcher = Create(probe, new BatchingOptions { MaxBatchSize = 4 }, clock);
        var first = batcher.EnqueueAsync(0, CancellationToken.None);
        var busy = await probe.NextAsync();

        var burst = Enumerable.Range(1, 10).Select(i => batcher.EnqueueAsync(i, CancellationToken.None)).ToArray();
        Assert.Equal(10, batcher.Stats.QueueLength);
        busy.Release();

        // The fake clock never moves: nothing waits for a timer.
        var batches = new List<int[]>();
        for (var i = 0; i < 3; i++)
        {
            var call = await probe.NextAsync();
            batches.Add(call.Items);
            call.Release();
        }

        Assert.Equal([[1, 2, 3, 4], [5, 6, 7, 8], [9, 10]], batches);
        Assert.Equal("r0", await first.WaitAsync(Timeout));
        Assert.Equal(BatchProbe.ResultsFor(Enumerable.Range(1, 10)), await Task.WhenAll(burst).WaitAsync(Timeout));
        Assert.Equal(4, batcher.Stats.BatchesRun);
    }

    [Fact]
    public async Task EnqueueAsync_WithDelay_PartialBatchWaitsUntilItsOldestItemHasWaitedTheDelay()
    {
        var probe = new BatchProbe(blocking: false);
        var clock = new FakeTimeProvider();
        await using var batcher = Create(probe, new BatchingOptions { MaxBatchSize = 4, MaxQueueDelay = TimeSpan.FromMilliseconds(10) }, clock);

        var a = batcher.EnqueueAsync(1, CancellationToken.None);
        clock.Advance(TimeSpan.FromMilliseconds(6));
        var b = batcher.EnqueueAsync(2, CancellationToken.None);
        clock.Advance(TimeSpan.FromMilliseconds(3));
        Assert.Equal(0, batcher.Stats.BatchesRun);
        Assert.Equal(2, batcher.Stats.QueueLength);

        clock.Advance(TimeSpan.FromMilliseconds(1));

        Assert.Equal(1, batcher.Stats.BatchesRun);
        Assert.Equal(new[] { 1, 2 }, (await probe.NextAsync()).Items);
        Assert.Equal(["r1", "r2"], await Task.WhenAll(a, b).WaitAsync(Timeout));

        // The next item's wait counts from its own arrival.
        var c = batcher.EnqueueAsync(3, CancellationToken.None);
        clock.Advance(TimeSpan.FromMilliseconds(9));
        Assert.Equal(1, batcher.Stats.BatchesRun);
        clock.Advance(TimeSpan.FromMilliseconds(1));
        Assert.Equal("r3", await c.WaitAsync(Timeout));
        Assert.Equal(new[] { 3 }, (await probe.NextAsync()).Items);
    }

    [Fact]
    public async Task EnqueueAsync_WithDelay_HeadCancelled_NextItemWaitsFromItsOwnArrival()
    {
        var probe = new BatchProbe(blocking: false);
        var clock = new FakeTimeProvider();
        await using var batcher = Create(probe, new BatchingOptions { MaxBatchSize = 4, MaxQueueDelay = TimeSpan.FromMilliseconds(10) }, clock);
        using var cts = new CancellationTokenSource();
        var head = batcher.EnqueueAsync(1, cts.Token);
        clock.Advance(TimeSpan.FromMilliseconds(5));
        var next = batcher.EnqueueAsync(2, CancellationToken.None);
        await cts.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => head.WaitAsync(Timeout));

        clock.Advance(TimeSpan.FromMilliseconds(5));
        Assert.Equal(0, batcher.Stats.BatchesRun);
        clock.Advance(TimeSpan.FromMilliseconds(5));

        Assert.Equal("r2", await next.WaitAsync(Timeout));
        Assert.Equal(new[] { 2 }, (await probe.NextAsync()).Items);
    }

    [Fact]
    public async Task EnqueueAsync_WithDelay_ItemThatWaitedOutItsDelayWhileBusy_GoesOutWhenASlotFrees()
    {
        var probe = new BatchProbe(blocking: true);
        var clock = new FakeTimeProvider();
        await using var batcher = Create(probe, new BatchingOptions { MaxBatchSize = 4, MaxQueueDelay = TimeSpan.FromMilliseconds(10) }, clock);
        var first = batcher.EnqueueAsync(0, CancellationToken.None);
        clock.Advance(TimeSpan.FromMilliseconds(10));
        var busy = await probe.NextAsync();
        var waiting = batcher.EnqueueAsync(1, CancellationToken.None);
        clock.Advance(TimeSpan.FromMilliseconds(20));
        Assert.Equal(1, batcher.Stats.QueueLength);

        busy.Release();

        var call = await probe.NextAsync();
        Assert.Equal(new[] { 1 }, call.Items);
        call.Release();
        Assert.Equal(["r0", "r1"], await Task.WhenAll(first, waiting).WaitAsync(Timeout));
    }

    [Fact]
    public async Task EnqueueAsync_WithDelay_FullBatchGoesOutAtOnce()
    {
        var probe = new BatchProbe(blocking: false);
        var clock = new FakeTimeProvider();
        await using var batcher = Create(probe, new BatchingOptions { MaxBatchSize = 3, MaxQueueDelay = TimeSpan.FromHours(1) }, clock);

        var tasks = Enumerable.Range(1, 4).Select(i => batcher.EnqueueAsync(i, CancellationToken.None)).ToArray();

        Assert.Equal(new[] { 1, 2, 3 }, (await probe.NextAsync()).Items);
        Assert.Equal(["r1", "r2", "r3"], await Task.WhenAll(tasks[..3]).WaitAsync(Timeout));
        Assert.Equal(1, batcher.Stats.QueueLength);
        Assert.False(tasks[3].IsCompleted);

        clock.Advance(TimeSpan.FromHours(1));
        Assert.Equal("r4", await tasks[3].WaitAsync(Timeout));
    }

    [Fact]
    public async Task EnqueueAsync_MaxBatchSizeOne_NeverWaitsEvenWithADelay()
    {
        var probe = new BatchProbe(blocking: false);
        await using var batcher = Create(probe, new BatchingOptions { MaxBatchSize = 1, MaxQueueDelay = TimeSpan.FromHours(1) });

        Assert.Equal("r5", await batcher.EnqueueAsync(5, CancellationToken.None).WaitAsync(Timeout));
    }

    [Fact]
    public async Task EnqueueAsync_ServesItemsInArrivalOrder()
    {
        var probe = new BatchProbe(blocking: true);
        await using var batcher = Create(probe, new BatchingOptions { MaxBatchSize = 3 });
        var tasks = Enumerable.Range(0, 20).Select(i => batcher.EnqueueAsync(i, CancellationToken.None)).ToArray();

        var seen = new List<int>();
        while (seen.Count < 20)
        {
            var call = await probe.NextAsync();
            seen.AddRange(call.Items);
            call.Release();
        }

        Assert.Equal(Enumerable.Range(0, 20), seen);
        Assert.Equal(BatchProbe.ResultsFor(Enumerable.Range(0, 20)), await Task.WhenAll(tasks).WaitAsync(Timeout));
    }

    [Fact]
    public async Task EnqueueAsync_ItemsWithRows_FillBatchesByRowsInOrderWithoutSkippingAhead()
    {
        var probe = new BatchProbe(blocking: true);
        await using var batcher = Create(probe, new BatchingOptions { MaxBatchSize = 8 }, rowCount: i => i % 10);
        var busy = batcher.EnqueueAsync(1, CancellationToken.None);
        var busyCall = await probe.NextAsync();

        // Rows 3, 4, 2, 5, 1, 8 (the tens digit only tells the items apart).
        int[] items = [3, 4, 12, 5, 21, 8];
        var tasks = items.Select(i => batcher.EnqueueAsync(i, CancellationToken.None)).ToArray();
        Assert.Equal(23, batcher.Stats.QueuedRows);
        busyCall.Release();

        var batches = new List<int[]>();
        for (var i = 0; i < 3; i++)
        {
            var call = await probe.NextAsync();
            batches.Add(call.Items);
            call.Release();
        }

        // 3 + 4 = 7 and the 2 does not fit: the batch ends there, though the later 1 would fit.
        Assert.Equal([[3, 4], [12, 5, 21], [8]], batches);
        Assert.Equal(BatchProbe.ResultsFor(items), await Task.WhenAll(tasks).WaitAsync(Timeout));
        await busy.WaitAsync(Timeout);
        var sizes = batcher.Stats.BatchSizeCounts;
        Assert.Equal(8, sizes.Count);
        Assert.Equal(1, sizes[0]); // the busy item
        Assert.Equal(1, sizes[6]);
        Assert.Equal(2, sizes[7]);
        Assert.Equal(4, sizes.Sum());
    }

    [Fact]
    public async Task EnqueueAsync_WithDelay_RowsThatCannotAllFitSendTheHeadBatchAtOnce()
    {
        var probe = new BatchProbe(blocking: false);
        var clock = new FakeTimeProvider();
        await using var batcher = Create(probe, new BatchingOptions { MaxBatchSize = 8, MaxQueueDelay = TimeSpan.FromSeconds(1) }, clock, i => i);

        var five = batcher.EnqueueAsync(5, CancellationToken.None);
        Assert.Equal(0, batcher.Stats.BatchesRun);
        var four = batcher.EnqueueAsync(4, CancellationToken.None);

        // 5 + 4 rows overflow a batch: the 5 is as full as its batch gets, so it goes now.
        Assert.Equal("r5", await five.WaitAsync(Timeout));
        Assert.Equal(new[] { 5 }, (await probe.NextAsync()).Items);
        Assert.False(four.IsCompleted);
        clock.Advance(TimeSpan.FromSeconds(1));
        Assert.Equal("r4", await four.WaitAsync(Timeout));
    }

    [Theory]
    [InlineData(0)]
    [InlineData(9)]
    public async Task EnqueueAsync_ItemRowsOutOfRange_IsRefusedAtOnce(int rows)
    {
        var probe = new BatchProbe(blocking: false);
        await using var batcher = Create(probe, new BatchingOptions { MaxBatchSize = 8 }, rowCount: _ => rows);

        Assert.Throws<ArgumentOutOfRangeException>(() => { _ = batcher.EnqueueAsync(1, CancellationToken.None); });
        Assert.Equal(0, batcher.Stats.Enqueued);
        Assert.False(probe.HasPending);
    }

    [Fact]
    public async Task EnqueueAsync_QueueHoldsMaxQueueSize_OneMoreIsRejectedAsOverloaded()
    {
        var probe = new BatchProbe(blocking: true);
        await using var batcher = Create(probe, new BatchingOptions { MaxBatchSize = 2, MaxQueueSize = 3 });
        var running = batcher.EnqueueAsync(0, CancellationToken.None);
        var busy = await probe.NextAsync();

        // The running item does not count against the queue.
        var queued = Enumerable.Range(1, 3).Select(i => batcher.EnqueueAsync(i, CancellationToken.None)).ToArray();
        var refused = batcher.EnqueueAsync(4, CancellationToken.None);

        await Assert.ThrowsAsync<OverloadedException>(() => refused);
        var stats = batcher.Stats;
        Assert.Equal(3, stats.QueueLength);
        Assert.Equal(1, stats.Rejected);
        Assert.Equal(4, stats.Enqueued);

        busy.Release();
        (await probe.NextAsync()).Release();
        var again = batcher.EnqueueAsync(5, CancellationToken.None);
        (await probe.NextAsync()).Release();
        Assert.Equal(["r0", "r1", "r2", "r3", "r5"], await Task.WhenAll([running, .. queued, again]).WaitAsync(Timeout));
    }

    [Fact]
    public async Task BatchFunctionThrows_EveryItemOfThatBatchFailsWithItsException_LaterBatchesRun()
    {
        var probe = new BatchProbe(blocking: true);
        await using var batcher = Create(probe, new BatchingOptions { MaxBatchSize = 2 });
        var first = batcher.EnqueueAsync(0, CancellationToken.None);
        var busy = await probe.NextAsync();
        var failing = new[] { batcher.EnqueueAsync(1, CancellationToken.None), batcher.EnqueueAsync(2, CancellationToken.None) };
        var later = batcher.EnqueueAsync(3, CancellationToken.None);
        busy.Release();

        var boom = new InvalidDataException("model exploded");
        (await probe.NextAsync()).Fail(boom);
        (await probe.NextAsync()).Release();

        foreach (var task in failing)
        {
            Assert.Same(boom, await Assert.ThrowsAsync<InvalidDataException>(() => task));
        }

        Assert.Equal("r0", await first);
        Assert.Equal("r3", await later.WaitAsync(Timeout));
        var stats = batcher.Stats;
        Assert.Equal(2, stats.Failed);
        Assert.Equal(2, stats.Completed);
    }

    [Fact]
    public async Task BatchFunctionReturnsWrongResultCount_EveryItemFailsWithAClearError()
    {
        var probe = new BatchProbe(blocking: true);
        await using var batcher = Create(probe, new BatchingOptions { MaxBatchSize = 2 });
        var first = batcher.EnqueueAsync(0, CancellationToken.None);
        var busy = await probe.NextAsync();
        var tasks = new[] { batcher.EnqueueAsync(1, CancellationToken.None), batcher.EnqueueAsync(2, CancellationToken.None) };
        busy.Release();

        (await probe.NextAsync()).ReleaseWith(["only one"]);

        foreach (var task in tasks)
        {
            var error = await Assert.ThrowsAsync<InvalidOperationException>(() => task.WaitAsync(Timeout));
            Assert.Contains("1 results for a batch of 2 items", error.Message, StringComparison.Ordinal);
        }

        Assert.Equal("r0", await first);
    }

    [Fact]
    public async Task EnqueueAsync_TokenAlreadyCancelled_IsCancelledWithoutRunning()
    {
        var probe = new BatchProbe(blocking: false);
        await using var batcher = Create(probe, new BatchingOptions { MaxBatchSize = 2 });

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => batcher.EnqueueAsync(1, new CancellationToken(canceled: true)));
        Assert.Equal(0, batcher.Stats.BatchesRun);
    }

    [Fact]
    public async Task Cancel_WhileQueued_RemovesTheItemWhichNeverRuns()
    {
        var probe = new BatchProbe(blocking: true);
        await using var batcher = Create(probe, new BatchingOptions { MaxBatchSize = 4 });
        var first = batcher.EnqueueAsync(0, CancellationToken.None);
        var busy = await probe.NextAsync();
        using var cts = new CancellationTokenSource();
        var cancelled = batcher.EnqueueAsync(1, cts.Token);
        var kept = batcher.EnqueueAsync(2, CancellationToken.None);

        await cts.CancelAsync();

        var error = await Assert.ThrowsAnyAsync<OperationCanceledException>(() => cancelled.WaitAsync(Timeout));
        Assert.Equal(cts.Token, error.CancellationToken);
        Assert.Equal(1, batcher.Stats.QueueLength);
        Assert.Equal(1, batcher.Stats.Cancelled);
        busy.Release();
        var next = await probe.NextAsync();
        Assert.Equal([2], next.Items);
        next.Release();
        Assert.Equal("r2", await kept.WaitAsync(Timeout));
        Assert.Equal("r0", await first);
    }

    [Fact]
    public async Task Cancel_WhileRunning_CallerStopsWaiting_OthersInTheBatchGetTheirResults()
    {
        var probe = new BatchProbe(blocking: true);
        await using var batcher = Create(probe, new BatchingOptions { MaxBatchSize = 4 });
        var first = batcher.EnqueueAsync(0, CancellationToken.None);
        var busy = await probe.NextAsync();
        using var cts = new CancellationTokenSource();
        var cancelled = batcher.EnqueueAsync(1, cts.Token);
        var kept = batcher.EnqueueAsync(2, CancellationToken.None);
        busy.Release();
        var call = await probe.NextAsync();
        Assert.Equal([1, 2], call.Items);

        await cts.CancelAsync();

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => cancelled.WaitAsync(Timeout));
        Assert.False(kept.IsCompleted);
        Assert.False(call.Token.IsCancellationRequested); // someone still waits for this batch
        call.Release();
        Assert.Equal("r2", await kept.WaitAsync(Timeout));
        Assert.Equal("r0", await first);
        var stats = batcher.Stats;
        Assert.Equal(1, stats.Cancelled);
        Assert.Equal(2, stats.Completed);
    }

    [Fact]
    public async Task Cancel_EveryCallerOfARunningBatch_CancelsTheBatchToken()
    {
        var probe = new BatchProbe(blocking: true);
        await using var batcher = Create(probe, new BatchingOptions { MaxBatchSize = 4 });
        using var a = new CancellationTokenSource();
        using var b = new CancellationTokenSource();
        var first = batcher.EnqueueAsync(0, CancellationToken.None);
        var busy = await probe.NextAsync();
        var tasks = new[] { batcher.EnqueueAsync(1, a.Token), batcher.EnqueueAsync(2, b.Token) };
        busy.Release();
        var call = await probe.NextAsync();

        await a.CancelAsync();
        Assert.False(call.Token.IsCancellationRequested);
        await b.CancelAsync();

        Assert.True(call.Token.IsCancellationRequested);
        call.Fail(new OperationCanceledException(call.Token));
        foreach (var task in tasks)
        {
            await Assert.ThrowsAnyAsync<OperationCanceledException>(() => task.WaitAsync(Timeout));
        }

        Assert.Equal("r0", await first);
        var stats = batcher.Stats;
        Assert.Equal(2, stats.Cancelled);
        Assert.Equal(0, stats.Failed);
    }

    [Fact]
    public async Task Deadline_PassesWhileQueued_ItemExpiresWithoutRunning()
    {
        var probe = new BatchProbe(blocking: true);
        var clock = new FakeTimeProvider();
        await using var batcher = Create(probe, new BatchingOptions { MaxBatchSize = 4 }, clock);
        var first = batcher.EnqueueAsync(0, CancellationToken.None);
        var busy = await probe.NextAsync();
        var late = batcher.EnqueueAsync(1, clock.GetUtcNow().AddMilliseconds(50), CancellationToken.None);
        var soon = batcher.EnqueueAsync(2, clock.GetUtcNow().AddMilliseconds(5), CancellationToken.None);
        var never = batcher.EnqueueAsync(3, CancellationToken.None);

        clock.Advance(TimeSpan.FromMilliseconds(4));
        Assert.Equal(3, batcher.Stats.QueueLength);

        // The batcher is busy, yet the expired item leaves the queue on time.
        clock.Advance(TimeSpan.FromMilliseconds(1));
        await Assert.ThrowsAsync<DeadlineExceededException>(() => soon.WaitAsync(Timeout));
        Assert.Equal(2, batcher.Stats.QueueLength);
        Assert.Equal(1, batcher.Stats.Expired);

        busy.Release();
        var next = await probe.NextAsync();
        Assert.Equal([1, 3], next.Items);

        // Once running, its deadline no longer matters.
        clock.Advance(TimeSpan.FromMilliseconds(100));
        next.Release();
        Assert.Equal(["r0", "r1", "r3"], await Task.WhenAll(first, late, never).WaitAsync(Timeout));
        Assert.Equal(1, batcher.Stats.Expired);
    }

    [Fact]
    public async Task Deadline_AlreadyPassedOnArrival_ExpiresAtOnce()
    {
        var probe = new BatchProbe(blocking: false);
        var clock = new FakeTimeProvider();
        await using var batcher = Create(probe, new BatchingOptions { MaxBatchSize = 4 }, clock);

        await Assert.ThrowsAsync<DeadlineExceededException>(() => batcher.EnqueueAsync(1, clock.GetUtcNow(), CancellationToken.None));
        Assert.Equal(0, batcher.Stats.BatchesRun);
        Assert.Equal(1, batcher.Stats.Expired);
    }

    [Fact]
    public async Task Deadline_WithDelay_ExpiresBeforeTheDelayedBatchLeaves()
    {
        var probe = new BatchProbe(blocking: false);
        var clock = new FakeTimeProvider();
        await using var batcher = Create(probe, new BatchingOptions { MaxBatchSize = 4, MaxQueueDelay = TimeSpan.FromMilliseconds(10) }, clock);
        var kept = batcher.EnqueueAsync(1, CancellationToken.None);
        var expiring = batcher.EnqueueAsync(2, clock.GetUtcNow().AddMilliseconds(3), CancellationToken.None);

        clock.Advance(TimeSpan.FromMilliseconds(3));
        await Assert.ThrowsAsync<DeadlineExceededException>(() => expiring.WaitAsync(Timeout));
        Assert.Equal(0, batcher.Stats.BatchesRun);
        clock.Advance(TimeSpan.FromMilliseconds(7));

        Assert.Equal("r1", await kept.WaitAsync(Timeout));
        Assert.Equal(new[] { 1 }, (await probe.NextAsync()).Items);
    }

    [Fact]
    public async Task DisposeAsync_FailsQueuedItems_WaitsForRunningBatch_RefusesNewOnes()
    {
        var probe = new BatchProbe(blocking: true);
        var batcher = Create(probe, new BatchingOptions { MaxBatchSize = 1 });
        var running = batcher.EnqueueAsync(0, CancellationToken.None);
        var call = await probe.NextAsync();
        var queued = new[] { batcher.EnqueueAsync(1, CancellationToken.None), batcher.EnqueueAsync(2, CancellationToken.None) };

        var disposing = batcher.DisposeAsync().AsTask();

        foreach (var task in queued)
        {
            var error = await Assert.ThrowsAsync<ShuttingDownException>(() => task.WaitAsync(Timeout));
            Assert.Contains("shut down", error.Message, StringComparison.Ordinal);
        }

        Assert.False(disposing.IsCompleted);
        await Assert.ThrowsAsync<ShuttingDownException>(() => batcher.EnqueueAsync(3, CancellationToken.None));
        call.Release();
        await disposing.WaitAsync(Timeout);
        Assert.Equal("r0", await running);
        Assert.False(probe.HasPending);
        var stats = batcher.Stats;
        Assert.Equal(0, stats.QueueLength);
        Assert.Equal(0, stats.InFlightBatches);
        Assert.Equal(2, stats.Failed);
        Assert.Equal(1, stats.Completed);
        await batcher.DisposeAsync(); // a second disposal is harmless
    }

    [Fact]
    public async Task MaxConcurrency_NeverMoreBatchesRunThanAllowed_AFreedSlotStartsTheNext()
    {
        var probe = new BatchProbe(blocking: true);
        await using var batcher = Create(probe, new BatchingOptions { MaxBatchSize = 1, MaxConcurrency = 2 });
        var tasks = Enumerable.Range(0, 5).Select(i => batcher.EnqueueAsync(i, CancellationToken.None)).ToArray();

        var a = await probe.NextAsync();
        var b = await probe.NextAsync();
        Assert.Equal(2, batcher.Stats.InFlightBatches);
        Assert.Equal(3, batcher.Stats.QueueLength);
        Assert.False(probe.HasPending);

        b.Release();
        var c = await probe.NextAsync();
        Assert.Equal([2], c.Items);
        Assert.False(probe.HasPending);
        a.Release();
        c.Release();
        (await probe.NextAsync()).Release();
        (await probe.NextAsync()).Release();

        Assert.Equal(BatchProbe.ResultsFor(Enumerable.Range(0, 5)), await Task.WhenAll(tasks).WaitAsync(Timeout));
        Assert.Equal(2, probe.MaxRunning);
    }

    [Fact]
    public async Task ManyProducers_EveryItemRunsOnceAndEachCallerGetsItsOwnResult_ConcurrencyBounded()
    {
        const int Producers = 8;
        const int PerProducer = 500;
        var runs = new int[Producers * PerProducer];
        var running = 0;
        var maxRunning = 0;
        await using var batcher = new DynamicBatcher<int, int>(
            async (items, _) =>
            {
                var now = Interlocked.Increment(ref running);
                InterlockedMax(ref maxRunning, now);
                await Task.Yield();
                foreach (var item in items)
                {
                    Interlocked.Increment(ref runs[item]);
                }

                Interlocked.Decrement(ref running);
                return items.Select(i => -i).ToArray();
            },
            new BatchingOptions { MaxBatchSize = 16, MaxConcurrency = 3, MaxQueueSize = Producers * PerProducer });

        var producers = Enumerable.Range(0, Producers).Select(p => Task.Run(async () =>
        {
            var mine = new List<Task<int>>();
            for (var i = 0; i < PerProducer; i++)
            {
                mine.Add(batcher.EnqueueAsync((p * PerProducer) + i, CancellationToken.None));
            }

            var results = await Task.WhenAll(mine);
            for (var i = 0; i < PerProducer; i++)
            {
                Assert.Equal(-((p * PerProducer) + i), results[i]);
            }
        }));
        await Task.WhenAll(producers).WaitAsync(Timeout);

        Assert.All(runs, count => Assert.Equal(1, count));
        Assert.InRange(maxRunning, 1, 3);
        var stats = batcher.Stats;
        Assert.Equal(runs.Length, stats.Enqueued);
        Assert.Equal(runs.Length, stats.Completed);
        Assert.Equal(runs.Length, stats.BatchSizeCounts.Select((count, i) => count * (i + 1)).Sum());
        Assert.Equal(stats.BatchesRun, stats.BatchSizeCounts.Sum());
        Assert.Equal(0, stats.QueueLength);
    }

    [Fact]
    public async Task CompleteInline_CallersContinuationRunsOnTheBatchsThread()
    {
        var batchThread = 0;
        var gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var batcher = new DynamicBatcher<int, int>(
            async (items, _) =>
            {
                // Held until the caller's continuation is attached, so the result comes from this thread.
                await gate.Task;
                batchThread = Environment.CurrentManagedThreadId;
                return items.Select(i => -i).ToArray();
            },
            new BatchingOptions { CompleteInline = true });

        var continued = batcher.EnqueueAsync(7, CancellationToken.None)
            .ContinueWith(task => (task.Result, Environment.CurrentManagedThreadId), CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
        gate.SetResult();
        var continuationThread = await continued.WaitAsync(Timeout);
        Assert.Equal((-7, batchThread), continuationThread);
    }

    [Fact]
    public async Task CompleteInline_ItemExpiringWhileQueued_ItsContinuationMayEnqueueAgain()
    {
        // An expired item's continuation runs no caller code under the batcher's lock: enqueueing from it works.
        var probe = new BatchProbe(blocking: true);
        var clock = new FakeTimeProvider();
        await using var batcher = new DynamicBatcher<int, string>(probe.RunAsync, new BatchingOptions { MaxBatchSize = 4, CompleteInline = true }, timeProvider: clock);
        var first = batcher.EnqueueAsync(0, CancellationToken.None);
        var busy = await probe.NextAsync();
        var again = new TaskCompletionSource<Task<string>>(TaskCreationOptions.RunContinuationsAsynchronously);
        var expiring = batcher.EnqueueAsync(1, clock.GetUtcNow().AddMilliseconds(5), CancellationToken.None);
        _ = expiring.ContinueWith(
            _ => again.SetResult(batcher.EnqueueAsync(2, CancellationToken.None)),
            CancellationToken.None,
            TaskContinuationOptions.ExecuteSynchronously,
            TaskScheduler.Default);

        clock.Advance(TimeSpan.FromMilliseconds(5));
        await Assert.ThrowsAsync<DeadlineExceededException>(() => expiring.WaitAsync(Timeout));
        var retried = await again.Task.WaitAsync(Timeout);
        Assert.Equal(1, batcher.Stats.Expired);

        busy.Release();
        var next = await probe.NextAsync();
        Assert.Equal([2], next.Items);
        next.Release();
        Assert.Equal(["r0", "r2"], await Task.WhenAll(first, retried).WaitAsync(Timeout));
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task ManyProducersCancellingAndExpiring_EveryItemEndsExactlyOnce_CountsAddUp(bool completeInline)
    {
        const int Producers = 4;
        const int PerProducer = 400;
        var runs = new int[Producers * PerProducer];
        var clock = new FakeTimeProvider();
        await using var batcher = new DynamicBatcher<int, int>(
            async (items, _) =>
            {
                await Task.Yield();
                foreach (var item in items)
                {
                    Interlocked.Increment(ref runs[item]);
                }

                return items.Select(i => -i).ToArray();
            },
            new BatchingOptions { MaxBatchSize = 8, MaxConcurrency = 2, MaxQueueSize = 64, CompleteInline = completeInline },
            timeProvider: clock);

        var producers = Enumerable.Range(0, Producers).Select(p => Task.Run(async () =>
        {
            var outcomes = new List<Task<int>>();
            var sources = new List<CancellationTokenSource>();
            for (var i = 0; i < PerProducer; i++)
            {
                var item = (p * PerProducer) + i;
                var cts = new CancellationTokenSource();
                sources.Add(cts);
                outcomes.Add(batcher.EnqueueAsync(item, i % 5 == 0 ? clock.GetUtcNow().AddMilliseconds(1) : null, cts.Token));
                if (i % 3 == 0)
                {
                    await cts.CancelAsync();
                }

                if (p == 0 && i % 50 == 0)
                {
                    clock.Advance(TimeSpan.FromMilliseconds(1));
                }
            }

            for (var i = 0; i < PerProducer; i++)
            {
                try
                {
                    Assert.Equal(-((p * PerProducer) + i), await outcomes[i]);
                }
                catch (Exception ex) when (ex is OperationCanceledException or DeadlineExceededException or OverloadedException)
                {
                }

                sources[i].Dispose();
            }
        }));
        await Task.WhenAll(producers).WaitAsync(Timeout);

        // With inline completion a caller may see its result before the batch that produced it has
        // finished its bookkeeping on the same thread; the counts settle right after.
        var settle = DateTime.UtcNow + Timeout;
        while (batcher.Stats.InFlightBatches > 0 && DateTime.UtcNow < settle)
        {
            await Task.Delay(1);
        }

        Assert.All(runs, count => Assert.InRange(count, 0, 1));
        var stats = batcher.Stats;
        Assert.Equal(0, stats.QueueLength);
        Assert.Equal(0, stats.InFlightBatches);
        Assert.Equal(runs.Length, stats.Enqueued + stats.Rejected);
        Assert.Equal(stats.Enqueued, stats.Completed + stats.Failed + stats.Cancelled + stats.Expired);
        Assert.Equal(0, stats.Failed);
        Assert.True(stats.Completed <= runs.Sum());
    }

    [Theory]
    [InlineData(0, 0, 1, 1)]
    [InlineData(1, -1, 1, 1)]
    [InlineData(1, 0, 0, 1)]
    [InlineData(1, 0, 1, 0)]
    public void Constructor_OptionOutOfRange_Throws(int maxBatchSize, int delayMs, int maxQueueSize, int maxConcurrency)
    {
        var options = new BatchingOptions
        {
            MaxBatchSize = maxBatchSize,
            MaxQueueDelay = TimeSpan.FromMilliseconds(delayMs),
            MaxQueueSize = maxQueueSize,
            MaxConcurrency = maxConcurrency,
        };

        Assert.Throws<ArgumentOutOfRangeException>(() => Create(new BatchProbe(blocking: false), options));
    }

    private static DynamicBatcher<int, string> Create(BatchProbe probe, BatchingOptions options, TimeProvider? clock = null, Func<int, int>? rowCount = null) =>
        new(probe.RunAsync, options, rowCount, clock ?? new FakeTimeProvider());

    private static void InterlockedMax(ref int target, int value)
    {
        var current = Volatile.Read(ref target);
        while (value > current && Interlocked.CompareExchange(ref target, value, current) != current)
        {
            current = Volatile.Read(ref target);
        }
    }
}
