using Microsoft.Extensions.Logging;

namespace Emc.Coordinator.Inference;

/// <summary>Log events of request routing (event ids 2400–2499).</summary>
internal static partial class InferenceLog
{
    [LoggerMessage(EventId = 2400, Level = LogLevel.Information, Message = "Deployment {Deployment}: replica {ReplicaId} on node {NodeId} added (cap {MaxOngoingRequests}).")]
    public static partial void ReplicaAdded(ILogger logger, string deployment, string replicaId, string nodeId, int maxOngoingRequests);

    [LoggerMessage(EventId = 2401, Level = LogLevel.Information, Message = "Deployment {Deployment}: replica {ReplicaId} on node {NodeId} removed.")]
    public static partial void ReplicaRemoved(ILogger logger, string deployment, string replicaId, string nodeId);

    [LoggerMessage(EventId = 2402, Level = LogLevel.Warning, Message = "Deployment {Deployment}: replica {ReplicaId} on node {NodeId} is unavailable (attempt {Attempt}); passed over for a while.")]
    public static partial void ReplicaUnavailable(ILogger logger, string deployment, string replicaId, string nodeId, int attempt, Exception exception);

    [LoggerMessage(EventId = 2403, Level = LogLevel.Error, Message = "Deployment {Deployment}: replica {ReplicaId} on node {NodeId} threw an unexpected exception; the request fails without retry.")]
    public static partial void ReplicaFaulted(ILogger logger, string deployment, string replicaId, string nodeId, Exception exception);

    [LoggerMessage(EventId = 2404, Level = LogLevel.Debug, Message = "Deployment {Deployment}: request refused, {Queued} requests already wait.")]
    public static partial void Overloaded(ILogger logger, string deployment, int queued);
}
