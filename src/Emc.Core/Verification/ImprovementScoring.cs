using System.Globalization;

namespace Emc.Core.Verification;

/// <summary>One member's held-out result: the loss of W − Δ and the samples behind Δ.</summary>
/// <param name="Node">The member.</param>
/// <param name="Loss">Mean held-out loss of the weights W − Δ its update leads to.</param>
/// <param name="Samples">Training samples behind its update.</param>
public sealed record ScoredUpdate(string Node, double Loss, long Samples);

/// <summary>What the scoring rule made of one update.</summary>
/// <param name="Node">The member.</param>
/// <param name="Improvement">Loss of W minus loss of W − Δ: positive when the update helps.</param>
/// <param name="Scaled">The improvement scaled up to the round's median sample count (members with fewer samples are not penalised for them).</param>
/// <param name="Flagged">Whether the rule flags it.</param>
/// <param name="Reason">Why, when flagged.</param>
public sealed record ScoreVerdict(string Node, double Improvement, double Scaled, bool Flagged, string? Reason);

/// <summary>Thresholds of <see cref="ImprovementScoring"/>.</summary>
public sealed record ImprovementScoringOptions
{
    /// <summary>An update is flagged when its scaled improvement is below this share of the round's median. Default 0.5.</summary>
    public double MedianFraction { get; init; } = 0.5;

    /// <summary>The comparison with the median needs this many scored updates. Default 3.</summary>
    public int MinUpdatesForMedian { get; init; } = 3;

    /// <summary>
    /// The median must be clearly positive for the comparison: at least this share of the loss of W.
    /// Default 0.01: late in training, when updates barely move the held-out loss, noise would decide.
    /// </summary>
    public double MinMedianShare { get; init; } = 0.01;

    /// <summary>
    /// An update is only flagged as too weak when it is also this many scaled MADs below the median: honest
    /// members that disagree among themselves are not told apart by noise. Default 3.
    /// </summary>
    public double MadMultiplier { get; init; } = 3;

    /// <summary>
    /// Any update whose W − Δ is worse than W by more than this share of W's loss (plus
    /// <see cref="WorseSlack"/>) is flagged, whatever the others did. Default 0.1.
    /// </summary>
    public double WorseShare { get; init; } = 0.1;

    /// <summary>Absolute slack of the "worse than W" rule, in loss units (nats). Default 0.01.</summary>
    public double WorseSlack { get; init; } = 0.01;

    /// <summary>The errors in these settings, empty when they are usable.</summary>
    public IReadOnlyList<string> Validate()
    {
        var errors = new List<string>();
        if (!(MedianFraction >= 0 && MedianFraction < 1))
        {
            errors.Add("the scoring median fraction must be in [0, 1)");
        }

        if (MinUpdatesForMedian < 2)
        {
            errors.Add("the scoring needs at least 2 updates for a median");
        }

        if (!(MinMedianShare >= 0) || !(WorseShare >= 0) || !(WorseSlack >= 0) || !(MadMultiplier >= 0) || !double.IsFinite(WorseShare + WorseSlack + MinMedianShare + MadMultiplier))
        {
            errors.Add("the scoring shares and slack must be finite and not negative");
        }

        return errors;
    }
}

/// <summary>
/// Loss-improvement scoring of a round's updates on a fixed held-out sample: for each update Δ, how much
/// lower the held-out loss of W − Δ is than that of W. Two rules flag an update:
/// <list type="number">
/// <item>it makes the model worse: loss(W − Δ) &gt; loss(W) · (1 + <see cref="ImprovementScoringOptions.WorseShare"/>) + <see cref="ImprovementScoringOptions.WorseSlack"/>;</item>
/// <item>with at least <see cref="ImprovementScoringOptions.MinUpdatesForMedian"/> updates and a median improvement of at least
/// <see cref="ImprovementScoringOptions.MinMedianShare"/> · loss(W): its improvement, scaled up to the round's median sample
/// count when it had fewer samples, is below <see cref="ImprovementScoringOptions.MedianFraction"/> · median and more than
/// <see cref="ImprovementScoringOptions.MadMultiplier"/> scaled MADs below the median.</item>
/// </list>
/// A flag is a suspicion, not a proof: flagged updates are left out of the aggregate and replayed.
/// </summary>
public static class ImprovementScoring
{
    /// <summary>Judges the updates against the loss of W, <paramref name="baseLoss"/>; verdicts in the order of <paramref name="updates"/>.</summary>
    public static IReadOnlyList<ScoreVerdict> Judge(double baseLoss, IReadOnlyList<ScoredUpdate> updates, ImprovementScoringOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(updates);
        options ??= new ImprovementScoringOptions();
        var errors = options.Validate();
        if (errors.Count > 0)
        {
            throw new ArgumentException(string.Join("; ", errors), nameof(options));
        }

        if (updates.Count == 0 || !double.IsFinite(baseLoss))
        {
            return [.. updates.Select(u => new ScoreVerdict(u.Node, double.NaN, double.NaN, false, null))];
        }

        var samples = updates.Where(u => u.Samples > 0).Select(u => (double)u.Samples).Order().ToList();
        var medianSamples = samples.Count == 0 ? 0 : Median(samples);
        var improvements = new double[updates.Count];
        var scaled = new double[updates.Count];
        for (var i = 0; i < updates.Count; i++)
        {
            var update = updates[i];
            improvements[i] = double.IsFinite(update.Loss) ? baseLoss - update.Loss : double.NegativeInfinity;

            // Gains shrink with steps, so scaling a short member's gain up linearly favours it; a long member's is left as it is.
            var factor = update.Samples > 0 && medianSamples > update.Samples ? medianSamples / update.Samples : 1;
            scaled[i] = improvements[i] > 0 ? improvements[i] * factor : improvements[i];
        }

        var finite = scaled.Where(double.IsFinite).Order().ToList();
        var median = finite.Count >= options.MinUpdatesForMedian ? Median(finite) : double.NaN;
        var mad = double.IsNaN(median) ? double.NaN : 1.4826 * Median([.. finite.Select(v => Math.Abs(v - median)).Order()]);
        var compare = median >= options.MinMedianShare * Math.Abs(baseLoss) && median > 0;
        var worseLimit = baseLoss + (options.WorseShare * Math.Abs(baseLoss)) + options.WorseSlack;
        var verdicts = new ScoreVerdict[updates.Count];
        for (var i = 0; i < updates.Count; i++)
        {
            var loss = updates[i].Loss;
            string? reason = null;
            if (!double.IsFinite(loss))
            {
                reason = "scoring: its update gives a non-finite held-out loss";
            }
            else if (loss > worseLimit)
            {
                reason = string.Create(CultureInfo.InvariantCulture, $"scoring: its update makes the held-out loss worse ({baseLoss:G4} → {loss:G4})");
            }
            else if (compare && scaled[i] < options.MedianFraction * median && scaled[i] < median - (options.MadMultiplier * mad))
            {
                reason = string.Create(
                    CultureInfo.InvariantCulture,
                    $"scoring: its update improves the held-out loss by {scaled[i]:G3}, under {options.MedianFraction:G2} × the round's median {median:G3}");
            }

            verdicts[i] = new ScoreVerdict(updates[i].Node, improvements[i], scaled[i], reason is not null, reason);
        }

        return verdicts;
    }

    private static double Median(List<double> sorted)
    {
        var middle = sorted.Count / 2;
        return sorted.Count % 2 == 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
    }
}
