namespace Emc.Node.Inference;

/// <summary>
/// A snapshot of one <see cref="DynamicBatcher{TItem, TResult}"/>: its queue depth for the
/// autoscaler and its running totals for metrics. Every accepted item ends in exactly one of
/// <see cref="Completed"/>, <see cref="Failed"/>, <see cref="Cancelled"/> and <see cref="Expired"/>,
/// so <c>Enqueued = QueueLength + items running + Completed + Failed + Cancelled + Expired</c>.
/// </summary>
public sealed record BatcherStats
{
    /// <summary>Items waiting to run.</summary>
    public int QueueLength { get; init; }

    /// <summary>Rows of the items waiting to run.</summary>
    public int QueuedRows { get; init; }

    /// <summary>Batches running now.</summary>
    public int InFlightBatches { get; init; }

    /// <summary>Items accepted since the start (refused ones are not counted).</summary>
    public long Enqueued { get; init; }

    /// <summary>Items refused because the queue was full.</summary>
    public long Rejected { get; init; }

    /// <summary>Items whose result reached their caller.</summary>
    public long Completed { get; init; }

    /// <summary>Items that failed: their batch threw or returned a wrong number of results, or they were dropped at shutdown.</summary>
    public long Failed { get; init; }

    /// <summary>Items whose caller cancelled, queued or running.</summary>
    public long Cancelled { get; init; }

    /// <summary>Items whose deadline passed while queued.</summary>
    public long Expired { get; init; }

    /// <summary>Batches started.</summary>
    public long BatchesRun { get; init; }

    /// <summary>
    /// Batches started by size: element <c>i</c> counts batches of <c>i + 1</c> rows, for
    /// <c>i</c> from 0 to MaxBatchSize - 1. Ready to feed a histogram.
    /// </summary>
    public IReadOnlyList<long> BatchSizeCounts { get; init; } = [];
}
