namespace Emc.Coordinator.Persistence;

// The scheduler's tables. Rows are named XxxRow because Emc.Core.Scheduling already has JobRecord and
// TaskRecord, the records the scheduler hands out; SchedulerStore maps between the two. Enums are
// lower-case strings and times unix milliseconds, so the tables read the same from any SQL client.

/// <summary>A job's durable row (table <c>jobs</c>).</summary>
public sealed class JobRow
{
    public required string Id { get; set; }
    public long Number { get; set; }
    public string Name { get; set; } = "";
    public required string Account { get; set; }
    public required string Priority { get; set; }

    /// <summary>The job's <see cref="Emc.Core.Scheduling.ResourceDemand"/> as JSON (<see cref="Emc.Core.EmcJson.Options"/>).</summary>
    public required string DemandJson { get; set; }

    public bool Gang { get; set; }
    public bool Elastic { get; set; }
    public int GangRetries { get; set; }
    public int MaxRetries { get; set; }
    public long LeaseDurationMs { get; set; }
    public long GangTimeoutMs { get; set; }
    public string? IdempotencyKey { get; set; }
    public required string State { get; set; }
    public long CreatedAtUnixMs { get; set; }
    public long UpdatedAtUnixMs { get; set; }
    public long? FinishedAtUnixMs { get; set; }
}

/// <summary>A task's durable row (table <c>tasks</c>).</summary>
public sealed class TaskRow
{
    public required string Id { get; set; }
    public required string JobId { get; set; }
    public int Index { get; set; }
    public required string Kind { get; set; }
    public string Input { get; set; } = "";
    public required string State { get; set; }
    public int Attempt { get; set; }
    public int Retries { get; set; }

    /// <summary>The node of each lease issued so far, in attempt order, comma-separated.</summary>
    public string LeaseNodes { get; set; } = "";

    public string? Device { get; set; }
    public long? LeaseExpiresAtUnixMs { get; set; }
    public bool Accepted { get; set; }
    public string? Reason { get; set; }
    public int? WinningAttempt { get; set; }
    public string? Output { get; set; }
    public string? OutputHash { get; set; }

    /// <summary>Nodes the task avoids, comma-separated.</summary>
    public string ExcludedNodes { get; set; } = "";

    public long Sequence { get; set; }
    public long CreatedAtUnixMs { get; set; }
    public long UpdatedAtUnixMs { get; set; }
}

/// <summary>One result a node sent for one lease (table <c>task_results</c>); recorded once per lease.</summary>
public sealed class TaskResultRow
{
    public required string TaskId { get; set; }
    public int Attempt { get; set; }
    public required string NodeId { get; set; }
    public bool Succeeded { get; set; }
    public string? Output { get; set; }
    public string? OutputHash { get; set; }
    public string? Error { get; set; }
    public bool Counted { get; set; }
    public long AtUnixMs { get; set; }
}

/// <summary>An account's fair-share weight (table <c>account_weights</c>).</summary>
public sealed class AccountWeightRow
{
    public required string Account { get; set; }
    public double Weight { get; set; }
}
