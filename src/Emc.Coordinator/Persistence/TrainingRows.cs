using Emc.Coordinator.Accounts;

namespace Emc.Coordinator.Persistence;

/// <summary>An uploaded dataset: its name and the content-addressed manifest that lists its shards.</summary>
public sealed class DatasetRow
{
    public required string Name { get; set; }

    /// <summary>sha256 of the manifest blob (nodes fetch the manifest by it).</summary>
    public required string ManifestHash { get; set; }

    /// <summary>The <see cref="Core.Data.DatasetManifest"/> as JSON.</summary>
    public required string ManifestJson { get; set; }

    public required string Format { get; set; }
    public long Bytes { get; set; }
    public long CreatedAtUnixMs { get; set; }

    /// <summary>The account that uploaded it (datasets from before accounts belong to the operator).</summary>
    public string Owner { get; set; } = AccountIds.Operator;
}

/// <summary>A training job and its last checkpoint.</summary>
public sealed class TrainingJobRow
{
    public required string Id { get; set; }
    public long Number { get; set; }
    public string Name { get; set; } = "";
    public required string Account { get; set; }

    /// <summary>The resolved <see cref="Core.Training.TrainingJobSpec"/> as JSON.</summary>
    public required string SpecJson { get; set; }

    public required string State { get; set; }
    public string? Reason { get; set; }

    /// <summary>Rounds completed and checkpointed.</summary>
    public long Round { get; set; }

    /// <summary>The checkpoint: master weights, outer momentum (null before the first round).</summary>
    public string? WeightsHash { get; set; }

    public string? MomentumHash { get; set; }

    public long VectorLength { get; set; }

    /// <summary>Next position in the job's example stream.</summary>
    public long StreamPosition { get; set; }

    /// <summary>Inner steps taken so far (by the median node), for the learning-rate schedule.</summary>
    public long StepCount { get; set; }

    /// <summary>Per-node contributions and speeds (<see cref="Core.Training.TrainingProgress"/> as JSON).</summary>
    public string ProgressJson { get; set; } = "{}";

    /// <summary>The scheduler job of the round in flight, if any.</summary>
    public string? RoundJobId { get; set; }

    public string? IdempotencyKey { get; set; }

    /// <summary>The registered model, once the job completed.</summary>
    public string? ModelName { get; set; }

    public int? ModelVersion { get; set; }

    public long CreatedAtUnixMs { get; set; }
    public long UpdatedAtUnixMs { get; set; }
    public long? FinishedAtUnixMs { get; set; }
}

/// <summary>What one round of one job achieved.</summary>
public sealed class TrainingRoundRow
{
    public required string JobId { get; set; }
    public long Round { get; set; }

    /// <summary>The <see cref="Core.Training.RoundSummary"/> as JSON.</summary>
    public required string SummaryJson { get; set; }

    public long CreatedAtUnixMs { get; set; }
}

/// <summary>One version of a model in the registry.</summary>
public sealed class ModelRow
{
    public required string Name { get; set; }
    public int Version { get; set; }

    /// <summary>"emc-zoo" (weights vector of a zoo model), "torchscript" or "onnx".</summary>
    public required string Format { get; set; }

    /// <summary>The <see cref="Core.Training.ModelDescriptor"/> as JSON: architecture, data shape, metrics.</summary>
    public required string DescriptorJson { get; set; }

    /// <summary>sha256 of the weights blob; empty for a pushed file, whose weights are inside it.</summary>
    public required string WeightsHash { get; set; }

    /// <summary>sha256 of the model file of a pushed model (ONNX or TorchScript); null for a model trained by the network.</summary>
    public string? FileHash { get; set; }

    /// <summary>sha256 of the cached ONNX export of a trained zoo model, once one was asked for.</summary>
    public string? OnnxExportHash { get; set; }

    public long Bytes { get; set; }
    public string? SourceJob { get; set; }
    public long CreatedAtUnixMs { get; set; }

    /// <summary>
    /// The account the model name belongs to: every version of a name has the same owner (models from
    /// before accounts belong to the operator).
    /// </summary>
    public string Owner { get; set; } = AccountIds.Operator;
}
