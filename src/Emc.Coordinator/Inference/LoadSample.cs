namespace Emc.Coordinator.Inference;

/// <summary>A deployment's load at one moment.</summary>
/// <param name="Timestamp">When it was taken.</param>
/// <param name="Queued">Requests waiting in the router.</param>
/// <param name="Outstanding">Requests in flight on replicas, all replicas together.</param>
/// <param name="Replicas">Replicas serving at the time.</param>
public readonly record struct LoadSample(DateTimeOffset Timestamp, int Queued, int Outstanding, int Replicas)
{
    /// <summary>Requests the deployment holds, queued and in flight.</summary>
    public int Ongoing => Queued + Outstanding;
}
