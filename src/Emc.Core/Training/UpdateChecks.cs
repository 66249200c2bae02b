using System.Globalization;
using System.Numerics.Tensors;

namespace Emc.Core.Training;

/// <summary>One node's pseudo-gradient for a round, decoded.</summary>
/// <param name="NodeId">The node that sent it.</param>
/// <param name="Delta">Δ = W − θ, one value per model parameter.</param>
/// <param name="Samples">Training samples behind it: the node's weight in the aggregate.</param>
public sealed record NodeUpdate(string NodeId, float[] Delta, long Samples);

/// <summary>What the checks made of one update.</summary>
/// <param name="NodeId">The node that sent it.</param>
/// <param name="Accepted">Whether it may go into the aggregate.</param>
/// <param name="Reason">Why it was rejected; null when accepted.</param>
/// <param name="Norm">Its L2 norm; NaN when it has non-finite values.</param>
/// <param name="Cosine">Its cosine similarity to the coordinate-wise median of the round; NaN when not computed
/// (fewer than <see cref="UpdateCheckOptions.MinUpdatesForStatistics"/> usable updates, a zero vector, or a zero median).</param>
public sealed record UpdateVerdict(string NodeId, bool Accepted, string? Reason, double Norm, double Cosine);

/// <summary>Thresholds of <see cref="UpdateChecks"/>.</summary>
public sealed record UpdateCheckOptions
{
    /// <summary>
    /// The norm and cosine checks compare an update with the rest of the round, which says nothing
    /// with one or two updates. Default 3.
    /// </summary>
    public int MinUpdatesForStatistics { get; init; } = 3;

    /// <summary>k in the norm limit median + k · 1.4826 · MAD of the round's norms. Default 6: far outside honest variation.</summary>
    public double NormMadMultiplier { get; init; } = 6;

    /// <summary>
    /// The norm limit is never below this multiple of the median norm. When honest nodes send norms
    /// that are nearly equal the MAD is close to 0, and without this floor a few percent of noise
    /// would be rejected. Default 1.5: an update may be half again as long as the typical one.
    /// </summary>
    public double NormMedianFactor { get; init; } = 1.5;

    /// <summary>
    /// Updates whose cosine similarity to the coordinate-wise median is below this are rejected.
    /// Default 0: anything pointing against the consensus goes, orthogonal or better stays.
    /// </summary>
    public double MinCosine { get; init; }

    /// <summary>Throws <see cref="ArgumentOutOfRangeException"/> for a threshold that makes no sense.</summary>
    public void Validate()
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(MinUpdatesForStatistics, 2);
        if (!(NormMadMultiplier >= 0) || !double.IsFinite(NormMadMultiplier))
        {
            throw new ArgumentOutOfRangeException(nameof(NormMadMultiplier), NormMadMultiplier, "Must be finite and not negative.");
        }

        if (!(NormMedianFactor >= 1) || !double.IsFinite(NormMedianFactor))
        {
            throw new ArgumentOutOfRangeException(nameof(NormMedianFactor), NormMedianFactor, "Must be finite and at least 1.");
        }

        if (!(MinCosine >= -1 && MinCosine <= 1))
        {
            throw new ArgumentOutOfRangeException(nameof(MinCosine), MinCosine, "Must be in [-1, 1].");
        }
    }
}

/// <summary>
/// The aggregator's checks of one round's updates, in order:
/// <list type="number">
/// <item>every value finite ("non-finite values");</item>
/// <item>samples &gt; 0;</item>
/// <item>with at least <see cref="UpdateCheckOptions.MinUpdatesForStatistics"/> updates passing 1–2: norm ≤
/// max(median + k · 1.4826 · MAD, <see cref="UpdateCheckOptions.NormMedianFactor"/> · median) over those updates' norms;</item>
/// <item>with as many: cosine similarity to the (unweighted) coordinate-wise median of those updates ≥
/// <see cref="UpdateCheckOptions.MinCosine"/>, unless the update or the median is the zero vector.</item>
/// </list>
/// The reference median is unweighted so that a node cannot pull it by claiming many samples. A zero
/// update with samples &gt; 0 passes: whether a node did its work is judged elsewhere. When most of the
/// round is zero the median norm is 0 and any non-zero update is an outlier — the round's consensus is then "no change".
/// </summary>
public static class UpdateChecks
{
    /// <summary>Judges every update of a round; the verdicts are in the order of <paramref name="updates"/>.
    /// Throws <see cref="ArgumentException"/> when the deltas differ in length.</summary>
    public static IReadOnlyList<UpdateVerdict> Check(IReadOnlyList<NodeUpdate> updates, UpdateCheckOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(updates);
        options ??= new UpdateCheckOptions();
        options.Validate();
        if (updates.Count == 0)
        {
            return [];
        }

        var length = updates[0].Delta.Length;
        var reasons = new string?[updates.Count];
        var norms = new double[updates.Count];
        var cosines = new double[updates.Count];
        var usable = new List<int>(updates.Count);
        for (var i = 0; i < updates.Count; i++)
        {
            var update = updates[i];
            if (update.Delta.Length != length)
            {
                throw new ArgumentException(
                    $"The update of {update.NodeId} has {update.Delta.Length} values; the first has {length}. Decode every update against the model's size.",
                    nameof(updates));
            }

            cosines[i] = double.NaN;
            if (!FiniteValues.All(update.Delta))
            {
                norms[i] = double.NaN;
                reasons[i] = "non-finite values";
                continue;
            }

            norms[i] = TensorPrimitives.Norm<float>(update.Delta);
            if (update.Samples <= 0)
            {
                reasons[i] = string.Create(CultureInfo.InvariantCulture, $"samples must be positive, not {update.Samples}");
                continue;
            }

            usable.Add(i);
        }

        if (usable.Count >= options.MinUpdatesForStatistics)
        {
            CheckNorms(updates, usable, norms, reasons, options);
            CheckCosines(updates, usable, norms, cosines, reasons, options);
        }

        var verdicts = new UpdateVerdict[updates.Count];
        for (var i = 0; i < updates.Count; i++)
        {
            verdicts[i] = new UpdateVerdict(updates[i].NodeId, reasons[i] is null, reasons[i], norms[i], cosines[i]);
        }

        return verdicts;
    }

    /// <summary>
    /// Norms are compared per unit of work: members run inner steps in proportion to their speed,
    /// and a pseudo-gradient grows with the steps behind it, so each norm is scaled to the round's
    /// median sample count first (linear scaling, which gives a member with more steps the benefit
    /// of the doubt).
    /// </summary>
    private static void CheckNorms(IReadOnlyList<NodeUpdate> updates, List<int> usable, double[] norms, string?[] reasons, UpdateCheckOptions options)
    {
        var samples = new double[usable.Count];
        for (var u = 0; u < usable.Count; u++)
        {
            samples[u] = updates[usable[u]].Samples;
        }

        var (medianSamples, _) = RobustStatistics.MedianAndScaledMad(samples);
        var scaled = new double[norms.Length];
        var usableNorms = new double[usable.Count];
        for (var u = 0; u < usable.Count; u++)
        {
            var i = usable[u];
            scaled[i] = norms[i] * medianSamples / updates[i].Samples;
            usableNorms[u] = scaled[i];
        }

        var (median, scaledMad) = RobustStatistics.MedianAndScaledMad(usableNorms);
        var limit = Math.Max(median + (options.NormMadMultiplier * scaledMad), options.NormMedianFactor * median);
        foreach (var i in usable)
        {
            if (scaled[i] > limit)
            {
                reasons[i] = string.Create(
                    CultureInfo.InvariantCulture,
                    $"norm {scaled[i]:G4} per {medianSamples:G4} samples is above the round's limit {limit:G4} (median {median:G4})");
            }
        }
    }

    private static void CheckCosines(
        IReadOnlyList<NodeUpdate> updates, List<int> usable, double[] norms, double[] cosines, string?[] reasons, UpdateCheckOptions options)
    {
        var reference = Aggregator.Aggregate(usable.Select(i => (updates[i].Delta, 1.0)).ToList(), AggregatorKind.Median);
        double referenceNorm = TensorPrimitives.Norm<float>(reference);
        if (referenceNorm == 0)
        {
            return;
        }

        foreach (var i in usable)
        {
            if (norms[i] == 0)
            {
                continue;
            }

            cosines[i] = Math.Clamp(TensorPrimitives.Dot<float>(updates[i].Delta, reference) / (norms[i] * referenceNorm), -1, 1);
            if (reasons[i] is null && cosines[i] < options.MinCosine)
            {
                reasons[i] = string.Create(
                    CultureInfo.InvariantCulture,
                    $"points away from the round's consensus (cosine {cosines[i]:F3} to the median is below {options.MinCosine})");
            }
        }
    }
}
