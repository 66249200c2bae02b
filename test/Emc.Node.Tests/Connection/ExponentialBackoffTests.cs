using Emc.Node.Connection;

namespace Emc.Node.Tests.Connection;

public sealed class ExponentialBackoffTests
{
    private static readonly TimeSpan Initial = TimeSpan.FromMilliseconds(100);
    private static readonly TimeSpan Maximum = TimeSpan.FromSeconds(10);

    [Fact]
    public void NextDelay_EachAttempt_StaysWithinHalfCeilingAndCeiling()
    {
        var backoff = new ExponentialBackoff(Initial, Maximum, new Random(42));
        for (var attempt = 0; attempt < 40; attempt++)
        {
            var ceiling = Math.Min(Maximum.TotalMilliseconds, Initial.TotalMilliseconds * Math.Pow(2, attempt));

            var delay = backoff.NextDelay().TotalMilliseconds;

            Assert.InRange(delay, ceiling / 2, ceiling);
        }
    }

    [Fact]
    public void NextDelay_BeforeTheCap_GrowsRoughlyTwofold()
    {
        // Attempt k lies in [c/2, c] and attempt k+1 in [c, 2c]: never shrinking, at most four times larger.
        var backoff = new ExponentialBackoff(Initial, Maximum, new Random(42));
        var previous = backoff.NextDelay();
        for (var attempt = 1; attempt < 7; attempt++)
        {
            var delay = backoff.NextDelay();

            Assert.InRange(delay / previous, 1.0, 4.0);
            previous = delay;
        }

        Assert.True(previous > 16 * Initial, $"after 7 attempts the delay is only {previous}");
    }

    [Fact]
    public void NextDelay_ExtremesOfJitter_AreHalfCeilingAndCeiling()
    {
        var low = new ExponentialBackoff(Initial, Maximum, new FixedRandom(0.0));
        var high = new ExponentialBackoff(Initial, Maximum, new FixedRandom(1.0));

        Assert.Equal([50, 100, 200, 400, 800], Enumerable.Range(0, 5).Select(_ => low.NextDelay().TotalMilliseconds));
        Assert.Equal([100, 200, 400, 800, 1600], Enumerable.Range(0, 5).Select(_ => high.NextDelay().TotalMilliseconds));
    }

    [Fact]
    public void NextDelay_ManyAttempts_CappedAtMaximum()
    {
        var backoff = new ExponentialBackoff(Initial, Maximum, new FixedRandom(1.0));

        var delays = Enumerable.Range(0, 1000).Select(_ => backoff.NextDelay()).ToList();

        Assert.All(delays, d => Assert.True(d <= Maximum, $"{d} is above the maximum"));
        Assert.Equal(Maximum, delays[^1]);
        Assert.Equal(1000, backoff.Attempt);
    }

    [Fact]
    public void NextDelay_AtTheCap_HasJitter()
    {
        var backoff = new ExponentialBackoff(Initial, Maximum, new Random(1234));
        for (var i = 0; i < 10; i++)
        {
            backoff.NextDelay();
        }

        var capped = Enumerable.Range(0, 20).Select(_ => backoff.NextDelay()).ToList();

        Assert.True(capped.Distinct().Count() > 10, "capped delays should spread, not repeat one value");
        Assert.All(capped, d => Assert.InRange(d, Maximum / 2, Maximum));
    }

    [Fact]
    public void NextDelay_TwoNodesWithDifferentSeeds_WaitDifferentTimes()
    {
        var first = new ExponentialBackoff(Initial, Maximum, new Random(1));
        var second = new ExponentialBackoff(Initial, Maximum, new Random(2));

        var a = Enumerable.Range(0, 5).Select(_ => first.NextDelay()).ToList();
        var b = Enumerable.Range(0, 5).Select(_ => second.NextDelay()).ToList();

        Assert.NotEqual(a, b);
    }

    [Fact]
    public void NextDelay_SameSeed_IsReproducible()
    {
        var first = new ExponentialBackoff(Initial, Maximum, new Random(99));
        var second = new ExponentialBackoff(Initial, Maximum, new Random(99));

        Assert.Equal(
            Enumerable.Range(0, 8).Select(_ => first.NextDelay()),
            Enumerable.Range(0, 8).Select(_ => second.NextDelay()));
    }

    [Fact]
    public void Attempt_CountsEachDelay()
    {
        var backoff = new ExponentialBackoff(Initial, Maximum, new Random(5));
        Assert.Equal(0, backoff.Attempt);

        backoff.NextDelay();
        backoff.NextDelay();
        backoff.NextDelay();

        Assert.Equal(3, backoff.Attempt);
    }

    [Fact]
    public void Reset_AfterFailures_StartsFromInitialDelay()
    {
        var backoff = new ExponentialBackoff(Initial, Maximum, new Random(8));
        for (var i = 0; i < 12; i++)
        {
            backoff.NextDelay();
        }

        backoff.Reset();

        Assert.Equal(0, backoff.Attempt);
        Assert.InRange(backoff.NextDelay(), Initial / 2, Initial);
        Assert.InRange(backoff.NextDelay(), Initial, 2 * Initial);
    }

    [Fact]
    public void Constructor_MaximumBelowInitial_Refused()
    {
        var ex = Assert.Throws<ArgumentOutOfRangeException>(() => new ExponentialBackoff(Initial, TimeSpan.FromMilliseconds(40)));
        Assert.Equal("maximum", ex.ParamName);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(-5)]
    public void Constructor_InitialNotPositive_RefusedSoTheLoopCannotSpin(int milliseconds)
    {
        var ex = Assert.Throws<ArgumentOutOfRangeException>(() => new ExponentialBackoff(TimeSpan.FromMilliseconds(milliseconds), TimeSpan.FromSeconds(1)));
        Assert.Equal("initial", ex.ParamName);
    }

    private sealed class FixedRandom(double value) : Random
    {
        public override double NextDouble() => value;
    }
}
