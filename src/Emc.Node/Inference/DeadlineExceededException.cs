namespace Emc.Node.Inference;

/// <summary>
/// The request's deadline passed while it waited in the queue, so it never ran. Callers report it
/// as gRPC DeadlineExceeded (HTTP 504).
/// </summary>
public sealed class DeadlineExceededException : TimeoutException
{
    public DeadlineExceededException()
        : base("The request's deadline passed while it was queued.")
    {
    }

    public DeadlineExceededException(string message)
        : base(message)
    {
    }

    public DeadlineExceededException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}
