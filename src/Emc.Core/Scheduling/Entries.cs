namespace Emc.Core.Scheduling;

/// <summary>Something the fair-share queue hands out: one task, or a whole gang.</summary>
internal abstract class QueueItem
{
    public required JobEntry Job { get; init; }

    /// <summary>Submission order; a reissued item keeps it so it goes ahead of younger work.</summary>
    public long Sequence { get; set; }

    /// <summary>The item sits in the queue (false once taken or cancelled: stale entries are skipped).</summary>
    public bool InQueue { get; set; }

    /// <summary>The shape line the item was queued under.</summary>
    public string QueuedShape { get; set; } = "";

    /// <summary>Placements this item uses up, charged against its account's share.</summary>
    public abstract int Cost { get; }

    public abstract string ShapeKey { get; }
}

internal sealed class JobEntry
{
    public required string Id { get; init; }
    public long Number { get; init; }
    public string Name { get; init; } = "";
    public required string Account { get; init; }
    public PriorityClass Priority { get; init; }
    public required ResourceDemand Demand { get; init; }
    public required string DemandKey { get; init; }
    public int MaxRetries { get; init; }
    public TimeSpan LeaseDuration { get; init; }
    public TimeSpan GangTimeout { get; init; }
    public string? IdempotencyKey { get; init; }
    public DateTimeOffset CreatedAt { get; init; }
    public DateTimeOffset UpdatedAt { get; set; }
    public DateTimeOffset? FinishedAt { get; set; }
    public bool CancelRequested { get; set; }
    public JobState State { get; set; }
    public TaskEntry[] Tasks { get; set; } = [];
    public GangEntry? Gang { get; set; }

    /// <summary>A started gang whose members fail alone (<see cref="JobSpec.Elastic"/>).</summary>
    public bool Elastic { get; init; }

    /// <summary>Task counts indexed by <see cref="TaskState"/>.</summary>
    public int[] Counts { get; } = new int[6];

    public TaskCounts CountsView() => new(Counts[0], Counts[1], Counts[2], Counts[3], Counts[4], Counts[5]);
}

internal sealed class TaskEntry : QueueItem
{
    public required string Id { get; init; }
    public int Index { get; init; }
    public required string Kind { get; init; }
    public required string Input { get; init; }
    public TaskState State { get; set; }
    public int Attempt { get; set; }
    public int Retries { get; set; }
    public List<string> LeaseNodes { get; } = [];

    /// <summary>Where the current lease runs; null when the task holds no lease.</summary>
    public string? NodeId { get; set; }

    public string? Device { get; set; }
    public DateTimeOffset? LeaseExpiresAt { get; set; }
    public bool Accepted { get; set; }
    public string? Reason { get; set; }
    public int? WinningAttempt { get; set; }
    public string? Output { get; set; }
    public string? OutputHash { get; set; }
    public HashSet<string>? Excluded { get; set; }
    public List<int>? RecordedAttempts { get; set; }
    public DateTimeOffset CreatedAt { get; init; }
    public DateTimeOffset UpdatedAt { get; set; }
    public bool Persisted { get; set; }

    /// <summary>The connected node and device the current lease's slot is charged to; null while that node is away.</summary>
    public SchedulerNode? PlacedOn { get; set; }

    public DeviceState? PlacedDevice { get; set; }

    public override int Cost => 1;

    public override string ShapeKey => Job.DemandKey;

    public string LeaseId => LeaseIds.Format(Id, Attempt);

    public bool HoldsLease => State is TaskState.Leased or TaskState.Running;
}

internal enum GangPhase
{
    Queued,
    Reserving,
    Offered,
    Running,
    Finished,
}

internal sealed class GangEntry : QueueItem
{
    public GangPhase Phase { get; set; }
    public int Retries { get; set; }
    public DateTimeOffset Deadline { get; set; }
    public List<(SchedulerNode Node, DeviceState Device)> Held { get; } = [];
    public HashSet<string> Excluded { get; } = new(StringComparer.Ordinal);

    public int Remaining
    {
        get
        {
            var count = 0;
            foreach (var task in Job.Tasks)
            {
                if (!task.State.IsTerminal())
                {
                    count++;
                }
            }

            return count;
        }
    }

    public override int Cost => Remaining;

    public override string ShapeKey => $"{Job.DemandKey}|gang:{Remaining}";
}

/// <summary>Job ids are "job-N" and task ids "job-N.I".</summary>
public static class TaskIds
{
    /// <summary>Parses "job-N.I"; false for anything else.</summary>
    public static bool TryParse(string? taskId, out long jobNumber, out int index)
    {
        jobNumber = -1;
        index = -1;
        if (taskId is null || !taskId.StartsWith("job-", StringComparison.Ordinal))
        {
            return false;
        }

        var dot = taskId.IndexOf('.', StringComparison.Ordinal);
        if (dot > 4
            && long.TryParse(taskId.AsSpan(4, dot - 4), System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var job)
            && int.TryParse(taskId.AsSpan(dot + 1), System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var i))
        {
            (jobNumber, index) = (job, i);
            return true;
        }

        return false;
    }

    /// <summary>The N of "job-N", or null.</summary>
    public static long? JobNumber(string? jobId) =>
        jobId is not null && jobId.StartsWith("job-", StringComparison.Ordinal)
        && long.TryParse(jobId.AsSpan(4), System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var number)
            ? number
            : null;
}

/// <summary>Lease ids are "{taskId}#{attempt}".</summary>
public static class LeaseIds
{
    public static string Format(string taskId, int attempt) => $"{taskId}#{attempt}";

    public static bool TryParse(string? leaseId, out string taskId, out int attempt)
    {
        taskId = "";
        attempt = 0;
        if (string.IsNullOrEmpty(leaseId) || leaseId.Length > 200)
        {
            return false;
        }

        var hash = leaseId.LastIndexOf('#');
        if (hash <= 0 || !int.TryParse(leaseId.AsSpan(hash + 1), System.Globalization.NumberStyles.None, null, out attempt) || attempt < 1)
        {
            return false;
        }

        taskId = leaseId[..hash];
        return true;
    }
}
