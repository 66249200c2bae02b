namespace Emc.Coordinator.Inference;

/// <summary>How a routed request ended. Every call to the router ends in exactly one of these.</summary>
public enum RouteOutcome
{
    /// <summary>A replica answered.</summary>
    Success,

    /// <summary>The model refused the request (<see cref="ReplicaRejectedException"/>); not retried.</summary>
    Rejected,

    /// <summary>Every replica was at its cap and the router's queue was full.</summary>
    Overloaded,

    /// <summary>The deadline passed while the request waited or ran; a running send was cancelled.</summary>
    DeadlineExceeded,

    /// <summary>The deadline passed while the deployment had no replica at all.</summary>
    NoReplicas,

    /// <summary>Every attempt failed for reasons of transport (<see cref="ReplicaUnavailableException"/>).</summary>
    Unavailable,

    /// <summary>The caller cancelled.</summary>
    Canceled,

    /// <summary>The replica threw something it should not have (a bug in a transport); not retried.</summary>
    Faulted,
}

/// <summary>The end of one routed request.</summary>
/// <typeparam name="TResponse">The replica's answer.</typeparam>
/// <param name="Outcome">How it ended.</param>
/// <param name="Response">The answer when <paramref name="Outcome"/> is <see cref="RouteOutcome.Success"/>.</param>
/// <param name="Error">
/// The <see cref="ReplicaRejectedException"/> to pass back as-is for <see cref="RouteOutcome.Rejected"/>, the
/// last <see cref="ReplicaUnavailableException"/> for <see cref="RouteOutcome.Unavailable"/>, the exception for
/// <see cref="RouteOutcome.Faulted"/>; otherwise null.
/// </param>
/// <param name="ReplicaId">The replica that answered (success or rejection), or that failed last.</param>
/// <param name="Attempts">Sends made: 0 when the request never reached a replica.</param>
/// <param name="NodeId">The node of <paramref name="ReplicaId"/>, where the router says (checks run elsewhere).</param>
public readonly record struct RouteResult<TResponse>(
    RouteOutcome Outcome,
    TResponse? Response,
    Exception? Error,
    string? ReplicaId,
    int Attempts,
    string? NodeId = null)
{
    public bool IsSuccess => Outcome == RouteOutcome.Success;
}
