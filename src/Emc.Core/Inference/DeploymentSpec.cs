namespace Emc.Core.Inference;

/// <summary>
/// A deployment: one registered model version served by MIN..MAX replicas on nodes. What
/// <c>emc model deploy NAME[:VERSION] --replicas MIN..MAX [--max-batch B] [--max-delay-us D] [--device cpu|cuda]</c> submits.
/// </summary>
public sealed record DeploymentSpec
{
    /// <summary>The registered model's name.</summary>
    public required string Model { get; init; }

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

    /// <summary>The in-flight cap per replica in force: <see cref="MaxOngoingPerReplica"/>, or max(8, 2 × <see cref="MaxBatch"/>).</summary>
    public int EffectiveMaxOngoing => MaxOngoingPerReplica ?? DefaultMaxOngoing(MaxBatch);

    /// <summary>The default in-flight cap for a replica batching up to <paramref name="maxBatch"/> rows: max(8, 2 × batch), so one batch fills while another runs.</summary>
    public static int DefaultMaxOngoing(int maxBatch) => Math.Max(8, 2 * Math.Clamp(maxBatch, 1, 5_000));

    /// <summary>"cpu" or "cuda": the device kind the replicas need.</summary>
    public string Device { get; init; } = "cpu";
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
}

/// <summary>
/// One replica: where it runs, how loaded it is and how many requests it answered. State "ready"
/// (serving), "starting" (its node loads the model) or "queued" (no node has taken it; see <see cref="Reason"/>).
/// </summary>
public sealed record ReplicaView(string Id, string NodeId, string State, int Outstanding, long Served)
{
    /// <summary>Why a replica that is not ready waits.</summary>
    public string? Reason { get; init; }
}
