namespace Emc.Coordinator.Inference;

/// <summary>Settings of the <see cref="DeploymentService"/>.</summary>
public sealed class DeploymentOptions
{
    /// <summary>How often each deployment's load is sampled for its autoscaler and its replicas reconciled. Default 1 s.</summary>
    public TimeSpan ScaleInterval { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>Requests per replica, queued and in flight, that the autoscaler aims at. Default 2 (Ray Serve's).</summary>
    public double TargetOngoingRequests { get; set; } = 2;

    /// <summary>How long the load must stay above target before a scale-up. Default 5 s (acted on within 6 s).</summary>
    public TimeSpan UpscaleWindow { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>How long the load must stay low before one replica is removed. Default 60 s.</summary>
    public TimeSpan DownscaleWindow { get; set; } = TimeSpan.FromSeconds(60);

    /// <summary>Routing settings of every deployment (attempts, queue, backoff).</summary>
    public ReplicaRouterOptions Router { get; set; } = new();
}
