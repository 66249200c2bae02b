namespace Emc.Core.Training;

/// <summary>Where a training job is.</summary>
public enum TrainingJobState
{
    /// <summary>Waiting for enough fitting nodes to start a round.</summary>
    Waiting,

    Running,

    /// <summary>Trained, evaluated and registered.</summary>
    Completed,

    Failed,

    Cancelled,
}

/// <summary>What one round achieved, as the API and `emc train watch` show it.</summary>
public sealed record RoundSummary
{
    public long Round { get; init; }

    /// <summary>Members that took part, accepted and rejected.</summary>
    public int Nodes { get; init; }

    public int Accepted { get; init; }

    public long Samples { get; init; }

    /// <summary>Mean inner training loss (sample-weighted over accepted members).</summary>
    public double? TrainLoss { get; init; }

    /// <summary>Held-out metrics of the weights this round started from (W(r−1)).</summary>
    public double? EvalLoss { get; init; }

    public double? EvalAccuracy { get; init; }

    public double? EvalPerplexity { get; init; }

    public long EvalExamples { get; init; }

    public double Seconds { get; init; }

    public double SamplesPerSecond { get; init; }

    /// <summary>Bytes of pseudo-gradients received this round.</summary>
    public long BytesReceived { get; init; }

    /// <summary>Why members were left out, by node id.</summary>
    public IReadOnlyDictionary<string, string> LeftOut { get; init; } = new Dictionary<string, string>();

    /// <summary>The samples of each member whose update went into the aggregate: what the round pays for.</summary>
    public IReadOnlyDictionary<string, long> AcceptedSamples { get; init; } = new Dictionary<string, long>();

    /// <summary>The benchmark class each accepted member was priced at (PriceTable.BenchmarkClass).</summary>
    public IReadOnlyDictionary<string, string> AcceptedClasses { get; init; } = new Dictionary<string, string>();

    /// <summary>The members whose updates went into the round's aggregate.</summary>
    public IReadOnlyList<string> Aggregated { get; init; } = [];

    public DateTimeOffset At { get; init; }
}

/// <summary>What one node contributed to a job.</summary>
public sealed record NodeContribution
{
    public int Rounds { get; set; }

    public long Samples { get; set; }

    public int Accepted { get; set; }

    public int Rejected { get; set; }

    public int Dropped { get; set; }

    public double Seconds { get; set; }

    public long BytesSent { get; set; }

    /// <summary>Training speed measured in its last rounds, examples per second.</summary>
    public double SamplesPerSecond { get; set; }

    /// <summary>How long its last rounds took, seconds (the adaptive deadline reads these).</summary>
    public List<double> RecentSeconds { get; set; } = [];

    /// <summary>Rounds whose work was verified (accepted unchecked, or replayed and agreed): what it is paid for.</summary>
    public int Verified { get; set; }

    /// <summary>Proven faults. A round proven faulty is voided: its samples, seconds and bytes are taken out of the totals above.</summary>
    public int Faults { get; set; }
}

/// <summary>A job's running totals, checkpointed with every round.</summary>
public sealed record TrainingProgress
{
    public Dictionary<string, NodeContribution> Nodes { get; init; } = [];

    public long Samples { get; set; }

    public long BytesReceived { get; set; }

    /// <summary>Rounds in a row that produced no accepted update.</summary>
    public int EmptyRounds { get; set; }

    /// <summary>The final evaluation, once done.</summary>
    public RoundSummary? Final { get; set; }

    /// <summary>What the verification of the job's work must remember across a restart.</summary>
    public TrainingVerificationState Verification { get; init; } = new();
}

/// <summary>A job's verification state, checkpointed with its progress (docs/verification.md, "Training").</summary>
public sealed record TrainingVerificationState
{
    /// <summary>Nodes proven faulty in this job, with the reason: they are planned into none of its rounds again.</summary>
    public Dictionary<string, string> Banned { get; init; } = [];

    /// <summary>Nodes whose hardware challenge in this job passed, with the round count when it did.</summary>
    public Dictionary<string, long> Challenged { get; init; } = [];

    /// <summary>sha256 of the network's last outer step (previous global weights − current ones, EMCW), for copy detection.</summary>
    public string? LastOuterStep { get; set; }

    /// <summary>The proven faults, in the order they were proven.</summary>
    public List<ProvenFault> Faults { get; init; } = [];
}

/// <summary>A proven fault as the job remembers it.</summary>
/// <param name="Round">The round of the faulty work.</param>
/// <param name="Node">The node.</param>
/// <param name="Kind">The kind of fault (<c>Emc.Core.Verification.TrainingFaultKind</c>, in kebab case).</param>
/// <param name="Evidence">How it was shown.</param>
/// <param name="At">When.</param>
public sealed record ProvenFault(long Round, string Node, string Kind, string Evidence, DateTimeOffset At);

/// <summary>A training job as the API shows it.</summary>
public sealed record TrainingJobView
{
    public required string Id { get; init; }

    public string Name { get; init; } = "";

    public required string Account { get; init; }

    public TrainingJobState State { get; init; }

    public string? Reason { get; init; }

    public required TrainingJobSpec Spec { get; init; }

    /// <summary>Rounds completed.</summary>
    public long Round { get; init; }

    /// <summary>The round count the job will run, when known (rounds, or estimated from samples).</summary>
    public long? PlannedRounds { get; init; }

    public long Samples { get; init; }

    public long? TargetSamples { get; init; }

    /// <summary>The scheduler job of the round in flight.</summary>
    public string? RoundJob { get; init; }

    public RoundSummary? Last { get; init; }

    public RoundSummary? Final { get; init; }

    public IReadOnlyDictionary<string, NodeContribution> Nodes { get; init; } = new Dictionary<string, NodeContribution>();

    public string? Model { get; init; }

    public DateTimeOffset CreatedAt { get; init; }

    public DateTimeOffset UpdatedAt { get; init; }

    public DateTimeOffset? FinishedAt { get; init; }
}

/// <summary>What the registry knows of a model version: enough to rebuild and load it anywhere.</summary>
public sealed record ModelDescriptor
{
    public required string Name { get; init; }

    /// <summary>The account the model's name belongs to (every version has the same owner).</summary>
    public string? Owner { get; init; }

    public int Version { get; init; }

    /// <summary>"emc-zoo" (a zoo model's weights vector), "torchscript" or "onnx".</summary>
    public required string Format { get; init; }

    public required ModelSpec Model { get; init; }

    /// <summary>The shape of one input example (without the batch), its element type and the number of classes.</summary>
    public required int[] SampleShape { get; init; }

    public Data.ElementType ElementType { get; init; }

    public int Classes { get; init; }

    public bool IsText { get; init; }

    /// <summary>sha256 of the weights vector blob (EMCW); empty for a pushed file, whose weights are inside it.</summary>
    public required string Weights { get; init; }

    /// <summary>sha256 of the model file for a pushed model ("onnx", or "torchscript" pushed by a user); null for a model trained by the network.</summary>
    public string? File { get; init; }

    /// <summary>The model's inputs as the Open Inference Protocol describes them (-1 for a variable dimension, the batch first); null before they are known.</summary>
    public IReadOnlyList<Inference.TensorMetadata>? Inputs { get; init; }

    /// <summary>The model's outputs, as <see cref="Inputs"/>.</summary>
    public IReadOnlyList<Inference.TensorMetadata>? Outputs { get; init; }

    public long VectorLength { get; init; }

    public long Bytes { get; init; }

    public string? SourceJob { get; init; }

    public RoundSummary? Metrics { get; init; }

    public DateTimeOffset CreatedAt { get; init; }
}

/// <summary>A dataset as the API shows it: its name, manifest hash and the manifest.</summary>
public sealed record DatasetView(string Name, string ManifestHash, long Bytes, DateTimeOffset CreatedAt, Data.DatasetManifest Manifest)
{
    /// <summary>The account that uploaded it.</summary>
    public string Owner { get; init; } = "";
}
