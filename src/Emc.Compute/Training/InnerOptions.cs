namespace Emc.Compute.Training;

/// <summary>
/// How a node runs its inner steps: optimizer, learning-rate schedule, micro-batching and
/// clipping. The defaults are DiLoCo's inner AdamW with a constant rate.
/// </summary>
public sealed record InnerOptions
{
    public const string AdamW = "adamw";
    public const string Adam = "adam";
    public const string Sgd = "sgd";
    public const string Constant = "constant";
    public const string Cosine = "cosine";
    public const string WarmupCosine = "warmup-cosine";

    /// <summary>"adamw" (default; decoupled weight decay), "adam" (L2 weight decay) or "sgd".</summary>
    public string Optimizer { get; init; } = AdamW;

    /// <summary>Peak learning rate; default 1e-3.</summary>
    public double LearningRate { get; init; } = 1e-3;

    /// <summary>Weight decay; default 0.01 (decoupled for AdamW, L2 for Adam and SGD).</summary>
    public double WeightDecay { get; init; } = 0.01;

    /// <summary>Adam's first-moment decay; default 0.9.</summary>
    public double Beta1 { get; init; } = 0.9;

    /// <summary>Adam's second-moment decay; default 0.999.</summary>
    public double Beta2 { get; init; } = 0.999;

    /// <summary>SGD momentum; default 0 (plain SGD).</summary>
    public double Momentum { get; init; }

    /// <summary>"constant" (default), "cosine" (from the peak to <see cref="MinLrFraction"/> of it over <see cref="TotalSteps"/>) or "warmup-cosine" (linear warm-up over <see cref="WarmupSteps"/> first).</summary>
    public string Schedule { get; init; } = Constant;

    /// <summary>Linear warm-up steps of "warmup-cosine"; default 0.</summary>
    public int WarmupSteps { get; init; }

    /// <summary>Global steps of the whole job, over which the cosine decays; required (positive) by the cosine schedules.</summary>
    public long TotalSteps { get; init; }

    /// <summary>The floor of the cosine schedules as a fraction of the peak; default 0.1.</summary>
    public double MinLrFraction { get; init; } = 0.1;

    /// <summary>
    /// Examples per forward/backward pass; 0 (default) runs each batch whole. Otherwise each step
    /// accumulates gradients over micro-batches, each loss scaled by its share of the batch, so
    /// the update equals the whole-batch mean gradient's — the same effective batch on every node
    /// whatever its memory.
    /// </summary>
    public int MicroBatch { get; init; }

    /// <summary>Clips the global gradient L2 norm to this value; 0 (default) does not clip.</summary>
    public double GradClip { get; init; }

    /// <summary>The problems with these options; empty when they are valid.</summary>
    public IReadOnlyList<string> Validate()
    {
        var errors = new List<string>();
        if (Optimizer is not (AdamW or Adam or Sgd))
        {
            errors.Add("optimizer must be adamw, adam or sgd");
        }

        if (!(LearningRate > 0 && LearningRate < 100))
        {
            errors.Add("learning rate must be positive (and below 100)");
        }

        if (!(WeightDecay >= 0 && WeightDecay < 10))
        {
            errors.Add("weight decay must be at least 0 (and below 10)");
        }

        if (!(Beta1 >= 0 && Beta1 < 1) || !(Beta2 >= 0 && Beta2 < 1))
        {
            errors.Add("betas must be in [0, 1)");
        }

        if (!(Momentum >= 0 && Momentum < 1))
        {
            errors.Add("momentum must be in [0, 1)");
        }

        if (Schedule is not (Constant or Cosine or WarmupCosine))
        {
            errors.Add("schedule must be constant, cosine or warmup-cosine");
        }
        else if (Schedule != Constant && TotalSteps <= 0)
        {
            errors.Add("the cosine schedules need the job's total steps");
        }

        if (WarmupSteps < 0 || (Schedule == WarmupCosine && TotalSteps > 0 && WarmupSteps >= TotalSteps))
        {
            errors.Add("warm-up steps must be at least 0 and fewer than the total steps");
        }

        if (!(MinLrFraction >= 0 && MinLrFraction <= 1))
        {
            errors.Add("the minimum learning-rate fraction must be in [0, 1]");
        }

        if (MicroBatch < 0)
        {
            errors.Add("micro-batch must be at least 0 (0 runs each batch whole)");
        }

        if (!(GradClip >= 0) || double.IsPositiveInfinity(GradClip))
        {
            errors.Add("gradient clip must be a finite norm, or 0 for none");
        }

        return errors;
    }

    /// <summary>The learning rate at global step <paramref name="step"/> (0-based).</summary>
    public double LearningRateAt(long step)
    {
        if (Schedule == Constant)
        {
            return LearningRate;
        }

        var warmup = Schedule == WarmupCosine ? WarmupSteps : 0;
        if (step < warmup)
        {
            return LearningRate * (step + 1) / warmup;
        }

        var progress = Math.Clamp((double)(step - warmup) / Math.Max(1, TotalSteps - warmup), 0, 1);
        var floor = LearningRate * MinLrFraction;
        return floor + ((LearningRate - floor) * 0.5 * (1 + Math.Cos(Math.PI * progress)));
    }
}
