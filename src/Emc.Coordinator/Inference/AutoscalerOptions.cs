namespace Emc.Coordinator.Inference;

/// <summary>How one deployment's replica count follows its load (Ray Serve's AutoscalingConfig, with faster defaults).</summary>
public sealed class AutoscalerOptions
{
    /// <summary>Fewest replicas. 0 lets an idle deployment scale to zero. Default 1.</summary>
    public int MinReplicas { get; set; } = 1;

    /// <summary>Most replicas. Default 1.</summary>
    public int MaxReplicas { get; set; } = 1;

    /// <summary>
    /// Requests per replica, queued and in flight together, that the deployment aims at (Ray Serve's
    /// target_ongoing_requests). Default 2, as in Ray Serve.
    /// </summary>
    public double TargetOngoingRequests { get; set; } = 2;

    /// <summary>
    /// The average over this window must exceed the target before scaling up. Default 5 s: with 1 s
    /// samples a sustained load is acted on within 6 s, inside the 10 s goal (Ray Serve waits 30 s + 10 s).
    /// </summary>
    public TimeSpan UpscaleWindow { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>The load must stay low, with nothing queued, for this long before one replica is removed. Default 60 s.</summary>
    public TimeSpan DownscaleWindow { get; set; } = TimeSpan.FromSeconds(60);

    /// <summary>Problems with the settings; empty when they are usable.</summary>
    public IReadOnlyList<string> Validate()
    {
        var errors = new List<string>();
        if (MinReplicas < 0 || MaxReplicas < Math.Max(1, MinReplicas))
        {
            errors.Add("MinReplicas must not be negative and MaxReplicas must be at least MinReplicas and at least 1");
        }

        if (!(TargetOngoingRequests > 0) || !double.IsFinite(TargetOngoingRequests))
        {
            errors.Add("TargetOngoingRequests must be a positive number");
        }

        if (UpscaleWindow <= TimeSpan.Zero || DownscaleWindow < UpscaleWindow)
        {
            errors.Add("UpscaleWindow must be positive and DownscaleWindow at least UpscaleWindow");
        }

        return errors;
    }
}
