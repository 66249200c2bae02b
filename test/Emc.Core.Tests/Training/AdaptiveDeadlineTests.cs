using Emc.Core.Training;

namespace Emc.Core.Tests.Training;

public class AdaptiveDeadlineTests
{
    private static readonly AdaptiveDeadlineOptions Defaults = new();

    [Fact]
    public void Next_NoHistory_ReturnsInitial()
    {
        Assert.Equal(TimeSpan.FromMinutes(10), AdaptiveDeadline.Next([], Defaults));
    }

    [Fact]
    public void Next_OnlyUnusableTimes_ReturnsInitial()
    {
        Assert.Equal(TimeSpan.FromMinutes(10), AdaptiveDeadline.Next([double.NaN, -1, double.PositiveInfinity], Defaults));
    }

    [Fact]
    public void Next_IdenticalTimes_IsTheTimeWithSlack()
    {
        Assert.Equal(125, AdaptiveDeadline.Next([100, 100, 100], Defaults).TotalSeconds, 1e-6);
    }

    [Fact]
    public void Next_SpreadTimes_IsMedianPlusThreeScaledMadWithSlack()
    {
        // Median 12, MAD 2: (12 + 3 · 1.4826 · 2) · 1.25.
        Assert.Equal((12 + (3 * 1.4826 * 2)) * 1.25, AdaptiveDeadline.Next([14, 10, 12], Defaults).TotalSeconds, 1e-6);
    }

    [Fact]
    public void Next_OneStraggler_BarelyMovesTheDeadline()
    {
        // Median 61, MAD 1: the hour-long straggler does not count.
        Assert.Equal((61 + (3 * 1.4826)) * 1.25, AdaptiveDeadline.Next([60, 62, 58, 61, 3600], Defaults).TotalSeconds, 1e-6);
    }

    [Fact]
    public void Next_VeryFastRounds_ClampsToMin()
    {
        Assert.Equal(TimeSpan.FromSeconds(5), AdaptiveDeadline.Next([1, 1, 1], Defaults));
    }

    [Fact]
    public void Next_VerySlowRounds_ClampsToMax()
    {
        Assert.Equal(TimeSpan.FromMinutes(30), AdaptiveDeadline.Next([7200, 7000, 1e300], Defaults));
    }

    [Fact]
    public void Next_CustomOptions_AreUsed()
    {
        var options = new AdaptiveDeadlineOptions { MadMultiplier = 0, Slack = 2, Min = TimeSpan.FromSeconds(1) };

        Assert.Equal(TimeSpan.FromSeconds(20), AdaptiveDeadline.Next([10, 10, 50], options));
    }

    [Fact]
    public void Next_InvalidOptions_Throws()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => AdaptiveDeadline.Next([], new AdaptiveDeadlineOptions { Min = TimeSpan.Zero }));
        Assert.Throws<ArgumentOutOfRangeException>(() => AdaptiveDeadline.Next([], new AdaptiveDeadlineOptions { Max = TimeSpan.FromSeconds(1) }));
        Assert.Throws<ArgumentOutOfRangeException>(() => AdaptiveDeadline.Next([], new AdaptiveDeadlineOptions { Slack = 0.5 }));
    }
}
