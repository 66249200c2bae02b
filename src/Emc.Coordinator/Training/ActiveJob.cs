using Emc.Coordinator.Persistence;
using Emc.Core.Data;
using Emc.Core.Training;

namespace Emc.Coordinator.Training;

/// <summary>A training job the service is driving: its checkpoint row, its data layout and the round in flight.</summary>
internal sealed class ActiveJob
{
    public required TrainingJobRow Row { get; init; }

    public required TrainingJobSpec Spec { get; init; }

    public required DatasetManifest Manifest { get; init; }

    public required string ManifestHash { get; init; }

    public required TrainingProgress Progress { get; init; }

    /// <summary>Examples (windows for text) the job trains on: the first this many of the train split.</summary>
    public long TrainExamples { get; init; }

    public required string EvalSplit { get; init; }

    /// <summary>First evaluation example (window) within <see cref="EvalSplit"/>.</summary>
    public long EvalFirst { get; init; }

    public long EvalCount { get; init; }

    public bool IsText { get; init; }

    /// <summary>Master weights and outer optimizer, loaded from the checkpoint when first needed.</summary>
    public float[]? Master { get; set; }

    public OuterOptimizer? Outer { get; set; }

    public RoundState? Round { get; set; }

    /// <summary>Training FLOPs per sample of the job's model, for pricing its rounds; computed at the first payment.</summary>
    public long? FlopsPerSample { get; set; }

    /// <summary>The benchmark class of each node planned into the job's rounds, for pricing (PriceTable.BenchmarkClass).</summary>
    public Dictionary<string, string> NodeClasses { get; } = new(StringComparer.Ordinal);

    /// <summary>What the last paid round cost: a round is planned only while the escrow still holds that much.</summary>
    public long LastRoundCharge { get; set; }

    public DateTimeOffset NextPlanAt { get; set; }

    /// <summary>The total the job trains for, in examples.</summary>
    public long? TargetSamples =>
        Spec.TargetSamples is { } target
            ? Spec.Epochs is { } epochs ? Math.Min(target, (long)Math.Ceiling(epochs * TrainExamples)) : target
            : Spec.Epochs is { } e ? (long)Math.Ceiling(e * TrainExamples) : null;

    public bool TrainingDone =>
        (Spec.Rounds is { } rounds && Row.Round >= rounds) || (TargetSamples is { } target && Progress.Samples >= target);
}

/// <summary>One round in flight.</summary>
internal sealed class RoundState
{
    public long Number { get; init; }

    /// <summary>The evaluation after the last training round: members only evaluate.</summary>
    public bool FinalEvaluation { get; init; }

    public required string SchedulerJobId { get; init; }

    public required RoundWork Work { get; init; }

    public DateTimeOffset SubmittedAt { get; init; }

    public DateTimeOffset? StartedAt { get; set; }

    public DateTimeOffset? Deadline { get; set; }

    public long PlannedSamples { get; init; }

    /// <summary>The stream position after this round's planned samples.</summary>
    public long NextStreamPosition { get; init; }

    public Dictionary<string, MemberOutcome> Outcomes { get; } = new(StringComparer.OrdinalIgnoreCase);

    public long ReceivedSamples => Outcomes.Values.Sum(o => o.Manifest?.Samples ?? 0);
}

/// <summary>How one member's part of a round ended.</summary>
internal sealed class MemberOutcome
{
    public RoundManifest? Manifest { get; init; }

    public float[]? Delta { get; init; }

    /// <summary>Why the member's work is not used (dropped out, failed a check); null when it is usable.</summary>
    public string? Rejected { get; set; }

    public double Seconds { get; init; }
}
