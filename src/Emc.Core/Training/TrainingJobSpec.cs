using Emc.Core.Hardware;

namespace Emc.Core.Training;

/// <summary>How nodes' work is combined each round.</summary>
public enum TrainingAlgorithm
{
    /// <summary>H inner optimizer steps per node, then pseudo-gradients aggregated with an outer Nesterov step (DESIGN §3).</summary>
    Diloco,

    /// <summary>One inner SGD step per round and plain gradient averaging: synchronous data parallel, the maths of DDP.</summary>
    Sync,
}

/// <summary>
/// A training job as a user submits it (job file or flags). Unset values take the defaults of the
/// algorithm, see <see cref="TrainingDefaults.Resolve"/>.
/// </summary>
public sealed record TrainingJobSpec
{
    /// <summary>A name for people; the trained model is registered under it (or under <see cref="Output"/>).</summary>
    public string Name { get; init; } = "";

    /// <summary>
    /// The account that owns the job and shares the network by its weight. "default" (or empty) is the
    /// account of the key that submits it; only the operator may name another.
    /// </summary>
    public string Account { get; init; } = "default";

    public ModelSpec Model { get; init; } = new();

    /// <summary>The name of an uploaded dataset.</summary>
    public string Dataset { get; init; } = "";

    public TrainingAlgorithm Algorithm { get; init; } = TrainingAlgorithm.Diloco;

    public NodeCount Nodes { get; init; } = new();

    /// <summary>Inner steps per round (H) for the median node; faster nodes run more, slower fewer. Sync mode uses 1.</summary>
    public int? InnerSteps { get; init; }

    public InnerOptimizerSpec Inner { get; init; } = new();

    public OuterOptimizerSpec Outer { get; init; } = new();

    /// <summary>Examples per inner step on every node (the same effective batch everywhere).</summary>
    public int BatchSize { get; init; } = 64;

    /// <summary>Largest micro-batch a node runs at once (gradient accumulation); 0 = the whole batch.</summary>
    public int MicroBatch { get; init; }

    /// <summary>Number of rounds; with <see cref="TargetSamples"/> or <see cref="Epochs"/> the job stops at whichever comes first.</summary>
    public int? Rounds { get; init; }

    /// <summary>Training examples to process in total, across all nodes.</summary>
    public long? TargetSamples { get; init; }

    /// <summary>Passes over the training split (another way to give <see cref="TargetSamples"/>).</summary>
    public double? Epochs { get; init; }

    public AggregatorKind Aggregator { get; init; } = AggregatorKind.Mean;

    /// <summary>Fraction trimmed at each end by the trimmed mean. Default 0.2.</summary>
    public double TrimFraction { get; init; } = 0.2;

    public UpdatePrecision Precision { get; init; } = UpdatePrecision.Int8;

    public EvaluationSpec Evaluation { get; init; } = new();

    /// <summary>Seed of the initial weights, the data order and dropout.</summary>
    public long Seed { get; init; } = 1;

    /// <summary>Visit training examples in a fresh random order each epoch (default) or in file order.</summary>
    public bool Shuffle { get; init; } = true;

    /// <summary>A round closes once this fraction of its planned samples has arrived (1 = wait for every node or the deadline).</summary>
    public double CloseFraction { get; init; } = 1.0;

    /// <summary>The deadline of the first round, before node times are known, in seconds. Default 600.</summary>
    public double InitialDeadlineSeconds { get; init; } = 600;

    /// <summary>The device kind nodes must train on; null takes any.</summary>
    public DeviceKind? Device { get; init; }

    /// <summary>Free device memory a node needs, bytes. 0 = no requirement.</summary>
    public long DeviceMemoryBytes { get; init; }

    /// <summary>The registry name of the trained model; default <see cref="Name"/>, or the job id.</summary>
    public string? Output { get; init; }

    /// <summary>A key the client chooses so that retrying a submission does not start a second job.</summary>
    public string? IdempotencyKey { get; init; }

    /// <summary>
    /// Ledger units the job may spend (1 EMC = 1,000,000), reserved in escrow when it is submitted: nodes
    /// are paid from it for verified rounds, the job ends (with a final evaluation) when it cannot pay for
    /// another round, and what is left goes back when it ends. A user's job needs one; the operator's
    /// may leave it out (unpaid work of the network's own).
    /// </summary>
    public long? Budget { get; init; }
}

/// <summary>How many nodes a round uses.</summary>
public sealed record NodeCount
{
    /// <summary>Fewest nodes a round starts with. Default 1.</summary>
    public int Min { get; init; } = 1;

    /// <summary>Most nodes a round uses. Default 16.</summary>
    public int Max { get; init; } = 16;
}

/// <summary>The optimizer each node runs for its inner steps.</summary>
public sealed record InnerOptimizerSpec
{
    /// <summary>"adamw" (DiLoCo's default), "adam" or "sgd" (sync mode's default).</summary>
    public string? Optimizer { get; init; }

    public double? LearningRate { get; init; }

    public double? WeightDecay { get; init; }

    public double Beta1 { get; init; } = 0.9;

    public double Beta2 { get; init; } = 0.999;

    /// <summary>Momentum of inner SGD. Default 0.</summary>
    public double Momentum { get; init; }

    /// <summary>"constant" (default), "cosine" or "warmup-cosine", over the job's total inner steps.</summary>
    public string Schedule { get; init; } = "constant";

    public int WarmupSteps { get; init; }

    /// <summary>The learning rate a cosine schedule ends at, as a fraction of the peak. Default 0.1.</summary>
    public double MinLrFraction { get; init; } = 0.1;

    /// <summary>Gradient norm clip; 0 = off.</summary>
    public double GradClip { get; init; }
}

/// <summary>The optimizer the coordinator applies to the aggregated pseudo-gradient.</summary>
public sealed record OuterOptimizerSpec
{
    /// <summary>Outer learning rate: DiLoCo's published 0.7; 1 in sync mode.</summary>
    public double? LearningRate { get; init; }

    /// <summary>Outer momentum: 0.9 for DiLoCo; 0 in sync mode.</summary>
    public double? Momentum { get; init; }

    /// <summary>Nesterov momentum (default true when momentum is used).</summary>
    public bool? Nesterov { get; init; }
}

/// <summary>What the model is measured on each round.</summary>
public sealed record EvaluationSpec
{
    /// <summary>A split of the dataset ("test", "validation"); default "test" when the dataset has one.</summary>
    public string? Split { get; init; }

    /// <summary>Without such a split: the fraction of the training split held out (default 0.1).</summary>
    public double? HoldoutFraction { get; init; }

    /// <summary>Evaluate every this many rounds (and always after the last). Default 1.</summary>
    public int Every { get; init; } = 1;

    /// <summary>Evaluate on at most this many examples each round (the final evaluation uses all); 0 = all.</summary>
    public int MaxExamples { get; init; }
}
