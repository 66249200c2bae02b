namespace Emc.Coordinator.Inference;

/// <summary>
/// One replica of a deployment as the router sees it: a model loaded on one node, reached over that
/// node's stream. The transport implements it; the router only counts, picks and retries.
/// </summary>
/// <typeparam name="TRequest">The inference request the transport sends.</typeparam>
/// <typeparam name="TResponse">The replica's answer.</typeparam>
public interface IReplica<in TRequest, TResponse>
{
    /// <summary>Unique within the deployment. Adding a replica with an id already held replaces the old one.</summary>
    string ReplicaId { get; }

    /// <summary>The node the replica runs on (so all of a node's replicas can be removed when it goes).</summary>
    string NodeId { get; }

    /// <summary>
    /// The most requests the router keeps in flight on this replica at once (Ray Serve's
    /// max_ongoing_requests, default 5 there). At least 1. Read once, when the replica is added.
    /// </summary>
    int MaxOngoingRequests { get; }

    /// <summary>
    /// Sends one request and waits for its answer. Throws <see cref="ReplicaUnavailableException"/>
    /// when the request may not have run because the replica cannot be reached (node gone, stream
    /// broken, replica removed mid-request), <see cref="ReplicaRejectedException"/> when the model
    /// answered with an error, and <see cref="OperationCanceledException"/> when
    /// <paramref name="cancellationToken"/> fires (the router's deadline or the caller).
    /// </summary>
    Task<TResponse> SendAsync(TRequest request, CancellationToken cancellationToken);
}
