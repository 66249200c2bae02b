using Emc.Coordinator.Inference;
using Microsoft.Extensions.Time.Testing;

namespace Emc.Coordinator.Tests.Inference;

/// <summary>Autoscaling decisions from load samples taken every second on a fake clock.</summary>
public sealed class AutoscalerTests
{
    private readonly FakeTimeProvider _clock = new(new DateTimeOffset(2026, 11, 24, 12, 0, 0, TimeSpan.Zero));

    private static AutoscalerOptions Options(int min = 1, int max = 10, double target = 2) => new()
    {
        MinReplicas = min,
        MaxReplicas = max,
        TargetOngoingRequests = target,
    };

    /// <summary>Advances one second, records a sample and decides.</summary>
    private ScaleDecision Tick(Autoscaler autoscaler, int current, int outstanding, int queued = 0)
    {
        _clock.Advance(TimeSpan.FromSeconds(1));
        autoscaler.Record(new LoadSample(_clock.GetUtcNow(), queued, outstanding, current));
        return autoscaler.Decide(current, _clock.GetUtcNow());
    }

    /// <summary>Ticks until a decision other than None, or <paramref name="seconds"/> pass; returns it with the seconds it took.</summary>
    private (ScaleDecision Decision, int Seconds) RunUntilDecision(Autoscaler autoscaler, int current, int outstanding, int queued, int seconds)
    {
        for (var second = 1; second <= seconds; second++)
        {
            var decision = Tick(autoscaler, current, outstanding, queued);
            if (decision.Direction != ScaleDirection.None)
            {
                return (decision, second);
            }
        }

        return (new ScaleDecision(ScaleDirection.None, current, "none"), seconds);
    }

    [Fact]
    public void Decide_SustainedLoadAboveTarget_ScalesUpWithinTenSeconds()
    {
        var autoscaler = new Autoscaler(Options());

        // 2 replicas at target 2 hold 4; 12 ongoing needs 6.
        var (decision, seconds) = RunUntilDecision(autoscaler, current: 2, outstanding: 8, queued: 4, seconds: 30);

        Assert.Equal(ScaleDirection.Up, decision.Direction);
        Assert.Equal(6, decision.Replicas);
        Assert.InRange(seconds, 5, 10);
    }

    [Fact]
    public void Decide_LoadArrivesAfterIdleHistory_ScalesUpWithinTenSeconds()
    {
        var autoscaler = new Autoscaler(Options());
        for (var second = 0; second < 120; second++)
        {
            Assert.Equal(ScaleDirection.None, Tick(autoscaler, current: 2, outstanding: 3).Direction);
        }

        // Load just over the target (5 ongoing on 2 replicas at target 2).
        var (decision, seconds) = RunUntilDecision(autoscaler, current: 2, outstanding: 4, queued: 1, seconds: 30);

        Assert.Equal(ScaleDirection.Up, decision.Direction);
        Assert.Equal(3, decision.Replicas);
        Assert.InRange(seconds, 1, 10);
    }

    [Fact]
    public void Decide_ShortSpike_DoesNotScaleUp()
    {
        var autoscaler = new Autoscaler(Options());
        for (var second = 0; second < 10; second++)
        {
            Tick(autoscaler, current: 2, outstanding: 0);
        }

        Assert.Equal(ScaleDirection.None, Tick(autoscaler, current: 2, outstanding: 4, queued: 2).Direction);
        Assert.Equal(ScaleDirection.None, Tick(autoscaler, current: 2, outstanding: 4, queued: 2).Direction);
        for (var second = 0; second < 10; second++)
        {
            Assert.Equal(ScaleDirection.None, Tick(autoscaler, current: 2, outstanding: 1).Direction);
        }
    }

    [Fact]
    public void Decide_LoadBeyondMaximum_ScalesUpToMaximumOnly()
    {
        var autoscaler = new Autoscaler(Options(max: 4));

        var (decision, _) = RunUntilDecision(autoscaler, current: 2, outstanding: 4, queued: 100, seconds: 10);

        Assert.Equal(new ScaleDecision(ScaleDirection.Up, 4, decision.Reason), decision);
        for (var second = 0; second < 30; second++)
        {
            Assert.Equal(ScaleDirection.None, Tick(autoscaler, current: 4, outstanding: 8, queued: 100).Direction);
        }
    }

    [Fact]
    public void Decide_LowLoad_ScalesDownOneStepPerWindowAndNeverBelowMinimum()
    {
        var autoscaler = new Autoscaler(Options(min: 1));
        var current = 3;
        var downs = new List<int>();
        for (var second = 1; second <= 300; second++)
        {
            var decision = Tick(autoscaler, current, outstanding: 1);
            Assert.NotEqual(ScaleDirection.Up, decision.Direction);
            if (decision.Direction == ScaleDirection.Down)
            {
                Assert.Equal(current - 1, decision.Replicas);
                current = decision.Replicas;
                downs.Add(second);
            }
        }

        Assert.Equal(1, current);
        Assert.Equal(2, downs.Count);
        Assert.InRange(downs[0], 60, 61);
        Assert.InRange(downs[1] - downs[0], 60, 61);
    }

    [Fact]
    public void Decide_RequestsQueuedInWindow_DoesNotScaleDown()
    {
        var autoscaler = new Autoscaler(Options(min: 1));
        for (var second = 1; second <= 120; second++)
        {
            // Mostly idle, but a request waited once every 30 s.
            var queued = second % 30 == 0 ? 1 : 0;
            Assert.Equal(ScaleDirection.None, Tick(autoscaler, current: 3, outstanding: 0, queued).Direction);
        }
    }

    [Fact]
    public void Decide_LoadNearTarget_HoldsSteady()
    {
        var autoscaler = new Autoscaler(Options(min: 1));
        for (var second = 1; second <= 300; second++)
        {
            // 3 replicas at target 2: 5 ongoing would not fit on 2.
            Assert.Equal(ScaleDirection.None, Tick(autoscaler, current: 3, outstanding: 5).Direction);
        }
    }

    [Fact]
    public void Decide_BelowMinimumOrAboveMaximum_CorrectsAtOnce()
    {
        var autoscaler = new Autoscaler(Options(min: 2, max: 5));

        Assert.Equal(new ScaleDecision(ScaleDirection.Up, 2, "below the minimum"), autoscaler.Decide(0, _clock.GetUtcNow()));
        Assert.Equal(new ScaleDecision(ScaleDirection.Down, 5, "above the maximum"), autoscaler.Decide(8, _clock.GetUtcNow()));
    }

    [Fact]
    public void Decide_AtZeroWithRequestsWaiting_ScalesUpAtOnce()
    {
        var autoscaler = new Autoscaler(Options(min: 0));
        Assert.Equal(ScaleDirection.None, Tick(autoscaler, current: 0, outstanding: 0).Direction);

        var decision = Tick(autoscaler, current: 0, outstanding: 0, queued: 5);

        Assert.Equal(ScaleDirection.Up, decision.Direction);
        Assert.Equal(3, decision.Replicas);
    }

    [Fact]
    public void Decide_IdleWithMinimumZero_ScalesToZeroAfterWindow()
    {
        var autoscaler = new Autoscaler(Options(min: 0));

        var (decision, seconds) = RunUntilDecision(autoscaler, current: 1, outstanding: 0, queued: 0, seconds: 120);

        Assert.Equal(new ScaleDecision(ScaleDirection.Down, 0, decision.Reason), decision);
        Assert.InRange(seconds, 60, 61);
    }

    [Fact]
    public void Decide_NoSamples_Holds()
    {
        var autoscaler = new Autoscaler(Options());

        Assert.Equal(ScaleDirection.None, autoscaler.Decide(2, _clock.GetUtcNow()).Direction);
    }

    [Fact]
    public void Record_KeepsOnlyTheDownscaleWindow()
    {
        var autoscaler = new Autoscaler(Options());
        for (var second = 0; second < 200; second++)
        {
            Tick(autoscaler, current: 2, outstanding: 4);
        }

        Assert.InRange(autoscaler.SampleCount, 59, 60);
    }

    [Fact]
    public void Constructor_BadOptions_Throws()
    {
        Assert.Throws<ArgumentException>(() => new Autoscaler(new AutoscalerOptions { MinReplicas = 3, MaxReplicas = 2 }));
        Assert.Throws<ArgumentException>(() => new Autoscaler(new AutoscalerOptions { TargetOngoingRequests = 0 }));
        Assert.Throws<ArgumentException>(() => new Autoscaler(new AutoscalerOptions { UpscaleWindow = TimeSpan.FromSeconds(90) }));
    }
}
