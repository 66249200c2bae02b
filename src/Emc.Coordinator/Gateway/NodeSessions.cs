using System.Collections.Concurrent;
using System.Threading.Channels;
using Emc.Contracts.Node.V1;

namespace Emc.Coordinator.Gateway;

/// <summary>
/// The node streams open on this process. A node that reconnects supersedes its earlier stream
/// (whose TCP connection may be half-open), and stopping the coordinator ends them all. Each
/// session has one outbound queue, drained by one writer, because a gRPC stream takes one write
/// at a time.
/// </summary>
public sealed class NodeSessions : IDisposable
{
    /// <summary>Messages waiting for a node's stream before new ones are dropped (the protocol recovers from drops).</summary>
    public const int OutboundCapacity = 4096;

    private readonly ConcurrentDictionary<string, Session> _byNode = new(StringComparer.Ordinal);
    private readonly CancellationTokenSource _stopping = new();

    /// <summary>Cancelled when the coordinator stops.</summary>
    public CancellationToken Stopping => _stopping.Token;

    public int Count => _byNode.Count;

    /// <summary>
    /// A new outbound queue for a session. When it is full, <c>TryWrite</c> answers false, so a caller
    /// knows its message was not queued (an inference call fails over to another replica at once
    /// instead of waiting for a reply to a message that was never sent).
    /// </summary>
    public static Channel<CoordinatorMessage> CreateOutbound() => Channel.CreateBounded<CoordinatorMessage>(
        new BoundedChannelOptions(OutboundCapacity)
        {
            FullMode = BoundedChannelFullMode.Wait,
            SingleReader = true,
            // The session's writer loop wakes on the writer's thread: an inference call goes onto the
            // stream from the request's own thread instead of waiting for a thread-pool hop.
            AllowSynchronousContinuations = true,
        });

    /// <summary>Makes <paramref name="sessionId"/> the node's stream, ending the earlier one.</summary>
    public void Open(string address, string sessionId, CancellationTokenSource cancel, Channel<CoordinatorMessage> outbound)
    {
        var session = new Session(sessionId, cancel, outbound);
        _byNode.AddOrUpdate(
            address,
            session,
            (_, previous) =>
            {
                previous.Cancel.Cancel();
                return session;
            });
    }

    public void Close(string address, string sessionId)
    {
        if (_byNode.TryGetValue(address, out var entry) && entry.SessionId == sessionId)
        {
            _byNode.TryRemove(new KeyValuePair<string, Session>(address, entry));
        }
    }

    /// <summary>Queues a message for the node's current stream; false when it is not connected or its queue is full.</summary>
    public bool TrySend(string address, CoordinatorMessage message) =>
        _byNode.TryGetValue(address, out var session) && session.Outbound.Writer.TryWrite(message);

    /// <summary>Ends every stream: the coordinator is shutting down.</summary>
    public void StopAll() => _stopping.Cancel();

    public void Dispose() => _stopping.Dispose();

    private sealed record Session(string SessionId, CancellationTokenSource Cancel, Channel<CoordinatorMessage> Outbound);
}
