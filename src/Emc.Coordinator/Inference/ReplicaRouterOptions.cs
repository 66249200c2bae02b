namespace Emc.Coordinator.Inference;

/// <summary>Settings of one deployment's <see cref="ReplicaRouter{TRequest, TResponse}"/>.</summary>
public sealed class ReplicaRouterOptions
{
    /// <summary>
    /// Sends per request, the first included, when replicas fail for reasons of transport. Default 3:
    /// a request survives two lost nodes.
    /// </summary>
    public int MaxAttempts { get; set; } = 3;

    /// <summary>
    /// Requests that may wait for a slot (every replica at its cap, or no replica yet) before new ones
    /// fail as <see cref="RouteOutcome.Overloaded"/>. Default 1000. 0 fails at once when all are busy.
    /// </summary>
    public int MaxQueuedRequests { get; set; } = 1000;

    /// <summary>
    /// How long a replica that failed a send is passed over, unless it answers another request or the
    /// replica set changes first. Default 2 s: long enough to steer around a dead stream until the
    /// node's session is closed, short enough that a blip costs little capacity.
    /// </summary>
    public TimeSpan UnhealthyCooldown { get; set; } = TimeSpan.FromSeconds(2);

    /// <summary>
    /// First backoff (doubling, with jitter) before a retry that has to go back to a replica the request
    /// already tried, because no other exists. Retries on another replica go at once. Default 25 ms.
    /// </summary>
    public TimeSpan RetryBackoff { get; set; } = TimeSpan.FromMilliseconds(25);

    /// <summary>Ceiling of <see cref="RetryBackoff"/>'s doubling. Default 1 s.</summary>
    public TimeSpan MaxRetryBackoff { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>
    /// Malformed replies in a row (<see cref="ReplicaUnavailableException.Malformed"/>) after which the
    /// router reports a replica through <see cref="ReplicaRouter{TRequest, TResponse}.ReplicaMisbehaving"/>
    /// so that its lease is evicted. Each such reply is retried elsewhere as it comes. Default 3.
    /// </summary>
    public int EvictAfterMalformedReplies { get; set; } = 3;

    /// <summary>Problems with the settings; empty when they are usable.</summary>
    public IReadOnlyList<string> Validate()
    {
        var errors = new List<string>();
        if (MaxAttempts is < 1 or > 100)
        {
            errors.Add("MaxAttempts must be between 1 and 100");
        }

        if (EvictAfterMalformedReplies < 1)
        {
            errors.Add("EvictAfterMalformedReplies must be at least 1");
        }

        if (MaxQueuedRequests < 0)
        {
            errors.Add("MaxQueuedRequests must not be negative");
        }

        if (UnhealthyCooldown < TimeSpan.Zero)
        {
            errors.Add("UnhealthyCooldown must not be negative");
        }

        if (RetryBackoff < TimeSpan.Zero || MaxRetryBackoff < RetryBackoff)
        {
            errors.Add("RetryBackoff must not be negative and MaxRetryBackoff must be at least RetryBackoff");
        }

        return errors;
    }
}
