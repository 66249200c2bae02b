namespace Emc.Core.Scheduling;

/// <summary>A job as a user submits it: tasks that share an account, a priority and resource demands.</summary>
public sealed record JobSpec
{
    /// <summary>A name for people; need not be unique.</summary>
    public string Name { get; init; } = "";

    /// <summary>The account that owns the job and shares the network by its weight.</summary>
    public string Account { get; init; } = "";

    public PriorityClass Priority { get; init; } = PriorityClass.Normal;

    /// <summary>What each task needs.</summary>
    public ResourceDemand Demand { get; init; } = new();

    /// <summary>
    /// All tasks of a gang job start together on distinct nodes or not at all (a training round).
    /// </summary>
    public bool Gang { get; init; }

    /// <summary>
    /// For a gang: once it has started, a member whose lease ends without a result fails alone and
    /// the others run on (a training round leaves out nodes that drop and aggregates the rest).
    /// Without it the whole gang is revoked and runs again.
    /// </summary>
    public bool Elastic { get; init; }

    /// <summary>
    /// How many times a task is reissued after its lease expires, its node is lost or it fails
    /// retryably. Null takes <see cref="SchedulerOptions.DefaultMaxRetries"/>.
    /// </summary>
    public int? MaxRetries { get; init; }

    /// <summary>How long a lease lasts without a heartbeat from its node. Null takes the default.</summary>
    public TimeSpan? LeaseDuration { get; init; }

    /// <summary>How long a gang may hold partial reservations or wait for its nodes to accept. Null takes the default.</summary>
    public TimeSpan? GangTimeout { get; init; }

    /// <summary>
    /// A key the client chooses so that retrying a submission does not create a second job:
    /// a second submission with the same key returns the first job.
    /// </summary>
    public string? IdempotencyKey { get; init; }

    public IReadOnlyList<TaskSpec> Tasks { get; init; } = [];
}

/// <summary>One unit of work: what to run (a kind the node knows) and its input.</summary>
public sealed record TaskSpec
{
    /// <summary>The task kind, such as "benchmark"; the node must have an executor for it.</summary>
    public string Kind { get; init; } = "";

    /// <summary>Input for the executor (JSON or text, at most <see cref="JobSpecValidator.MaxInputChars"/>).</summary>
    public string Input { get; init; } = "";
}
