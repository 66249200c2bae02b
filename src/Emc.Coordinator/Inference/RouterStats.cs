namespace Emc.Coordinator.Inference;

/// <summary>A snapshot of one deployment's router, for the autoscaler and metrics. Counters are totals since the router was made.</summary>
public sealed record RouterStats
{
    public required string Deployment { get; init; }

    /// <summary>Replicas in the set now.</summary>
    public int Replicas { get; init; }

    /// <summary>Requests waiting for a slot or for a replica to appear (the autoscaler's queue depth).</summary>
    public int Queued { get; init; }

    /// <summary>Requests in flight on replicas, removed replicas included until their sends end.</summary>
    public int Outstanding { get; init; }

    /// <summary>Calls to RouteAsync.</summary>
    public long Requests { get; init; }

    /// <summary>Sends to replicas, retries included.</summary>
    public long Routed { get; init; }

    /// <summary>Sends after the first within a request (transport failures).</summary>
    public long Retried { get; init; }

    public long Succeeded { get; init; }

    public long Rejected { get; init; }

    public long Overloaded { get; init; }

    public long DeadlineExceeded { get; init; }

    public long NoReplicas { get; init; }

    public long Unavailable { get; init; }

    public long Canceled { get; init; }

    public long Faulted { get; init; }

    /// <summary>Requests that have ended, whatever the outcome.</summary>
    public long Completed => Succeeded + Rejected + Overloaded + DeadlineExceeded + NoReplicas + Unavailable + Canceled + Faulted;

    /// <summary>Requests that ended with <paramref name="outcome"/>.</summary>
    public long Count(RouteOutcome outcome) => outcome switch
    {
        RouteOutcome.Success => Succeeded,
        RouteOutcome.Rejected => Rejected,
        RouteOutcome.Overloaded => Overloaded,
        RouteOutcome.DeadlineExceeded => DeadlineExceeded,
        RouteOutcome.NoReplicas => NoReplicas,
        RouteOutcome.Unavailable => Unavailable,
        RouteOutcome.Canceled => Canceled,
        RouteOutcome.Faulted => Faulted,
        _ => throw new ArgumentOutOfRangeException(nameof(outcome)),
    };
}

/// <summary>One replica's load as the router counts it.</summary>
/// <param name="ReplicaId">The replica.</param>
/// <param name="NodeId">Its node.</param>
/// <param name="Outstanding">Requests in flight on it.</param>
/// <param name="MaxOngoingRequests">Its cap.</param>
/// <param name="Healthy">False while it is passed over after a failed send.</param>
/// <param name="Served">Requests it answered (the model's own rejections included) since it was added.</param>
public readonly record struct ReplicaLoad(string ReplicaId, string NodeId, int Outstanding, int MaxOngoingRequests, bool Healthy, long Served = 0);
