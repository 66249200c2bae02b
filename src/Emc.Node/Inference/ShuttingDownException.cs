namespace Emc.Node.Inference;

/// <summary>
/// The model is being unloaded: the request was refused, or dropped from the queue before it ran.
/// Callers report it as "unavailable" (gRPC Unavailable, HTTP 503): another replica may serve it.
/// </summary>
public sealed class ShuttingDownException : Exception
{
    public ShuttingDownException()
        : base("The model is shutting down.")
    {
    }

    public ShuttingDownException(string message)
        : base(message)
    {
    }

    public ShuttingDownException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}
