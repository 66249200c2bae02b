namespace Emc.Node.Work;

/// <summary>
/// The task failed. <see cref="Retryable"/> says whether another attempt could succeed (a lost
/// download, a busy device) or not (bad input): the coordinator retries only the former.
/// </summary>
public sealed class TaskFailedException : Exception
{
    /// <summary>A failure with its reason.</summary>
    public TaskFailedException(string message, bool retryable)
        : base(message)
    {
        Retryable = retryable;
    }

    /// <summary>A failure with its reason and the exception that caused it.</summary>
    public TaskFailedException(string message, bool retryable, Exception innerException)
        : base(message, innerException)
    {
        Retryable = retryable;
    }

    /// <summary>Whether another attempt could succeed.</summary>
    public bool Retryable { get; }
}
