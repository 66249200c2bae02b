using Emc.Core.Scheduling;

namespace Emc.Coordinator.Scheduling;

/// <summary>The scheduler's durable state: written after every batch of changes, read at start and for jobs no longer in memory.</summary>
public interface ISchedulerStore
{
    /// <summary>Writes a batch of changes in one transaction.</summary>
    Task SaveAsync(SchedulerChanges changes, CancellationToken cancellationToken);

    /// <summary>Unfinished jobs and those finished after <paramref name="finishedAfter"/>, with their tasks.</summary>
    Task<SchedulerSnapshot> LoadAsync(DateTimeOffset finishedAfter, CancellationToken cancellationToken);

    Task<JobView?> GetJobAsync(string jobId, CancellationToken cancellationToken);

    Task<IReadOnlyList<JobView>> ListJobsAsync(JobState? state, string? account, int limit, CancellationToken cancellationToken);

    Task<TaskView?> GetTaskAsync(string taskId, CancellationToken cancellationToken);

    Task<IReadOnlyList<TaskView>> ListTasksAsync(string? jobId, TaskState? state, string? afterTaskId, int limit, string? account, CancellationToken cancellationToken);
}

/// <summary>Delivers the scheduler's messages to nodes (over their streams, or to simulated nodes in benchmarks).</summary>
public interface INodeCommandSink
{
    /// <summary>Hands a message to the node's stream without waiting; a node that is not connected misses it (the protocol recovers: leases expire, results are re-sent, heartbeats trigger revokes).</summary>
    void Deliver(NodeCommand command);
}
