using System.Globalization;
using Emc.Core.Scheduling;

namespace Emc.Core.Training;

/// <summary>Fills in what a job left unset and checks what it set, before anything is stored.</summary>
public static class TrainingDefaults
{
    /// <summary>DiLoCo's inner steps per round when the job does not say.</summary>
    public const int DilocoInnerSteps = 50;

    public const int MaxInnerSteps = 100_000;
    public const int MaxBatchSize = 65_536;
    public const int MaxRounds = 1_000_000;
    public const int MaxNodes = 1024;

    private static readonly string[] Optimizers = ["adamw", "adam", "sgd"];
    private static readonly string[] Schedules = ["constant", "cosine", "warmup-cosine"];

    /// <summary>The spec with every algorithm default made explicit (inner steps, optimizers).</summary>
    public static TrainingJobSpec Resolve(TrainingJobSpec spec)
    {
        ArgumentNullException.ThrowIfNull(spec);
        var sync = spec.Algorithm == TrainingAlgorithm.Sync;
        var inner = spec.Inner with
        {
            Optimizer = spec.Inner.Optimizer ?? (sync ? "sgd" : "adamw"),
            LearningRate = spec.Inner.LearningRate ?? (sync || spec.Inner.Optimizer == "sgd" ? 0.05 : 1e-3),
            WeightDecay = spec.Inner.WeightDecay ?? (sync ? 0 : 0.01),
        };
        var outer = new OuterOptimizerSpec
        {
            LearningRate = spec.Outer.LearningRate ?? (sync ? 1.0 : 0.7),
            Momentum = spec.Outer.Momentum ?? (sync ? 0.0 : 0.9),
            Nesterov = spec.Outer.Nesterov ?? !sync,
        };
        return spec with
        {
            InnerSteps = sync ? 1 : spec.InnerSteps ?? DilocoInnerSteps,
            Inner = inner,
            Outer = outer,
        };
    }

    /// <summary>The problems with <paramref name="spec"/> that need no dataset to see; empty when none.</summary>
    public static IReadOnlyList<string> Validate(TrainingJobSpec? spec)
    {
        var errors = new List<string>();
        if (spec is null)
        {
            errors.Add("the training job is missing");
            return errors;
        }

        if (spec.Name is null || spec.Name.Length > JobSpecValidator.MaxNameChars || spec.Name.Any(char.IsControl))
        {
            errors.Add($"name must be at most {JobSpecValidator.MaxNameChars} printable characters");
        }

        if (!JobSpecValidator.IsIdentifier(spec.Account))
        {
            errors.Add("account must be 1 to 64 characters of letters, digits, '.', '_', '-' or ':'");
        }

        if (spec.Model is null)
        {
            errors.Add("model is missing");
        }

        if (!JobSpecValidator.IsIdentifier(spec.Dataset))
        {
            errors.Add("dataset must name an uploaded dataset");
        }

        if (!Enum.IsDefined(spec.Algorithm))
        {
            errors.Add("algorithm must be diloco or sync");
        }

        if (spec.Nodes is null || spec.Nodes.Min < 1 || spec.Nodes.Max < spec.Nodes.Min || spec.Nodes.Max > MaxNodes)
        {
            errors.Add($"nodes must be min ≥ 1 and min ≤ max ≤ {MaxNodes}");
        }

        if (spec.InnerSteps is { } h && (h < 1 || h > MaxInnerSteps))
        {
            errors.Add($"innerSteps must be 1 to {MaxInnerSteps}");
        }

        if (spec.Algorithm == TrainingAlgorithm.Sync && spec.InnerSteps is > 1)
        {
            errors.Add("sync mode runs one inner step per round; leave innerSteps unset or 1");
        }

        if (spec.BatchSize < 1 || spec.BatchSize > MaxBatchSize)
        {
            errors.Add($"batchSize must be 1 to {MaxBatchSize}");
        }

        if (spec.MicroBatch < 0 || spec.MicroBatch > spec.BatchSize)
        {
            errors.Add("microBatch must be 0 (whole batch) or at most batchSize");
        }

        if (spec.Rounds is null && spec.TargetSamples is null && spec.Epochs is null)
        {
            errors.Add("say how long to train: rounds, targetSamples or epochs");
        }

        if (spec.Rounds is { } rounds && (rounds < 1 || rounds > MaxRounds))
        {
            errors.Add($"rounds must be 1 to {MaxRounds}");
        }

        if (spec.TargetSamples is < 1)
        {
            errors.Add("targetSamples must be positive");
        }

        if (spec.Epochs is { } epochs && (!double.IsFinite(epochs) || epochs <= 0 || epochs > 100_000))
        {
            errors.Add("epochs must be a positive number");
        }

        if (!Enum.IsDefined(spec.Aggregator))
        {
            errors.Add("aggregator must be mean, trimmed-mean or median");
        }

        if (!(spec.TrimFraction >= 0 && spec.TrimFraction < 0.5))
        {
            errors.Add("trimFraction must be in [0, 0.5)");
        }

        if (!Enum.IsDefined(spec.Precision))
        {
            errors.Add("precision must be int8 or fp32");
        }

        if (!(spec.CloseFraction > 0 && spec.CloseFraction <= 1))
        {
            errors.Add("closeFraction must be in (0, 1]");
        }

        if (!(spec.InitialDeadlineSeconds >= 1 && spec.InitialDeadlineSeconds <= 86_400))
        {
            errors.Add("initialDeadlineSeconds must be 1 to 86400");
        }

        if (spec.DeviceMemoryBytes < 0)
        {
            errors.Add("deviceMemoryBytes must not be negative");
        }

        if (spec.Output is not null && !ModelNames.IsValid(spec.Output))
        {
            errors.Add($"output must be a model name: {ModelNames.Rule}");
        }

        if (spec.Budget is < 1)
        {
            errors.Add("budget must be a whole number of ledger units above 0 (1 EMC = 1000000)");
        }

        if (spec.IdempotencyKey is not null && !JobSpecValidator.IsIdentifier(spec.IdempotencyKey, 128))
        {
            errors.Add("idempotencyKey must be 1 to 128 characters of letters, digits, '.', '_', '-' or ':'");
        }

        ValidateInner(spec.Inner, errors);
        ValidateOuter(spec.Outer, errors);
        ValidateEvaluation(spec.Evaluation, errors);
        return errors;
    }

    private static void ValidateInner(InnerOptimizerSpec? inner, List<string> errors)
    {
        if (inner is null)
        {
            errors.Add("inner is missing");
            return;
        }

        if (inner.Optimizer is not null && !Optimizers.Contains(inner.Optimizer))
        {
            errors.Add($"inner.optimizer must be {string.Join(", ", Optimizers)}");
        }

        if (inner.LearningRate is { } lr && !(lr > 0 && lr <= 10))
        {
            errors.Add("inner.learningRate must be in (0, 10]");
        }

        if (inner.WeightDecay is { } wd && !(wd >= 0 && wd <= 1))
        {
            errors.Add("inner.weightDecay must be in [0, 1]");
        }

        if (!(inner.Beta1 >= 0 && inner.Beta1 < 1) || !(inner.Beta2 >= 0 && inner.Beta2 < 1))
        {
            errors.Add("inner.beta1 and inner.beta2 must be in [0, 1)");
        }

        if (!(inner.Momentum >= 0 && inner.Momentum < 1))
        {
            errors.Add("inner.momentum must be in [0, 1)");
        }

        if (!Schedules.Contains(inner.Schedule))
        {
            errors.Add($"inner.schedule must be {string.Join(", ", Schedules)}");
        }

        if (inner.WarmupSteps < 0)
        {
            errors.Add("inner.warmupSteps must not be negative");
        }

        if (!(inner.MinLrFraction >= 0 && inner.MinLrFraction <= 1))
        {
            errors.Add("inner.minLrFraction must be in [0, 1]");
        }

        if (!(inner.GradClip >= 0) || double.IsInfinity(inner.GradClip))
        {
            errors.Add("inner.gradClip must be 0 (off) or positive");
        }
    }

    private static void ValidateOuter(OuterOptimizerSpec? outer, List<string> errors)
    {
        if (outer is null)
        {
            errors.Add("outer is missing");
            return;
        }

        if (outer.LearningRate is { } lr && !(lr > 0 && lr <= 10))
        {
            errors.Add("outer.learningRate must be in (0, 10]");
        }

        if (outer.Momentum is { } momentum && !(momentum >= 0 && momentum < 1))
        {
            errors.Add("outer.momentum must be in [0, 1)");
        }
    }

    private static void ValidateEvaluation(EvaluationSpec? evaluation, List<string> errors)
    {
        if (evaluation is null)
        {
            errors.Add("evaluation is missing");
            return;
        }

        if (evaluation.Split is not null && !JobSpecValidator.IsIdentifier(evaluation.Split))
        {
            errors.Add("evaluation.split must name a split of the dataset");
        }

        if (evaluation.HoldoutFraction is { } fraction && !(fraction > 0 && fraction < 1))
        {
            errors.Add("evaluation.holdoutFraction must be in (0, 1)");
        }

        if (evaluation.Split is not null && evaluation.HoldoutFraction is not null)
        {
            errors.Add("give evaluation.split or evaluation.holdoutFraction, not both");
        }

        if (evaluation.Every < 1)
        {
            errors.Add("evaluation.every must be at least 1");
        }

        if (evaluation.MaxExamples < 0)
        {
            errors.Add("evaluation.maxExamples must be 0 (all) or positive");
        }
    }

    internal static string Format(double value) => value.ToString("0.####", CultureInfo.InvariantCulture);
}
