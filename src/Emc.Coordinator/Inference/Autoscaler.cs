namespace Emc.Coordinator.Inference;

/// <summary>
/// Decides one deployment's replica count from samples of its load. No clock, no I/O: the caller
/// records samples (say every second, from the deployment router's Sample())
/// and asks for a decision with the time now, so it is deterministic under a fake clock.
/// </summary>
/// <remarks>
/// Up: when the average of queued plus in-flight requests over <see cref="AutoscalerOptions.UpscaleWindow"/>
/// exceeds the target per replica, to as many replicas as that average needs (Ray Serve's rule), at most
/// the maximum. Down: one replica at a time, when for all of <see cref="AutoscalerOptions.DownscaleWindow"/>
/// nothing was queued and even the peak load would have fit on one replica fewer, never below the minimum.
/// Each window counts only time observed since the last decision, so the effect of one change is
/// seen before the next.
/// </remarks>
public sealed class Autoscaler
{
    // Below this a ratio is a rounding error, not load: 4.0000000001 requests at target 1 need 4 replicas.
    private const double Epsilon = 1e-9;

    private readonly AutoscalerOptions _options;
    private readonly Queue<LoadSample> _samples = new();
    private DateTimeOffset? _observedSince;
    private LoadSample _latest;

    public Autoscaler(AutoscalerOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        var errors = options.Validate();
        if (errors.Count > 0)
        {
            throw new ArgumentException(string.Join("; ", errors), nameof(options));
        }

        _options = options;
    }

    /// <summary>Samples held (those inside the longer window).</summary>
    public int SampleCount => _samples.Count;

    /// <summary>Adds a sample. Samples must come in time order; an older one than the last is ignored.</summary>
    public void Record(LoadSample sample)
    {
        if (_samples.Count > 0 && sample.Timestamp < _latest.Timestamp)
        {
            return;
        }

        _samples.Enqueue(sample);
        _latest = sample;
        _observedSince ??= sample.Timestamp;
        var horizon = sample.Timestamp - _options.DownscaleWindow;
        while (_samples.Peek().Timestamp <= horizon)
        {
            _samples.Dequeue();
        }
    }

    /// <summary>
    /// The decision at <paramref name="now"/> for a deployment of <paramref name="currentReplicas"/>
    /// (replicas starting included). A decision other than None starts a new observation period.
    /// </summary>
    public ScaleDecision Decide(int currentReplicas, DateTimeOffset now)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(currentReplicas);
        var decision = DecideCore(currentReplicas, now);
        if (decision.Direction != ScaleDirection.None)
        {
            _observedSince = now;
        }

        return decision;
    }

    private ScaleDecision DecideCore(int current, DateTimeOffset now)
    {
        if (current < _options.MinReplicas)
        {
            return new ScaleDecision(ScaleDirection.Up, _options.MinReplicas, "below the minimum");
        }

        if (current > _options.MaxReplicas)
        {
            return new ScaleDecision(ScaleDirection.Down, _options.MaxReplicas, "above the maximum");
        }

        if (_samples.Count == 0 || _observedSince is not { } since)
        {
            return Hold(current, "no samples");
        }

        var latest = _latest;
        if (current == 0)
        {
            // Requests are waiting for a replica that does not exist: no window can make that better.
            return latest.Ongoing > 0 && now - latest.Timestamp < _options.UpscaleWindow
                ? new ScaleDecision(ScaleDirection.Up, Clamp(Needed(latest.Ongoing)), "requests wait and no replica runs")
                : Hold(current, "idle at zero");
        }

        var observed = now - since;
        if (observed >= _options.UpscaleWindow && Window(now, _options.UpscaleWindow, since) is { Count: > 0 } recent)
        {
            var average = recent.Average(sample => (double)sample.Ongoing);
            var needed = Clamp(Needed(average));
            if (average > _options.TargetOngoingRequests * current && needed > current)
            {
                return new ScaleDecision(ScaleDirection.Up, needed, $"average load {average:0.##} over {_options.UpscaleWindow.TotalSeconds:0.#} s exceeds target {_options.TargetOngoingRequests:0.##} × {current}");
            }
        }

        if (current > _options.MinReplicas
            && observed >= _options.DownscaleWindow
            && Window(now, _options.DownscaleWindow, since) is { Count: > 0 } all
            && all.All(sample => sample.Queued == 0))
        {
            var peak = all.Max(sample => sample.Ongoing);
            if (Needed(peak) < current)
            {
                return new ScaleDecision(ScaleDirection.Down, current - 1, $"peak load {peak} over {_options.DownscaleWindow.TotalSeconds:0.#} s fits on {current - 1}");
            }
        }

        return Hold(current, "load within target");
    }

    private List<LoadSample> Window(DateTimeOffset now, TimeSpan length, DateTimeOffset since)
    {
        var start = now - length;
        return [.. _samples.Where(sample => sample.Timestamp > start && sample.Timestamp >= since && sample.Timestamp <= now)];
    }

    private int Needed(double ongoing) => (int)Math.Ceiling(ongoing / _options.TargetOngoingRequests - Epsilon);

    private int Clamp(int replicas) => Math.Clamp(replicas, Math.Max(1, _options.MinReplicas), _options.MaxReplicas);

    private static ScaleDecision Hold(int current, string reason) => new(ScaleDirection.None, current, reason);
}
