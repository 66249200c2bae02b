namespace Emc.Core.Inference;

/// <summary>
/// A deployment: one registered model version served by MIN..MAX replicas on nodes. What
/// <c>emc model deploy NAME[:VERSION] --replicas MIN..MAX [--max-batch B] [--max-delay-us D] [--device cpu|cuda]</c> submits.
/// With <see cref="Engine"/> it is an external engine instead: <c>emc model deploy NAME --engine</c>.
/// </summary>
public sealed record DeploymentSpec
{
    /// <summary>The registered model's name; for an engine deployment, the engine's name on the nodes.</summary>
    public required string Model { get; init; }

    /// <summary>
    /// Serves the external engine named <see cref="Model"/> that nodes expose (<c>emc node --engine NAME=URL</c>)
    /// instead of a registered model: replicas go only to nodes that have it, and OpenAI requests pass through
    /// to it. No registry entry is needed; <see cref="Version"/>, batching and <see cref="Device"/> do not apply.
    /// </summary>
    public bool Engine { get; init; }

    /// <summary>The model version; null deploys the latest version at deployment time.</summary>
    public int? Version { get; init; }

    public int MinReplicas { get; init; } = 1;

    public int MaxReplicas { get; init; } = 1;

    /// <summary>Rows per batch a replica's dynamic batcher forms (1 = no batching).</summary>
    public int MaxBatch { get; init; } = 1;

    /// <summary>How long a partial batch waits for more requests, in microseconds (Triton's max_queue_delay_microseconds; 0 by default).</summary>
    public long MaxDelayMicroseconds { get; init; }

    /// <summary>Requests a replica queues before it answers "overloaded".</summary>
    public int MaxQueue { get; init; } = 256;

    /// <summary>
    /// Requests the router keeps in flight on one replica; null takes <see cref="DefaultMaxOngoing"/>,
    /// enough to fill two of the replica's batches.
    /// </summary>
    public int? MaxOngoingPerReplica { get; init; }

    /// <summary>
    /// The in-flight cap per replica in force: <see cref="MaxOngoingPerReplica"/>, or max(8, 2 × <see cref="MaxBatch"/>),
    /// or <see cref="DefaultEngineMaxOngoing"/> for an external engine (which batches on its own).
    /// </summary>
    public int EffectiveMaxOngoing => MaxOngoingPerReplica ?? (Engine ? DefaultEngineMaxOngoing : DefaultMaxOngoing(MaxBatch));

    /// <summary>The default in-flight cap of an external engine's replica: 32, room for its own continuous batching.</summary>
    public const int DefaultEngineMaxOngoing = 32;

    /// <summary>The default in-flight cap for a replica batching up to <paramref name="maxBatch"/> rows: max(8, 2 × batch), so one batch fills while another runs.</summary>
    public static int DefaultMaxOngoing(int maxBatch) => Math.Max(8, 2 * Math.Clamp(maxBatch, 1, 5_000));

    /// <summary>"cpu" or "cuda": the device kind the replicas need.</summary>
    public string Device { get; init; } = "cpu";

    /// <summary>
    /// Ledger units (1 EMC = 1,000,000) reserved from the deploying account when it is deployed, to pay for its
    /// requests; a user's deployment needs one. Requests are refused once it is spent; what is left is refunded
    /// when it is undeployed. Null: an operator's deployment that nobody pays for.
    /// </summary>
    public long? Budget { get; init; }

    /// <summary>The escrow that holds the budget; set by the coordinator (a client must leave it out).</summary>
    public string? Escrow { get; init; }
}

/// <summary>A deployment as the API shows it.</summary>
public sealed record DeploymentView
{
    public required string Id { get; init; }

    public required DeploymentSpec Spec { get; init; }

    /// <summary>The version actually deployed.</summary>
    public int Version { get; init; }

    /// <summary>"pending", "ready" (at least one replica serving), "degraded" (fewer than MIN), "stopped".</summary>
    public required string State { get; init; }

    /// <summary>While fewer than MIN replicas serve: what the replicas wait for (the scheduler's reason, or a node loading the model).</summary>
    public string? Reason { get; init; }

    /// <summary>The replica count the autoscaler wants now, between MIN and MAX.</summary>
    public int DesiredReplicas { get; init; }

    public IReadOnlyList<ReplicaView> Replicas { get; init; } = [];

    public DateTimeOffset CreatedAt { get; init; }

    /// <summary>"model" (a registered model) or "engine" (an external engine on the nodes).</summary>
    public string Kind { get; init; } = "model";

    /// <summary>The account whose deployment it is; only it and the operator see it and call it.</summary>
    public string Owner { get; init; } = "";

    /// <summary>What its OpenAI-compatible traffic used since the coordinator started.</summary>
    public DeploymentUsage Usage { get; init; } = new();

    /// <summary>What sampled redundant execution checked of the deployment's answers since the coordinator started.</summary>
    public DeploymentAudit Audit { get; init; } = new();

    /// <summary>What is left of its budget (ledger units), less what answered requests cost and is not yet posted; null for a free deployment.</summary>
    public long? BudgetLeft { get; init; }
}

/// <summary>
/// One replica: where it runs and how loaded it is. <paramref name="State"/> is "ready" (serving),
/// "starting" (placed on a node that loads it) or "waiting" (for a node that fits); <paramref name="Reason"/>
/// says why a replica that is not ready waits (the scheduler's explanation, such as
/// "no node labelled engine:x=openai").
/// </summary>
public sealed record ReplicaView(string Id, string NodeId, string State, int Outstanding, long Served, string? Reason = null);

/// <summary>
/// Metered use of a deployment through the OpenAI-compatible API: requests answered (status 200),
/// and the prompt and completion tokens of their usage. For an external engine the tokens are those the
/// engine reported; <see cref="Unmetered"/> counts answers that came without usage.
/// </summary>
public sealed record DeploymentUsage
{
    public long Requests { get; init; }

    public long PromptTokens { get; init; }

    public long CompletionTokens { get; init; }

    /// <summary>Answered requests whose tokens are not known (no usage in the engine's answer).</summary>
    public long Unmetered { get; init; }
}

/// <summary>
/// The checks of one deployment's answers: each sampled answer is re-run on another node and compared,
/// with a referee when they differ. <see cref="Overhead"/> is the checks' executions over the paid answers.
/// </summary>
public sealed record DeploymentAudit
{
    /// <summary>Answers given: the paid work.</summary>
    public long Answers { get; init; }

    /// <summary>Answers drawn for a check.</summary>
    public long Sampled { get; init; }

    /// <summary>Checks that reached a verdict.</summary>
    public long Checked { get; init; }

    /// <summary>Checks whose second execution agreed.</summary>
    public long Agreed { get; init; }

    /// <summary>Answers proven wrong.</summary>
    public long Faults { get; init; }

    /// <summary>Disagreements no referee could settle.</summary>
    public long Disputes { get; init; }

    /// <summary>Checks with no other node to run on, or out of time.</summary>
    public long Skipped { get; init; }

    /// <summary>Checks dropped because the auditor's queue was full.</summary>
    public long Dropped { get; init; }

    /// <summary>Executions the checks cost: second runs and referees.</summary>
    public long Executions { get; init; }

    /// <summary>The audit overhead: <see cref="Executions"/> / <see cref="Answers"/> (0 before any answer).</summary>
    public double Overhead => Answers == 0 ? 0 : (double)Executions / Answers;
}
