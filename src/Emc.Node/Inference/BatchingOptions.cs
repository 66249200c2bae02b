namespace Emc.Node.Inference;

/// <summary>
/// How a <see cref="DynamicBatcher{TItem, TResult}"/> forms and runs batches for one model. The
/// semantics follow Triton's dynamic batcher: with the default delay of zero nothing waits for more
/// requests, but whatever is already queued goes out together, up to <see cref="MaxBatchSize"/>.
/// </summary>
public sealed record BatchingOptions
{
    /// <summary>The most rows in one batch, 1 or more. Default 1: every item runs alone (no batching).</summary>
    public int MaxBatchSize { get; init; } = 1;

    /// <summary>
    /// How long a partial batch may wait for more items, counted from its oldest item's arrival; a
    /// batch that fills up goes out at once. Default zero: never wait (Triton's default). On Linux a delay
    /// under 2 ms is slept precisely (<c>nanosleep</c>, within tens of microseconds); longer ones, and other
    /// platforms, use a timer that ticks in whole milliseconds.
    /// </summary>
    public TimeSpan MaxQueueDelay { get; init; } = TimeSpan.Zero;

    /// <summary>
    /// The most items waiting (not counting those running); one more is refused with
    /// <see cref="OverloadedException"/>. Default 1,024.
    /// </summary>
    public int MaxQueueSize { get; init; } = 1024;

    /// <summary>Batches that may run at once, 1 or more. Default 1.</summary>
    public int MaxConcurrency { get; init; } = 1;

    /// <summary>
    /// When true, an item's result is handed over on the thread that ran its batch (or expired or
    /// cancelled it): the caller's continuation runs there at once instead of being queued to the
    /// thread pool, which saves a thread hop per item. For callers whose continuations are short and
    /// never block, such as the node's reply to an inference call. Default false.
    /// </summary>
    public bool CompleteInline { get; init; }

    /// <summary>Throws <see cref="ArgumentOutOfRangeException"/> when a setting is out of range; the batcher calls it when created.</summary>
    public void Validate()
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(MaxBatchSize, 1, nameof(MaxBatchSize));
        ArgumentOutOfRangeException.ThrowIfLessThan(MaxQueueDelay, TimeSpan.Zero, nameof(MaxQueueDelay));
        ArgumentOutOfRangeException.ThrowIfGreaterThan(MaxQueueDelay, TimeSpan.FromDays(1), nameof(MaxQueueDelay));
        ArgumentOutOfRangeException.ThrowIfLessThan(MaxQueueSize, 1, nameof(MaxQueueSize));
        ArgumentOutOfRangeException.ThrowIfLessThan(MaxConcurrency, 1, nameof(MaxConcurrency));
    }
}
