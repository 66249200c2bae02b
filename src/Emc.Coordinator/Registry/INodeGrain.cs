namespace Emc.Coordinator.Registry;

/// <summary>
/// The one owner of a node's live presence (keyed by its address). The gateway reports the node's
/// session events; the grain decides its status and marks it lost when heartbeats stop.
/// </summary>
public interface INodeGrain : IGrainWithStringKey
{
    /// <summary>A verified session starts; any earlier session of the node is superseded.</summary>
    Task Attach(string sessionId);

    /// <summary>Records a heartbeat; false when <paramref name="sessionId"/> is no longer the node's session.</summary>
    Task<bool> Heartbeat(string sessionId, int runningTasks);

    /// <summary>The node asked to drain.</summary>
    Task Drain(string sessionId);

    /// <summary>The session's stream ended: cleanly after a goodbye, or not.</summary>
    Task Detach(string sessionId, bool graceful);
}
