namespace Emc.Coordinator.Inference;

/// <summary>
/// A replica could not take or finish a request for reasons of transport (node gone, stream
/// broken, replica removed). Inference is idempotent, so the router retries on another replica.
/// </summary>
public sealed class ReplicaUnavailableException : Exception
{
    public ReplicaUnavailableException()
        : base("The replica is unavailable.")
    {
    }

    public ReplicaUnavailableException(string message)
        : base(message)
    {
    }

    /// <summary>
    /// True when the replica answered, but with something malformed (outputs that do not match the
    /// model, a broken stream): the node misbehaves rather than being unreachable, and a replica that
    /// keeps doing it is evicted (<see cref="ReplicaRouterOptions.EvictAfterMalformedReplies"/>).
    /// </summary>
    public bool Malformed { get; init; }

    public ReplicaUnavailableException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}
