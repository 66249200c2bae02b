namespace Emc.Core.Training;

/// <summary>
/// The input of a "train" task: one round of one job. Every member of the round gets the same
/// document and finds its own share under <see cref="Members"/> by its node id, because the
/// coordinator sized each share to that node's measured speed.
/// </summary>
public sealed record RoundWork
{
    /// <summary>The task kind nodes run rounds under.</summary>
    public const string TaskKind = "train";

    public required string JobId { get; init; }

    /// <summary>1 for the first round. A round with no training steps only evaluates (the final evaluation).</summary>
    public long Round { get; init; }

    public TrainingAlgorithm Algorithm { get; init; }

    public required ModelSpec Model { get; init; }

    /// <summary>sha256 of the dataset manifest blob (content-addressed, so a re-uploaded name cannot change it).</summary>
    public required string DatasetManifest { get; init; }

    /// <summary>The split trained on.</summary>
    public string TrainSplit { get; init; } = "train";

    /// <summary>Training examples: the first this many of <see cref="TrainSplit"/> (the rest may be held out). Windows for text.</summary>
    public long TrainExamples { get; init; }

    /// <summary>The split evaluated on, or null when this round does not evaluate.</summary>
    public string? EvalSplit { get; init; }

    /// <summary>Index of the first evaluation example within <see cref="EvalSplit"/> (non-zero for a held-out tail).</summary>
    public long EvalFirst { get; init; }

    /// <summary>sha256 of the canonical weights W(r−1); null in the first round, where every member builds them from <see cref="Seed"/>.</summary>
    public string? Weights { get; init; }

    /// <summary>Length of the weights vector; 0 when not yet known (first round).</summary>
    public long VectorLength { get; init; }

    public long Seed { get; init; }

    public bool Shuffle { get; init; } = true;

    public int BatchSize { get; init; }

    public int MicroBatch { get; init; }

    /// <summary>The resolved inner optimizer.</summary>
    public required InnerOptimizerSpec Inner { get; init; }

    /// <summary>Total inner steps of the job, for the learning-rate schedule.</summary>
    public long TotalSteps { get; init; }

    public UpdatePrecision Precision { get; init; } = UpdatePrecision.Int8;

    /// <summary>Seconds a member may train before it stops early and reports what it has.</summary>
    public double TimeBudgetSeconds { get; init; }

    /// <summary>Each member's share, by node id.</summary>
    public required IReadOnlyDictionary<string, MemberWork> Members { get; init; }
}

/// <summary>One member's share of a round.</summary>
public sealed record MemberWork
{
    /// <summary>Inner steps (0: evaluate only).</summary>
    public int Steps { get; init; }

    /// <summary>Position in the job's example stream of the member's first training example (see <see cref="SampleStream"/>).</summary>
    public long StreamStart { get; init; }

    /// <summary>The job's inner-step count before this member's first step, for the schedule.</summary>
    public long StepOffset { get; init; }

    /// <summary>First evaluation example, relative to <see cref="RoundWork.EvalFirst"/>.</summary>
    public long EvalStart { get; init; }

    /// <summary>Evaluation examples (windows for text); 0 = none.</summary>
    public int EvalCount { get; init; }

    /// <summary>True when the member uploads the initial weights it built (first round).</summary>
    public bool UploadInitialWeights { get; init; }
}

/// <summary>What a member did in a round: the part of its result that it signs.</summary>
public sealed record RoundManifest
{
    public required string JobId { get; init; }

    public long Round { get; init; }

    /// <summary>The node that did the work (its address).</summary>
    public required string Node { get; init; }

    /// <summary>sha256 of the weights the member started from (its own build in the first round).</summary>
    public required string BaseWeights { get; init; }

    /// <summary>Length of the weights vector.</summary>
    public long VectorLength { get; init; }

    /// <summary>
    /// sha256 of the member's inner optimizer state at the start of its steps (<see cref="InnerStateCodec"/>),
    /// a commitment: a replay of the round starts from this state, which the member must upload when asked.
    /// Null for a fresh optimizer.
    /// </summary>
    public string? InnerState { get; init; }

    /// <summary>sha256 of the uploaded pseudo-gradient blob; null when the member only evaluated.</summary>
    public string? Update { get; init; }

    public long UpdateBytes { get; init; }

    public UpdatePrecision Precision { get; init; }

    public long StreamStart { get; init; }

    public int Steps { get; init; }

    public long Samples { get; init; }

    /// <summary>Mean training loss of each inner step, before its update.</summary>
    public IReadOnlyList<float> Losses { get; init; } = [];

    public double TrainSeconds { get; init; }

    public EvalStats? Eval { get; init; }
}

/// <summary>Evaluation sums over the examples a member evaluated.</summary>
/// <param name="LossSum">Sum of per-example (per-token for text) losses.</param>
/// <param name="Correct">Correct predictions.</param>
/// <param name="Count">Examples (tokens for text).</param>
public sealed record EvalStats(double LossSum, long Correct, long Count);

/// <summary>The output of a "train" task: the manifest text exactly as signed, and the signature.</summary>
/// <param name="Manifest">The <see cref="RoundManifest"/> as JSON.</param>
/// <param name="Signature">The node's EIP-191 signature of <paramref name="Manifest"/>'s UTF-8 bytes, 0x-hex.</param>
public sealed record RoundReport(string Manifest, string Signature);
