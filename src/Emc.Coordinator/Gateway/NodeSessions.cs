using System.Collections.Concurrent;

namespace Emc.Coordinator.Gateway;

/// <summary>
/// The node streams open on this process. A node that reconnects supersedes its earlier stream
/// (whose TCP connection may be half-open), and stopping the coordinator ends them all.
/// </summary>
public sealed class NodeSessions : IDisposable
{
    private readonly ConcurrentDictionary<string, (string SessionId, CancellationTokenSource Cancel)> _byNode = new(StringComparer.Ordinal);
    private readonly CancellationTokenSource _stopping = new();

    /// <summary>Cancelled when the coordinator stops.</summary>
    public CancellationToken Stopping => _stopping.Token;

    public int Count => _byNode.Count;

    /// <summary>Makes <paramref name="sessionId"/> the node's stream, ending the earlier one.</summary>
    public void Open(string address, string sessionId, CancellationTokenSource cancel)
    {
        _byNode.AddOrUpdate(
            address,
            (sessionId, cancel),
            (_, previous) =>
            {
                previous.Cancel.Cancel();
                return (sessionId, cancel);
            });
    }

    public void Close(string address, string sessionId)
    {
        _byNode.TryRemove(new KeyValuePair<string, (string, CancellationTokenSource)>(address, Find(address, sessionId)));
    }

    /// <summary>Ends every stream: the coordinator is shutting down.</summary>
    public void StopAll() => _stopping.Cancel();

    public void Dispose() => _stopping.Dispose();

    private (string, CancellationTokenSource) Find(string address, string sessionId) =>
        _byNode.TryGetValue(address, out var entry) && entry.SessionId == sessionId ? entry : default;
}
