namespace Emc.Core.Scheduling;

/// <summary>Scheduler settings. The defaults are what the network runs with; <see cref="Validate"/> runs at start.</summary>
public sealed class SchedulerOptions
{
    /// <summary>Reissues of a task before it fails (Ray's default max_retries is 3 too). Default 3.</summary>
    public int DefaultMaxRetries { get; set; } = 3;

    /// <summary>
    /// A lease lasts this long past the node's last heartbeat. Default 30 s: six heartbeats, so one
    /// lost heartbeat never costs a lease, and a dead node's work is reissued within half a minute.
    /// </summary>
    public TimeSpan DefaultLeaseDuration { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>How long a gang may hold partial reservations or wait for acceptance before it lets go. Default 60 s.</summary>
    public TimeSpan DefaultGangTimeout { get; set; } = TimeSpan.FromSeconds(60);

    /// <summary>Tasks that may share one device when the node does not say. Default 1: a task has its device to itself.</summary>
    public int TasksPerDevice { get; set; } = 1;

    /// <summary>
    /// Shared tasks (<see cref="ResourceDemand.Shared"/>: serving replicas) one device holds besides its
    /// task slots; their memory demands bound them too. Default 16.
    /// </summary>
    public int SharedTasksPerDevice { get; set; } = 16;

    /// <summary>
    /// How many fitting nodes a placement scores before it picks the best (nodes that cache the task's
    /// data are always scored on top). Scoring a bounded sample keeps placement O(1) in the size of the
    /// network, as Nomad and Sparrow do. Default 16.
    /// </summary>
    public int MaxScoredCandidates { get; set; } = 16;

    /// <summary>
    /// Shares of the priority classes when all have work: high 16, normal 4, low 1. A low job on a busy
    /// network still gets 1 placement in 21.
    /// </summary>
    public Dictionary<PriorityClass, double> ClassWeights { get; set; } = new()
    {
        [PriorityClass.High] = 16,
        [PriorityClass.Normal] = 4,
        [PriorityClass.Low] = 1,
    };

    /// <summary>Share weight of an account nobody has set a weight for. Default 1.</summary>
    public double DefaultAccountWeight { get; set; } = 1;

    /// <summary>Reputation of a node the scheduler has not seen work from. Default 0.5.</summary>
    public double InitialReputation { get; set; } = 0.5;

    /// <summary>How far one outcome moves a node's reputation towards 1 (completed) or 0 (lost, failed). Default 0.05.</summary>
    public double ReputationStep { get; set; } = 0.05;

    /// <summary>How long finished jobs stay in memory for late results and queries; older ones are read from the database. Default 1 h.</summary>
    public TimeSpan RetainFinishedJobs { get; set; } = TimeSpan.FromHours(1);

    /// <summary>The most placements one scheduling pass makes before it yields to other events. Default 4096.</summary>
    public int MaxPlacementsPerPass { get; set; } = 4096;

    /// <summary>Problems with the settings; empty when they are usable.</summary>
    public IReadOnlyList<string> Validate()
    {
        var errors = new List<string>();
        if (DefaultMaxRetries is < 0 or > JobSpecValidator.MaxRetriesLimit)
        {
            errors.Add($"DefaultMaxRetries must be between 0 and {JobSpecValidator.MaxRetriesLimit}");
        }

        if (DefaultLeaseDuration < TimeSpan.FromSeconds(1))
        {
            errors.Add("DefaultLeaseDuration must be at least 1 second");
        }

        if (DefaultGangTimeout < TimeSpan.FromSeconds(1))
        {
            errors.Add("DefaultGangTimeout must be at least 1 second");
        }

        if (TasksPerDevice is < 1 or > 1024)
        {
            errors.Add("TasksPerDevice must be between 1 and 1024");
        }

        if (SharedTasksPerDevice is < 0 or > 1024)
        {
            errors.Add("SharedTasksPerDevice must be between 0 and 1024");
        }

        if (MaxScoredCandidates < 1)
        {
            errors.Add("MaxScoredCandidates must be at least 1");
        }

        foreach (var priority in Enum.GetValues<PriorityClass>())
        {
            if (!ClassWeights.TryGetValue(priority, out var weight) || !(weight > 0) || !double.IsFinite(weight))
            {
                errors.Add($"ClassWeights[{priority}] must be a positive number");
            }
        }

        if (!(DefaultAccountWeight > 0) || !double.IsFinite(DefaultAccountWeight))
        {
            errors.Add("DefaultAccountWeight must be a positive number");
        }

        if (InitialReputation is < 0 or > 1 || ReputationStep is <= 0 or > 1)
        {
            errors.Add("InitialReputation must be in [0, 1] and ReputationStep in (0, 1]");
        }

        if (MaxPlacementsPerPass < 1)
        {
            errors.Add("MaxPlacementsPerPass must be at least 1");
        }

        return errors;
    }
}
