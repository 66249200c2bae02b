using System.Globalization;

namespace Emc.Core.Verification;

/// <summary>How a claimed update compares with an independent replay of the same work.</summary>
/// <param name="Agree">Whether they agree within the tolerance.</param>
/// <param name="Distance">‖a − b‖ / max(‖a‖, ‖b‖); 0 for two zero vectors, NaN when one is not finite.</param>
/// <param name="Evidence">The comparison in words.</param>
public sealed record ReplayMatch(bool Agree, double Distance, string Evidence);

/// <summary>
/// Compares a claimed pseudo-gradient with a replay of the same node-round on another node. Honest replays
/// differ only by floating-point noise — reduction order with other thread counts or kernels, the int8
/// quantisation of each side — so the relative L2 distance ‖a − b‖ / max(‖a‖, ‖b‖) is small; a different
/// update (negated, noise, scaled, fewer steps, another vector) is at a distance of order 1. Two updates
/// that are both non-finite agree (an honest divergence replays as one); one non-finite side disagrees.
/// </summary>
public static class ReplayComparison
{
    /// <summary>The default tolerance on the relative L2 distance: 0.05.</summary>
    public const double DefaultTolerance = 0.05;

    /// <summary>The relative L2 distance of two vectors of one length, in double precision.</summary>
    public static double RelativeDistance(ReadOnlySpan<float> a, ReadOnlySpan<float> b)
    {
        if (a.Length != b.Length)
        {
            throw new ArgumentException($"The vectors differ in length ({a.Length} and {b.Length}).", nameof(b));
        }

        double diff = 0, normA = 0, normB = 0;
        for (var i = 0; i < a.Length; i++)
        {
            double x = a[i], y = b[i];
            var d = x - y;
            diff += d * d;
            normA += x * x;
            normB += y * y;
        }

        if (!double.IsFinite(diff + normA + normB))
        {
            return double.NaN;
        }

        var scale = Math.Sqrt(Math.Max(normA, normB));
        return scale == 0 ? 0 : Math.Sqrt(diff) / scale;
    }

    /// <summary>Compares <paramref name="claimed"/> with <paramref name="replayed"/> at <paramref name="tolerance"/>.</summary>
    public static ReplayMatch Compare(ReadOnlySpan<float> claimed, ReadOnlySpan<float> replayed, double tolerance = DefaultTolerance)
    {
        if (!(tolerance >= 0) || !double.IsFinite(tolerance))
        {
            throw new ArgumentOutOfRangeException(nameof(tolerance), tolerance, "The tolerance must be finite and not negative.");
        }

        if (claimed.Length != replayed.Length)
        {
            return new ReplayMatch(false, double.NaN, $"the replay has {replayed.Length} values, the claim {claimed.Length}");
        }

        var claimedFinite = AllFinite(claimed);
        var replayedFinite = AllFinite(replayed);
        if (!claimedFinite || !replayedFinite)
        {
            return claimedFinite == replayedFinite
                ? new ReplayMatch(true, double.NaN, "both the claim and the replay have non-finite values")
                : new ReplayMatch(false, double.NaN, claimedFinite ? "the replay has non-finite values, the claim does not" : "the claim has non-finite values, the replay does not");
        }

        var distance = RelativeDistance(claimed, replayed);
        var agree = distance <= tolerance;
        return new ReplayMatch(
            agree,
            distance,
            string.Create(CultureInfo.InvariantCulture, $"relative L2 distance {distance:G3} {(agree ? "within" : "beyond")} the tolerance {tolerance:G3}"));
    }

    private static bool AllFinite(ReadOnlySpan<float> values)
    {
        foreach (var value in values)
        {
            if (!float.IsFinite(value))
            {
                return false;
            }
        }

        return true;
    }
}
