namespace Emc.Core.Scheduling;

/// <summary>
/// Priority classes. Classes share the network by weight (see <see cref="SchedulerOptions.ClassWeights"/>),
/// so a busy high class slows a low class down but never stops it.
/// </summary>
public enum PriorityClass
{
    Low = 0,
    Normal = 1,
    High = 2,
}

/// <summary>Where a task is in its life.</summary>
public enum TaskState
{
    /// <summary>Waiting for a node (first time, or reissued after a lease ended without a result).</summary>
    Queued,

    /// <summary>Offered to a node under a lease that the node has not yet accepted.</summary>
    Leased,

    /// <summary>The node accepted the lease and is working on it.</summary>
    Running,

    Completed,
    Failed,
    Cancelled,
}

/// <summary>Where a job is in its life, derived from its tasks.</summary>
public enum JobState
{
    Queued,
    Running,
    Completed,
    Failed,
    Cancelled,
}

/// <summary>Extension methods for the state enums.</summary>
public static class SchedulingStates
{
    /// <summary>True for completed, failed and cancelled tasks: nothing will change them again.</summary>
    public static bool IsTerminal(this TaskState state) => state is TaskState.Completed or TaskState.Failed or TaskState.Cancelled;

    /// <summary>True for completed, failed and cancelled jobs.</summary>
    public static bool IsTerminal(this JobState state) => state is JobState.Completed or JobState.Failed or JobState.Cancelled;
}
