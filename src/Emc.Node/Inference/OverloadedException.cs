namespace Emc.Node.Inference;

/// <summary>
/// A model's queue is full: the request was refused without being queued. Callers report it as
/// "overloaded" (gRPC ResourceExhausted, HTTP 429) so that the coordinator routes elsewhere.
/// </summary>
public sealed class OverloadedException : Exception
{
    public OverloadedException()
        : base("The model's queue is full.")
    {
    }

    public OverloadedException(string message)
        : base(message)
    {
    }

    public OverloadedException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}
