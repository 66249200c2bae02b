namespace Emc.Coordinator.Inference;

/// <summary>
/// The model answered with an error (bad input, unknown tensor, refused prompt). It is the answer,
/// not a failure of the replica: the router passes it back as it came and does not retry.
/// </summary>
public sealed class ReplicaRejectedException : Exception
{
    public ReplicaRejectedException()
        : base("The replica rejected the request.")
    {
    }

    public ReplicaRejectedException(string message)
        : base(message)
    {
    }

    public ReplicaRejectedException(string message, Exception innerException)
        : base(message, innerException)
    {
    }

    /// <summary>Wraps the model's error as the replica sent it.</summary>
    public ReplicaRejectedException(string message, object? detail)
        : base(message)
    {
        Detail = detail;
    }

    /// <summary>The model's error as the replica sent it (for example an Open Inference Protocol error body), for the caller to pass on unchanged.</summary>
    public object? Detail { get; }
}
