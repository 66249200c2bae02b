using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Emc.Node.Inference;

/// <summary>
/// Queues one model's inference requests and runs them in batches, with the semantics of Triton's
/// dynamic batcher: items go out in arrival order, up to <see cref="BatchingOptions.MaxBatchSize"/>
/// rows at a time and at most <see cref="BatchingOptions.MaxConcurrency"/> batches at once. With
/// no <see cref="BatchingOptions.MaxQueueDelay"/> nothing waits for more items, but whatever is
/// already queued goes out together; with a delay, a partial batch waits until its oldest item has
/// waited that long, and goes out at once when it fills up.
/// </summary>
/// <remarks>
/// <para>
/// The batch function gets the batch's items and returns one result per item, in the same order.
/// If it throws, every item of the batch fails with that exception; if it returns the wrong number
/// of results, every item fails with an <see cref="InvalidOperationException"/>. Its cancellation
/// token fires when every caller of the batch has stopped waiting (it is never cancelled by
/// disposal, which lets running batches finish).
/// </para>
/// <para>
/// An item may carry several rows (see the constructor's <c>rowCount</c>): a batch takes items from
/// the head of the queue while their rows fit, never skipping ahead, so order is kept. An item with
/// more rows than <see cref="BatchingOptions.MaxBatchSize"/> is refused when queued, as Triton
/// refuses it, since the model's batch dimension cannot hold it.
/// </para>
/// <para>
/// One lock guards a linked list of waiting items; batches are formed under it whenever something
/// changes (an item arrives, a batch ends, the one timer fires) and run on the thread pool. On the
/// success path the only allocations per item are its task source with its task and, for a
/// cancellable token, its registration; the items array and the work item are per batch. The one
/// timer is armed for the head item's delay or the earliest deadline, never one per item.
/// </para>
/// </remarks>
/// <typeparam name="TItem">One request, as the batch function takes it.</typeparam>
/// <typeparam name="TResult">One request's result.</typeparam>
public sealed class DynamicBatcher<TItem, TResult> : IAsyncDisposable
{
    private const long NoDeadline = long.MaxValue;

    private static readonly Action<object?, CancellationToken> OnCancelledCallback =
        static (state, token) => ((Entry)state!).Owner.OnCancelled((Entry)state, token);

    private readonly Func<IReadOnlyList<TItem>, CancellationToken, ValueTask<IReadOnlyList<TResult>>> _runBatch;
    private readonly Func<TItem, int>? _rowCount;
    private readonly int _maxBatchSize;
    private readonly int _maxQueueSize;
    private readonly int _maxConcurrency;
    private readonly long _delay;
    private readonly bool _completeInline;
    private readonly bool _preciseWaits;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly ITimer _timer;
    private readonly Lock _gate = new();
    private readonly long[] _batchSizeCounts;

    // Guarded by _gate. Timestamps are TimeProvider.GetTimestamp() values.
    private Entry? _head;
    private Entry? _tail;
    private int _queueLength;
    private int _queuedRows;
    private int _deadlineCount;
    private long _earliestDeadline = NoDeadline; // never later than the earliest queued deadline; may be earlier (stale)
    private long _timerDueAt = NoDeadline;
    private int _running;
    private long _batchesRun;
    private bool _disposed;
    private TaskCompletionSource? _idle;

    // Updated with Interlocked (some items are completed outside the lock), read under it for Stats.
    private long _enqueued;
    private long _rejected;
    private long _completed;
    private long _failed;
    private long _cancelled;
    private long _expired;

    /// <summary>A batcher running <paramref name="runBatch"/> on batches formed by <paramref name="options"/>.</summary>
    /// <param name="runBatch">Runs one batch and returns one result per item, in order.</param>
    /// <param name="options">Batch size, delay, queue bound and concurrency; validated here.</param>
    /// <param name="rowCount">Rows an item carries, from 1 to MaxBatchSize. Default null: one row per item.</param>
    /// <param name="timeProvider">The clock for delays and deadlines. Default: the system clock.</param>
    /// <param name="logger">Where batch failures are logged. Default: nowhere.</param>
    public DynamicBatcher(
        Func<IReadOnlyList<TItem>, CancellationToken, ValueTask<IReadOnlyList<TResult>>> runBatch,
        BatchingOptions options,
        Func<TItem, int>? rowCount = null,
        TimeProvider? timeProvider = null,
        ILogger? logger = null)
    {
        ArgumentNullException.ThrowIfNull(runBatch);
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        _runBatch = runBatch;
        _rowCount = rowCount;
        _maxBatchSize = options.MaxBatchSize;
        _completeInline = options.CompleteInline;
        _maxQueueSize = options.MaxQueueSize;
        _maxConcurrency = options.MaxConcurrency;
        _time = timeProvider ?? TimeProvider.System;
        _preciseWaits = ReferenceEquals(_time, TimeProvider.System) && PreciseSleep.IsSupported;
        _delay = (long)Math.Ceiling(options.MaxQueueDelay.Ticks * (double)_time.TimestampFrequency / TimeSpan.TicksPerSecond);
        _logger = logger ?? NullLogger.Instance;
        _batchSizeCounts = new long[_maxBatchSize];
        _timer = _time.CreateTimer(static state => ((DynamicBatcher<TItem, TResult>)state!).OnTimer(), this, Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan);
    }

    private enum EntryState
    {
        /// <summary>Created, not yet in the queue.</summary>
        New,

        /// <summary>In the queue.</summary>
        Queued,

        /// <summary>Taken into a running batch.</summary>
        Running,

        /// <summary>Left the queue without running (cancelled, expired, refused, shut down), or cancelled while running.</summary>
        Done,
    }

    /// <summary>A snapshot of the queue and the running totals.</summary>
    public BatcherStats Stats
    {
        get
        {
            lock (_gate)
            {
                return new BatcherStats
                {
                    QueueLength = _queueLength,
                    QueuedRows = _queuedRows,
                    InFlightBatches = _running,
                    Enqueued = Interlocked.Read(ref _enqueued),
                    Rejected = Interlocked.Read(ref _rejected),
                    Completed = Interlocked.Read(ref _completed),
                    Failed = Interlocked.Read(ref _failed),
                    Cancelled = Interlocked.Read(ref _cancelled),
                    Expired = Interlocked.Read(ref _expired),
                    BatchesRun = _batchesRun,
                    BatchSizeCounts = (long[])_batchSizeCounts.Clone(),
                };
            }
        }
    }

    /// <summary>Queues <paramref name="item"/> with no deadline; see <see cref="EnqueueAsync(TItem, DateTimeOffset?, CancellationToken)"/>.</summary>
    public Task<TResult> EnqueueAsync(TItem item, CancellationToken cancellationToken) =>
        EnqueueAsync(item, deadline: null, cancellationToken);

    /// <summary>
    /// Queues <paramref name="item"/> and completes with its result once its batch has run.
    /// </summary>
    /// <param name="item">The request.</param>
    /// <param name="deadline">
    /// When the request stops being worth running (by the batcher's clock). If it passes while the
    /// item is queued, the item is dropped and fails with <see cref="DeadlineExceededException"/>;
    /// once its batch started it runs to the end. Null: no deadline.
    /// </param>
    /// <param name="cancellationToken">
    /// Cancels the request: a queued item is dropped without running; once its batch started the
    /// caller just stops waiting. Either way the task is cancelled.
    /// </param>
    /// <returns>
    /// The item's result; or a task failed with <see cref="OverloadedException"/> (the queue holds
    /// MaxQueueSize items already), <see cref="ShuttingDownException"/> (the batcher is disposed, or
    /// was disposed while the item waited), <see cref="DeadlineExceededException"/>, or the batch
    /// function's exception.
    /// </returns>
    /// <exception cref="ArgumentOutOfRangeException">The item has fewer than 1 or more than MaxBatchSize rows (thrown at once).</exception>
    public Task<TResult> EnqueueAsync(TItem item, DateTimeOffset? deadline, CancellationToken cancellationToken)
    {
        var rows = _rowCount is null ? 1 : _rowCount(item);
        if (rows < 1 || rows > _maxBatchSize)
        {
            throw new ArgumentOutOfRangeException(nameof(item), rows, $"An item must have from 1 to {_maxBatchSize} rows (the model's largest batch).");
        }

        if (Volatile.Read(ref _disposed))
        {
            return Task.FromException<TResult>(new ShuttingDownException());
        }

        if (cancellationToken.IsCancellationRequested)
        {
            return Task.FromCanceled<TResult>(cancellationToken);
        }

        var now = _time.GetTimestamp();
        var deadlineAt = deadline is { } d ? ToTimestamp(d, now) : NoDeadline;
        if (deadlineAt <= now)
        {
            Interlocked.Increment(ref _enqueued);
            Interlocked.Increment(ref _expired);
            return Task.FromException<TResult>(new DeadlineExceededException("The request's deadline had passed when it arrived."));
        }

        var entry = new Entry(this, item, rows, now, deadlineAt);
        if (cancellationToken.CanBeCanceled)
        {
            // Registered before the entry is queued, so whoever takes it from the queue (under the
            // lock) sees the registration; a cancellation in between finds it New and marks it Done.
            entry.Registration = cancellationToken.UnsafeRegister(OnCancelledCallback, entry);
        }

        Exception? refusal = null;
        lock (_gate)
        {
            if (entry.State == EntryState.Done)
            {
                // Cancelled while being registered: accepted and cancelled at once.
                Interlocked.Increment(ref _enqueued);
                return entry.Task;
            }

            if (_disposed)
            {
                refusal = new ShuttingDownException();
            }
            else if (_queueLength >= _maxQueueSize)
            {
                Interlocked.Increment(ref _rejected);
                refusal = new OverloadedException($"The model's queue is full ({_maxQueueSize} requests waiting).");
            }

            if (refusal is not null)
            {
                entry.State = EntryState.Done;
            }
            else
            {
                Interlocked.Increment(ref _enqueued);
                Link(entry);
                Dispatch();
            }
        }

        if (refusal is not null)
        {
            entry.Registration.Unregister();
            return Task.FromException<TResult>(refusal);
        }

        return entry.Task;
    }

    /// <summary>
    /// Stops the batcher: queued items fail with <see cref="ShuttingDownException"/>, new ones are
    /// refused with it, and running batches are awaited (their callers get their results).
    /// </summary>
    public async ValueTask DisposeAsync()
    {
        Entry? queued = null;
        Task idle;
        lock (_gate)
        {
            if (!_disposed)
            {
                Volatile.Write(ref _disposed, true);
                queued = _head;
                for (var entry = _head; entry is not null; entry = entry.Next)
                {
                    entry.State = EntryState.Done;
                }

                _head = _tail = null;
                _queueLength = _queuedRows = _deadlineCount = 0;
                if (_running > 0)
                {
                    _idle = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                }
            }

            idle = _idle?.Task ?? Task.CompletedTask;
        }

        await _timer.DisposeAsync();
        for (var entry = queued; entry is not null; entry = entry.Next)
        {
            if (entry.TrySetException(new ShuttingDownException("The model shut down before the request ran.")))
            {
                Interlocked.Increment(ref _failed);
            }

            entry.Registration.Unregister();
        }

        await idle;
    }

    private void OnCancelled(Entry entry, CancellationToken token)
    {
        CancellationTokenSource? abandoned = null;
        lock (_gate)
        {
            switch (entry.State)
            {
                case EntryState.New:
                    break;
                case EntryState.Queued:
                    // The timer may now be armed earlier than needed; it then fires once for nothing.
                    Unlink(entry);
                    break;
                case EntryState.Running:
                    var batch = entry.Batch!;
                    if (++batch.Abandoned == batch.Count)
                    {
                        abandoned = batch.Cancellation;
                    }

                    break;
                default:
                    return;
            }

            entry.State = EntryState.Done;
        }

        if (entry.TrySetCanceled(token))
        {
            Interlocked.Increment(ref _cancelled);
        }

        if (abandoned is not null)
        {
            try
            {
                abandoned.Cancel();
            }
            catch (AggregateException ex)
            {
                // A callback the batch function registered threw; it must not reach the caller who cancelled.
                DynamicBatcherLog.CancellationCallbackFailed(_logger, ex);
            }
        }
    }

    private void OnTimer()
    {
        lock (_gate)
        {
            _timerDueAt = NoDeadline;
            Dispatch();
        }
    }

    /// <summary>Expires overdue items, starts every batch that is due and may run, and arms the timer. Under the lock.</summary>
    private void Dispatch()
    {
        if (_disposed)
        {
            return;
        }

        var now = _time.GetTimestamp();
        if (_deadlineCount > 0 && now >= _earliestDeadline)
        {
            ExpireQueued(now);
        }

        while (_head is not null && _running < _maxConcurrency)
        {
            if (_delay > 0 && _queuedRows < _maxBatchSize && now - _head.EnqueuedAt < _delay)
            {
                break;
            }

            StartBatch();
        }

        var dueAt = NoDeadline;
        if (_head is not null)
        {
            if (_running < _maxConcurrency)
            {
                // The loop stopped on a partial batch waiting for its oldest item's delay.
                dueAt = _head.EnqueuedAt + _delay;
            }

            if (_deadlineCount > 0)
            {
                dueAt = Math.Min(dueAt, _earliestDeadline);
            }
        }

        // A timer armed earlier than needed stays: it fires once for nothing and is armed again.
        if (dueAt < _timerDueAt)
        {
            _timerDueAt = dueAt;
            var wait = TimeSpan.FromSeconds((dueAt - now) / (double)_time.TimestampFrequency);
            if (_preciseWaits && wait < PreciseSleep.Threshold)
            {
                // A sub-millisecond batching delay: slept precisely on a thread of its own rather than
                // rounded up to a timer's millisecond and its late callback.
                ThreadPool.UnsafeQueueUserWorkItem(
                    static state =>
                    {
                        PreciseSleep.Sleep(state.Wait);
                        state.Owner.OnTimer();
                    },
                    (Owner: this, Wait: wait),
                    preferLocal: false);
                return;
            }

            // Rounded up to whole milliseconds: system timers truncate to them, and a timer that fires
            // before its time would be armed again and again until the time comes.
            var milliseconds = Math.Ceiling((dueAt - now) * 1000.0 / _time.TimestampFrequency);
            _timer.Change(TimeSpan.FromMilliseconds(Math.Max(1, milliseconds)), Timeout.InfiniteTimeSpan);
        }
    }

    private void StartBatch()
    {
        var batch = new Batch(this, _head!);
        var rows = 0;
        var cancellable = false;
        Entry? last = null;
        for (var entry = _head; entry is not null && rows + entry.Rows <= _maxBatchSize; entry = entry.Next)
        {
            rows += entry.Rows;
            batch.Count++;
            entry.State = EntryState.Running;
            entry.Batch = batch;
            cancellable |= entry.Registration.Token.CanBeCanceled;
            if (entry.DeadlineAt != NoDeadline && --_deadlineCount == 0)
            {
                _earliestDeadline = NoDeadline;
            }

            last = entry;
        }

        // The batch's entries stay chained through Next, from batch.First to last.
        _head = last!.Next;
        last.Next = null;
        if (_head is null)
        {
            _tail = null;
        }
        else
        {
            _head.Prev = null;
        }

        _queueLength -= batch.Count;
        _queuedRows -= rows;
        if (cancellable)
        {
            batch.Cancellation = new CancellationTokenSource();
        }

        _running++;
        _batchesRun++;
        _batchSizeCounts[rows - 1]++;
        ThreadPool.UnsafeQueueUserWorkItem(batch, preferLocal: false);
    }

    private async Task RunBatchAsync(Batch batch)
    {
        var items = new TItem[batch.Count];
        var entry = batch.First;
        for (var i = 0; i < items.Length; i++, entry = entry.Next!)
        {
            items[i] = entry.Item;
        }

        IReadOnlyList<TResult>? results = null;
        Exception? error = null;
        try
        {
            results = await _runBatch(items, batch.Cancellation?.Token ?? CancellationToken.None);
            if (results is null || results.Count != items.Length)
            {
                error = new InvalidOperationException(
                    $"The batch function returned {results?.Count.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? "null"} results for a batch of {items.Length} items; it must return one result per item, in order.");
                DynamicBatcherLog.WrongResultCount(_logger, results?.Count ?? -1, items.Length);
            }
        }
        catch (Exception ex)
        {
            error = ex;
            DynamicBatcherLog.BatchFailed(_logger, ex, items.Length);
        }

        long completed = 0;
        long failed = 0;
        entry = batch.First;
        for (var i = 0; entry is not null; i++, entry = entry.Next)
        {
            if (error is null ? entry.TrySetResult(results![i]) : entry.TrySetException(error))
            {
                if (error is null)
                {
                    completed++;
                }
                else
                {
                    failed++;
                }
            }

            entry.Registration.Unregister();
        }

        Interlocked.Add(ref _completed, completed);
        Interlocked.Add(ref _failed, failed);

        // The batch's CancellationTokenSource is not disposed: a late cancellation callback may still
        // call Cancel on it, and without a timer or linked tokens it holds nothing to release.
        lock (_gate)
        {
            _running--;
            if (!_disposed)
            {
                Dispatch();
            }
            else if (_running == 0)
            {
                _idle?.TrySetResult();
            }
        }
    }

    private void Link(Entry entry)
    {
        entry.State = EntryState.Queued;
        entry.Prev = _tail;
        if (_tail is null)
        {
            _head = entry;
        }
        else
        {
            _tail.Next = entry;
        }

        _tail = entry;
        _queueLength++;
        _queuedRows += entry.Rows;
        if (entry.DeadlineAt != NoDeadline)
        {
            _deadlineCount++;
            _earliestDeadline = Math.Min(_earliestDeadline, entry.DeadlineAt);
        }
    }

    private void Unlink(Entry entry)
    {
        if (entry.Prev is null)
        {
            _head = entry.Next;
        }
        else
        {
            entry.Prev.Next = entry.Next;
        }

        if (entry.Next is null)
        {
            _tail = entry.Prev;
        }
        else
        {
            entry.Next.Prev = entry.Prev;
        }

        entry.Prev = entry.Next = null;
        _queueLength--;
        _queuedRows -= entry.Rows;
        if (entry.DeadlineAt != NoDeadline && --_deadlineCount == 0)
        {
            _earliestDeadline = NoDeadline;
        }
    }

    /// <summary>Drops every queued item whose deadline has passed and recomputes the earliest deadline. Under the lock.</summary>
    private void ExpireQueued(long now)
    {
        var earliest = NoDeadline;
        for (var entry = _head; entry is not null;)
        {
            var next = entry.Next;
            if (entry.DeadlineAt <= now)
            {
                Unlink(entry);
                entry.State = EntryState.Done;

                // No caller code may run under the lock: an entry whose continuations run inline is
                // completed from the thread pool (a rare path; the batch results are the hot one).
                if (_completeInline)
                {
                    Interlocked.Increment(ref _expired);
                    ThreadPool.UnsafeQueueUserWorkItem(static e => e.Expire(), entry, preferLocal: false);
                }
                else if (entry.Expire())
                {
                    Interlocked.Increment(ref _expired);
                }
            }
            else
            {
                earliest = Math.Min(earliest, entry.DeadlineAt);
            }

            entry = next;
        }

        _earliestDeadline = earliest;
    }

    private long ToTimestamp(DateTimeOffset deadline, long now)
    {
        var remaining = deadline - _time.GetUtcNow();
        if (remaining <= TimeSpan.Zero)
        {
            return now;
        }

        var ticks = Math.Ceiling(remaining.Ticks * (double)_time.TimestampFrequency / TimeSpan.TicksPerSecond);
        return ticks >= long.MaxValue / 4 ? NoDeadline : now + (long)ticks;
    }

    private sealed class Entry : TaskCompletionSource<TResult>
    {
        public Entry(DynamicBatcher<TItem, TResult> owner, TItem item, int rows, long enqueuedAt, long deadlineAt)
            : base(owner._completeInline ? TaskCreationOptions.None : TaskCreationOptions.RunContinuationsAsynchronously)
        {
            Owner = owner;
            Item = item;
            Rows = rows;
            EnqueuedAt = enqueuedAt;
            DeadlineAt = deadlineAt;
        }

        public DynamicBatcher<TItem, TResult> Owner { get; }

        /// <summary>Fails the entry as past its deadline; true when this completed it.</summary>
        public bool Expire()
        {
            var expired = TrySetException(new DeadlineExceededException());
            Registration.Unregister();
            return expired;
        }

        public TItem Item { get; }

        public int Rows { get; }

        public long EnqueuedAt { get; }

        public long DeadlineAt { get; }

        // Guarded by the owner's lock, except Registration, which is set before the entry is queued.
        public EntryState State { get; set; }

        public Entry? Prev { get; set; }

        public Entry? Next { get; set; }

        public Batch? Batch { get; set; }

        public CancellationTokenRegistration Registration { get; set; }
    }

    private sealed class Batch(DynamicBatcher<TItem, TResult> owner, Entry first) : IThreadPoolWorkItem
    {
        public Entry First { get; } = first;

        public int Count { get; set; }

        /// <summary>Entries whose callers cancelled while the batch ran; at Count, the batch's token fires.</summary>
        public int Abandoned { get; set; }

        /// <summary>Null when no entry can be cancelled.</summary>
        public CancellationTokenSource? Cancellation { get; set; }

        public void Execute() => _ = owner.RunBatchAsync(this);
    }
}

internal static partial class DynamicBatcherLog
{
    [LoggerMessage(EventId = 2200, Level = LogLevel.Warning, Message = "A batch of {Count} inference requests failed.")]
    public static partial void BatchFailed(ILogger logger, Exception exception, int count);

    [LoggerMessage(EventId = 2201, Level = LogLevel.Error, Message = "The batch function returned {Actual} results for a batch of {Expected} requests.")]
    public static partial void WrongResultCount(ILogger logger, int actual, int expected);

    [LoggerMessage(EventId = 2202, Level = LogLevel.Warning, Message = "A cancellation callback of an abandoned batch threw.")]
    public static partial void CancellationCallbackFailed(ILogger logger, Exception exception);
}
