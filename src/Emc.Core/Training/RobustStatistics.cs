namespace Emc.Core.Training;

/// <summary>Median and median absolute deviation, shared by the update checks and the round deadline.</summary>
internal static class RobustStatistics
{
    /// <summary>
    /// Scales the MAD so that it estimates the standard deviation of normally distributed data
    /// (1 / Φ⁻¹(3/4)); with it, "k·MAD" reads as "k sigmas".
    /// </summary>
    public const double MadScale = 1.4826;

    /// <summary>The median of the values (mean of the two middle ones for an even count); sorts <paramref name="values"/> in place.</summary>
    public static double MedianInPlace(Span<double> values)
    {
        if (values.IsEmpty)
        {
            throw new ArgumentException("The median of no values is undefined.", nameof(values));
        }

        values.Sort();
        var middle = values.Length / 2;
        return values.Length % 2 == 1 ? values[middle] : (values[middle - 1] + values[middle]) / 2;
    }

    /// <summary>The median of the values and their scaled median absolute deviation (<see cref="MadScale"/> · MAD).</summary>
    public static (double Median, double ScaledMad) MedianAndScaledMad(ReadOnlySpan<double> values)
    {
        var work = values.ToArray();
        var median = MedianInPlace(work);
        for (var i = 0; i < work.Length; i++)
        {
            work[i] = Math.Abs(work[i] - median);
        }

        return (median, MadScale * MedianInPlace(work));
    }
}
