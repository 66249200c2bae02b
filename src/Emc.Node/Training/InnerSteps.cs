using System.Diagnostics;
using Emc.Compute.Training;
using Emc.Core.Training;

namespace Emc.Node.Training;

/// <summary>
/// The inner-step loop of a member's share, shared by rounds and their replays: a replay must walk the
/// batches in the same chunks (each chunk reseeds dropout from its first step), or it would not
/// reproduce the member's update.
/// </summary>
internal static class InnerSteps
{
    /// <summary>Steps per call of the trainer: between chunks a slow node may stop at its time budget.</summary>
    public const int Chunk = 8;

    /// <summary>
    /// Runs the first <paramref name="limit"/> of <paramref name="batches"/> from global step
    /// <paramref name="stepOffset"/>, in chunks of <see cref="Chunk"/>, stopping early (after at least one
    /// chunk) once <paramref name="budgetClock"/> passes <paramref name="budget"/>. Returns the losses and
    /// the steps taken.
    /// </summary>
    public static (List<float> Losses, int Steps) Run(
        InnerTrainer trainer,
        TrainableModel model,
        ExampleSet data,
        IReadOnlyList<long[]> batches,
        long stepOffset,
        int limit,
        Stopwatch? budgetClock,
        TimeSpan budget,
        CancellationToken cancellationToken)
    {
        var losses = new List<float>();
        var steps = 0;
        limit = Math.Min(limit, batches.Count);
        while (steps < limit && (steps == 0 || budgetClock is null || budgetClock.Elapsed < budget))
        {
            cancellationToken.ThrowIfCancellationRequested();
            var take = Math.Min(Chunk, limit - steps);
            var result = trainer.Run(model, data, batches.Skip(steps).Take(take).ToList(), stepOffset + steps, cancellationToken);
            losses.AddRange(result.Losses);
            steps += take;
        }

        return (losses, steps);
    }

    /// <summary>The batches of a share: example indices, or for text the first byte of each window.</summary>
    public static IReadOnlyList<long[]> Batches(long seed, bool shuffle, long trainExamples, long streamStart, int steps, int batchSize, int textContext)
    {
        var batches = new SampleStream(seed, shuffle, trainExamples).Batches(streamStart, steps, batchSize);
        if (textContext > 0)
        {
            foreach (var batch in batches)
            {
                for (var i = 0; i < batch.Length; i++)
                {
                    batch[i] *= textContext;
                }
            }
        }

        return batches;
    }

    /// <summary>The node's inner optimizer settings for a job's resolved spec.</summary>
    public static InnerOptions Options(InnerOptimizerSpec inner, int microBatch, long totalSteps) => new()
    {
        Optimizer = inner.Optimizer ?? InnerOptions.AdamW,
        LearningRate = inner.LearningRate ?? 1e-3,
        WeightDecay = inner.WeightDecay ?? 0,
        Beta1 = inner.Beta1,
        Beta2 = inner.Beta2,
        Momentum = inner.Momentum,
        Schedule = inner.Schedule,
        WarmupSteps = inner.WarmupSteps,
        TotalSteps = Math.Max(1, totalSteps),
        MinLrFraction = inner.MinLrFraction,
        MicroBatch = microBatch,
        GradClip = inner.GradClip,
    };
}
