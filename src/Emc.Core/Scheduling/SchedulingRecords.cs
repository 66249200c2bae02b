namespace Emc.Core.Scheduling;

/// <summary>A task as the API shows it.</summary>
public sealed record TaskView
{
    public required string Id { get; init; }
    public required string JobId { get; init; }
    public int Index { get; init; }
    public required string Account { get; init; }
    public PriorityClass Priority { get; init; }
    public required string Kind { get; init; }
    public TaskState State { get; init; }

    /// <summary>Leases issued so far; the current or last lease is "{Id}#{Attempt}".</summary>
    public int Attempt { get; init; }

    /// <summary>Attempts that ended without a result (expired, node lost, failed) and count against <see cref="MaxRetries"/>.</summary>
    public int Retries { get; init; }

    public int MaxRetries { get; init; }

    /// <summary>The node of the current lease, or for a completed task the node whose result counts.</summary>
    public string? NodeId { get; init; }
    public string? Device { get; init; }
    public DateTimeOffset? LeaseExpiresAt { get; init; }

    /// <summary>Why the task waits, why it was reissued, or why it failed.</summary>
    public string? Reason { get; init; }

    /// <summary>The attempt whose result counts.</summary>
    public int? WinningAttempt { get; init; }

    /// <summary>sha256 of the counted output, hex.</summary>
    public string? OutputHash { get; init; }

    /// <summary>The counted output; only in single-task queries.</summary>
    public string? Output { get; init; }

    public DateTimeOffset CreatedAt { get; init; }
    public DateTimeOffset UpdatedAt { get; init; }
}

/// <summary>Task counts by state.</summary>
public sealed record TaskCounts(int Queued, int Leased, int Running, int Completed, int Failed, int Cancelled)
{
    public int Total => Queued + Leased + Running + Completed + Failed + Cancelled;
}

/// <summary>A job as the API shows it.</summary>
public sealed record JobView
{
    public required string Id { get; init; }
    public string Name { get; init; } = "";
    public required string Account { get; init; }
    public PriorityClass Priority { get; init; }
    public bool Gang { get; init; }
    public JobState State { get; init; }
    public required ResourceDemand Demand { get; init; }
    public int MaxRetries { get; init; }
    public required TaskCounts Tasks { get; init; }

    /// <summary>Why queued work waits (the first reason that applies), or null.</summary>
    public string? Reason { get; init; }

    public DateTimeOffset CreatedAt { get; init; }
    public DateTimeOffset UpdatedAt { get; init; }
    public DateTimeOffset? FinishedAt { get; init; }
}

/// <summary>Scheduler-wide figures.</summary>
public sealed record SchedulerStats(
    int Nodes,
    int SchedulableNodes,
    int NodesWithFreeSlots,
    int Jobs,
    int Queued,
    int Leased,
    int Running,
    long Placements,
    long Reissues,
    string Policy);

/// <summary>A task's durable state, written after every change.</summary>
public sealed record TaskRecord
{
    public required string Id { get; init; }
    public required string JobId { get; init; }
    public int Index { get; init; }
    public required string Kind { get; init; }

    /// <summary>The task's input; only set when <see cref="IsNew"/> (it never changes).</summary>
    public string? Input { get; init; }

    public TaskState State { get; init; }
    public int Attempt { get; init; }
    public int Retries { get; init; }

    /// <summary>The node of each lease issued so far, in attempt order.</summary>
    public IReadOnlyList<string> LeaseNodes { get; init; } = [];

    public string? Device { get; init; }
    public DateTimeOffset? LeaseExpiresAt { get; init; }
    public bool Accepted { get; init; }
    public string? Reason { get; init; }
    public int? WinningAttempt { get; init; }
    public string? Output { get; init; }
    public string? OutputHash { get; init; }
    public IReadOnlyList<string> ExcludedNodes { get; init; } = [];
    public long Sequence { get; init; }
    public DateTimeOffset CreatedAt { get; init; }
    public DateTimeOffset UpdatedAt { get; init; }

    /// <summary>True the first time the task is written.</summary>
    public bool IsNew { get; init; }
}

/// <summary>A job's durable state.</summary>
public sealed record JobRecord
{
    public required string Id { get; init; }
    public long Number { get; init; }
    public string Name { get; init; } = "";
    public required string Account { get; init; }
    public PriorityClass Priority { get; init; }
    public required ResourceDemand Demand { get; init; }
    public bool Gang { get; init; }
    public bool Elastic { get; init; }
    public int GangRetries { get; init; }
    public int MaxRetries { get; init; }
    public TimeSpan LeaseDuration { get; init; }
    public TimeSpan GangTimeout { get; init; }
    public string? IdempotencyKey { get; init; }
    public JobState State { get; init; }
    public DateTimeOffset CreatedAt { get; init; }
    public DateTimeOffset UpdatedAt { get; init; }
    public DateTimeOffset? FinishedAt { get; init; }
    public bool IsNew { get; init; }
}

/// <summary>One result a node sent for one lease. Recorded once per lease, counted or not.</summary>
public sealed record ResultRecord(
    string TaskId,
    int Attempt,
    string NodeId,
    bool Succeeded,
    string? Output,
    string? OutputHash,
    string? Error,
    bool Counted,
    DateTimeOffset At);

/// <summary>What became of a result a node sent.</summary>
public enum ResultDisposition
{
    /// <summary>Recorded; for a successful result, it is the one that counts.</summary>
    Accepted,

    /// <summary>Recorded, but another attempt's result already counts (a late result after a reissue).</summary>
    Superseded,

    /// <summary>This lease's result was recorded before; nothing changed.</summary>
    Duplicate,

    /// <summary>Not a lease of this node, or no such task; nothing changed.</summary>
    Rejected,
}

/// <summary>What a lease grants a node: one task to run on one device until the lease expires.</summary>
public sealed record LeaseGrant(
    string LeaseId,
    string TaskId,
    string JobId,
    string Kind,
    string Input,
    string Device,
    DateTimeOffset ExpiresAt,
    string? GangId,
    int GangSize);

/// <summary>A message the scheduler wants delivered to a node once its changes are durable.</summary>
public abstract record NodeCommand(string NodeId);

/// <summary>Run this task (a gang member waits for <see cref="StartGang"/>).</summary>
public sealed record OfferLease(string NodeId, LeaseGrant Lease) : NodeCommand(NodeId);

/// <summary>Stop working on this lease: it was reissued, cancelled or released.</summary>
public sealed record RevokeLease(string NodeId, string LeaseId, string Reason) : NodeCommand(NodeId);

/// <summary>Every member of the gang has accepted: start now.</summary>
public sealed record StartGang(string NodeId, string LeaseId, string GangId) : NodeCommand(NodeId);

/// <summary>The node's result for a lease is durable: it may forget it.</summary>
public sealed record AckResult(string NodeId, string LeaseId, ResultDisposition Disposition, string Message) : NodeCommand(NodeId);

/// <summary>Everything that changed since the last drain: write the records, then send the commands.</summary>
public sealed record SchedulerChanges(
    IReadOnlyList<JobRecord> Jobs,
    IReadOnlyList<TaskRecord> Tasks,
    IReadOnlyList<ResultRecord> Results,
    IReadOnlyList<KeyValuePair<string, double>> AccountWeights,
    IReadOnlyList<NodeCommand> Commands)
{
    public bool IsEmpty => Jobs.Count == 0 && Tasks.Count == 0 && Results.Count == 0 && AccountWeights.Count == 0 && Commands.Count == 0;
}

/// <summary>What a restarted coordinator loads: unfinished jobs (and recently finished ones) with their tasks.</summary>
public sealed record SchedulerSnapshot(
    IReadOnlyList<JobRecord> Jobs,
    IReadOnlyList<TaskRecord> Tasks,
    IReadOnlyList<(string TaskId, int Attempt)> RecordedResults,
    IReadOnlyList<KeyValuePair<string, double>> AccountWeights,
    long LastJobNumber);

/// <summary>A connected node that fits a demand.</summary>
/// <param name="NodeId">The node.</param>
/// <param name="Gflops">Measured speed of its fastest fitting device.</param>
/// <param name="UsedSlots">Task slots in use now.</param>
/// <param name="TotalSlots">Task slots it has.</param>
public sealed record FittingNode(string NodeId, double Gflops, int UsedSlots, int TotalSlots);
