namespace Emc.Core.Verification;

/// <summary>
/// How often a node's work is checked, from its record of consecutive verified results — BOINC's adaptive
/// replication with a floor: a node with fewer than <see cref="Warmup"/> consecutive verified results is
/// always checked; after that, a result is checked with probability 1 / (consecutive verified results),
/// never below <see cref="Floor"/>. One proven fault resets the record, so a node that cheats is checked
/// on everything again.
/// </summary>
/// <remarks>
/// With the defaults (warm-up 10, floor 5 %) a new honest node is checked on its first 10 results, on about
/// 10 more over its next ~150, and on 5 % after that. A node that corrupts a fraction f of its results is
/// caught on each one with probability at least 5 % · f … which over n results is at least
/// 1 − (1 − 0.05 f)^n: 99.3 % for f = 10 % and n = 1,000 (<see cref="DetectionProbability"/>).
/// </remarks>
public sealed record AuditPolicy
{
    /// <summary>The inference default: a floor of 5 % and a warm-up of 10 results.</summary>
    public static AuditPolicy Inference { get; } = new();

    /// <summary>The training default: rounds cost far more than requests, so the warm-up is 2 rounds; the floor is the same 5 %.</summary>
    public static AuditPolicy Training { get; } = new() { Warmup = 2 };

    /// <summary>The lowest audit rate, in (0, 1]. Default 0.05.</summary>
    public double Floor { get; init; } = 0.05;

    /// <summary>Consecutive verified results before a node is checked less than always. Default 10.</summary>
    public int Warmup { get; init; } = 10;

    /// <summary>The errors in these settings, empty when they are usable.</summary>
    public IReadOnlyList<string> Validate()
    {
        var errors = new List<string>();
        if (!(Floor > 0 && Floor <= 1))
        {
            errors.Add($"the audit floor must be in (0, 1], not {Floor}");
        }

        if (Warmup < 0)
        {
            errors.Add($"the audit warm-up must not be negative, not {Warmup}");
        }

        return errors;
    }

    /// <summary>The probability that the next result of a node with <paramref name="consecutiveVerified"/> consecutive verified results is checked.</summary>
    public double Rate(long consecutiveVerified)
    {
        if (consecutiveVerified < Math.Max(1, Warmup))
        {
            return 1;
        }

        return Math.Max(Floor, 1.0 / consecutiveVerified);
    }

    /// <summary>
    /// The least probability that a node corrupting <paramref name="corruptFraction"/> of its results is caught
    /// within <paramref name="results"/> results, whatever its record: each corrupt result is checked with at
    /// least <see cref="Floor"/>.
    /// </summary>
    public double DetectionProbability(double corruptFraction, long results) =>
        1 - Math.Pow(1 - (Floor * Math.Clamp(corruptFraction, 0, 1)), results);
}
