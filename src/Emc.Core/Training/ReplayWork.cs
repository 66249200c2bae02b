namespace Emc.Core.Training;

/// <summary>
/// The input of a "train-replay" task: recompute another member's share of a round — the same base
/// weights, committed inner optimizer state, examples, steps and settings — and upload the resulting
/// pseudo-gradient, so that the coordinator can compare it with the one the member handed in.
/// </summary>
public sealed record ReplayWork
{
    /// <summary>The task kind nodes run replays under.</summary>
    public const string TaskKind = "train-replay";

    public required string JobId { get; init; }

    public long Round { get; init; }

    /// <summary>The member whose work is replayed.</summary>
    public required string Node { get; init; }

    public TrainingAlgorithm Algorithm { get; init; }

    public required ModelSpec Model { get; init; }

    /// <summary>sha256 of the dataset manifest blob.</summary>
    public required string DatasetManifest { get; init; }

    public string TrainSplit { get; init; } = "train";

    public long TrainExamples { get; init; }

    /// <summary>sha256 of the weights the round started from.</summary>
    public required string Weights { get; init; }

    public long VectorLength { get; init; }

    /// <summary>sha256 of the member's committed inner optimizer state (<see cref="InnerStateCodec"/>); null for a fresh optimizer.</summary>
    public string? State { get; init; }

    public long Seed { get; init; }

    public bool Shuffle { get; init; } = true;

    public int BatchSize { get; init; }

    public int MicroBatch { get; init; }

    public required InnerOptimizerSpec Inner { get; init; }

    public long TotalSteps { get; init; }

    public UpdatePrecision Precision { get; init; } = UpdatePrecision.Int8;

    /// <summary>The member's first example in the job's stream.</summary>
    public long StreamStart { get; init; }

    /// <summary>The inner steps the member claimed.</summary>
    public int Steps { get; init; }

    /// <summary>The job's step count before the member's first step (schedule and dropout).</summary>
    public long StepOffset { get; init; }
}

/// <summary>The output of a "train-replay" task.</summary>
/// <param name="Update">sha256 of the uploaded replayed pseudo-gradient (<see cref="UpdateCodec"/>, the job's precision).</param>
/// <param name="Steps">The steps replayed.</param>
public sealed record ReplayReport(string Update, int Steps);

/// <summary>
/// The input of a "train-state" task: upload the inner optimizer state a member committed to in its
/// round manifest, so that its round can be replayed. Nodes keep the states of their last few rounds.
/// </summary>
public sealed record StateRequest
{
    /// <summary>The task kind nodes upload committed states under.</summary>
    public const string TaskKind = "train-state";

    public required string JobId { get; init; }

    public long Round { get; init; }

    /// <summary>sha256 of the committed state.</summary>
    public required string State { get; init; }
}

/// <summary>The output of a "train-state" task: the hash of the uploaded state.</summary>
/// <param name="State">sha256 of the state blob.</param>
public sealed record StateReport(string State);
