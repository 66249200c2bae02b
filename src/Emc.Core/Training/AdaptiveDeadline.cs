namespace Emc.Core.Training;

/// <summary>Settings of <see cref="AdaptiveDeadline"/>.</summary>
public sealed record AdaptiveDeadlineOptions
{
    /// <summary>The wait before any round time is known. Default 10 minutes.</summary>
    public TimeSpan Initial { get; init; } = TimeSpan.FromMinutes(10);

    /// <summary>The shortest wait ever returned, so a run of very fast rounds cannot leave no room for network jitter. Default 5 seconds.</summary>
    public TimeSpan Min { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>The longest wait ever returned, so a few stragglers cannot stall the job. Default 30 minutes.</summary>
    public TimeSpan Max { get; init; } = TimeSpan.FromMinutes(30);

    /// <summary>k in median + k · 1.4826 · MAD. Default 3: about the 99.9th percentile of normally spread node times.</summary>
    public double MadMultiplier { get; init; } = 3;

    /// <summary>Multiplies the robust estimate to leave room for upload time and drift. Default 1.25.</summary>
    public double Slack { get; init; } = 1.25;

    /// <summary>Throws <see cref="ArgumentOutOfRangeException"/> unless 0 &lt; Min ≤ Initial ≤ Max, k ≥ 0 and slack ≥ 1.</summary>
    public void Validate()
    {
        if (Min <= TimeSpan.Zero)
        {
            throw new ArgumentOutOfRangeException(nameof(Min), Min, "Must be positive.");
        }

        if (Max < Min)
        {
            throw new ArgumentOutOfRangeException(nameof(Max), Max, "Must not be below Min.");
        }

        if (Initial < Min || Initial > Max)
        {
            throw new ArgumentOutOfRangeException(nameof(Initial), Initial, "Must lie between Min and Max.");
        }

        if (!(MadMultiplier >= 0) || !double.IsFinite(MadMultiplier))
        {
            throw new ArgumentOutOfRangeException(nameof(MadMultiplier), MadMultiplier, "Must be finite and not negative.");
        }

        if (!(Slack >= 1) || !double.IsFinite(Slack))
        {
            throw new ArgumentOutOfRangeException(nameof(Slack), Slack, "Must be finite and at least 1.");
        }
    }
}

/// <summary>
/// How long the coordinator waits for a round: (median + k · 1.4826 · MAD) · slack of the recent
/// times nodes took, clamped to [Min, Max]; <see cref="AdaptiveDeadlineOptions.Initial"/> with no
/// history. Median and MAD rather than mean and deviation so that one node that took hours does not
/// stretch every later round. Times that are negative, NaN or infinite are ignored.
/// </summary>
public static class AdaptiveDeadline
{
    /// <summary>The wait for the next round, given the seconds nodes took in recent rounds (any order).</summary>
    public static TimeSpan Next(IReadOnlyList<double> recentSeconds, AdaptiveDeadlineOptions options)
    {
        ArgumentNullException.ThrowIfNull(recentSeconds);
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        var times = recentSeconds.Where(s => double.IsFinite(s) && s >= 0).ToArray();
        if (times.Length == 0)
        {
            return options.Initial;
        }

        var (median, scaledMad) = RobustStatistics.MedianAndScaledMad(times);
        var seconds = (median + (options.MadMultiplier * scaledMad)) * options.Slack;

        // Clamp in seconds first: a huge estimate must not overflow TimeSpan.
        seconds = Math.Clamp(seconds, options.Min.TotalSeconds, options.Max.TotalSeconds);
        return TimeSpan.FromSeconds(seconds);
    }
}
