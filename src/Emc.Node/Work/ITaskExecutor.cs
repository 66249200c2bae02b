namespace Emc.Node.Work;

/// <summary>
/// Runs one kind of task (the lease offer's <c>kind</c>, such as "benchmark") on a device of this node.
/// </summary>
public interface ITaskExecutor
{
    /// <summary>The kind this executor runs; offers of other kinds never reach it.</summary>
    string Kind { get; }

    /// <summary>
    /// Runs the task and returns its output (at most <see cref="LeaseRunner.MaxOutputChars"/> characters).
    /// A failure is thrown as <see cref="TaskFailedException"/>; a revoked lease cancels
    /// <paramref name="cancellationToken"/>, and the executor then stops with <see cref="OperationCanceledException"/>.
    /// </summary>
    Task<string> RunAsync(TaskContext context, CancellationToken cancellationToken);
}
