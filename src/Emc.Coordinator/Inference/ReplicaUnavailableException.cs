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

    public ReplicaUnavailableException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}
