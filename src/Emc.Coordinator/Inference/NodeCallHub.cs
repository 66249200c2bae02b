using System.Collections.Concurrent;
using System.Threading.Channels;
using Emc.Contracts.Node.V1;

namespace Emc.Coordinator.Inference;

/// <summary>
/// Inference calls in flight on the nodes' streams. A call is queued for the node's single stream
/// writer and waits for the <see cref="InferReply"/> with its id; replies are matched only among the
/// calls sent to the node that answers, so a node cannot answer for another. When a node's stream
/// ends every call waiting on it fails with <see cref="ReplicaUnavailableException"/>, which the router
/// retries on another replica. The gateway reports sessions, replies and replica status here.
/// </summary>
public sealed class NodeCallHub
{
    private readonly ConcurrentDictionary<string, NodeLine> _lines = new(StringComparer.Ordinal);
    private long _nextCallId;
    private long _unmatchedReplies;

    /// <summary>A node said one of its replicas is ready, or no longer serving: (node id, replica id, ready, reason).</summary>
    public event Action<string, string, bool, string>? ReplicaStatusChanged;

    /// <summary>A node's session ended (its replicas cannot be reached until it reconnects and says they are ready again).</summary>
    public event Action<string>? NodeGone;

    /// <summary>Replies that matched no call in flight (late after a deadline, or forged), since the start.</summary>
    public long UnmatchedReplies => Interlocked.Read(ref _unmatchedReplies);

    /// <summary>Calls waiting for replies now, all nodes together.</summary>
    public int Pending => _lines.Values.Sum(line => line.Pending.Count);

    /// <summary>A node's session is registered: calls to it go to <paramref name="outbound"/>.</summary>
    public void SessionOpened(string nodeId, string sessionId, ChannelWriter<CoordinatorMessage> outbound)
    {
        var line = new NodeLine(sessionId, outbound);
        NodeLine? previous = null;
        _lines.AddOrUpdate(nodeId, line, (_, old) =>
        {
            previous = old;
            return line;
        });
        previous?.Close(nodeId);
    }

    /// <summary>A node's session ended: its calls fail as unavailable.</summary>
    public void SessionClosed(string nodeId, string sessionId)
    {
        if (_lines.TryGetValue(nodeId, out var line) && line.SessionId == sessionId)
        {
            _lines.TryRemove(new KeyValuePair<string, NodeLine>(nodeId, line));
            line.Close(nodeId);
            NodeGone?.Invoke(nodeId);
        }
    }

    /// <summary>
    /// Fails the calls waiting on one replica with <see cref="ReplicaUnavailableException"/>, so that the
    /// router retries them elsewhere. For a replica whose lease ended while its node's stream stays open
    /// (a node lost by its heartbeats keeps its connection): nothing else would end those calls before
    /// their deadlines. A reply that comes later is ignored as unmatched.
    /// </summary>
    /// <returns>How many calls were failed.</returns>
    public int AbandonReplica(string nodeId, string replicaId, string reason)
    {
        if (!_lines.TryGetValue(nodeId, out var line))
        {
            return 0;
        }

        var failed = 0;
        foreach (var entry in line.Pending)
        {
            if (entry.Value.ReplicaId == replicaId && line.Pending.TryRemove(entry))
            {
                entry.Value.TrySetException(new ReplicaUnavailableException($"replica {replicaId} on node {nodeId}: {reason}"));
                failed++;
            }
        }

        return failed;
    }

    /// <summary>A reply from <paramref name="nodeId"/>: completes its call; ignored when no call of that node has the id.</summary>
    public void ReplyReceived(string nodeId, InferReply reply)
    {
        if (_lines.TryGetValue(nodeId, out var line) && line.Pending.TryRemove(reply.CallId, out var call))
        {
            call.TrySetResult(reply);
        }
        else
        {
            Interlocked.Increment(ref _unmatchedReplies);
        }
    }

    /// <summary>A replica status from <paramref name="nodeId"/>.</summary>
    public void StatusReceived(string nodeId, ReplicaStatus status) =>
        ReplicaStatusChanged?.Invoke(nodeId, status.ReplicaId, status.Ready, status.Reason);

    /// <summary>
    /// Sends <paramref name="call"/> (its id is set here) to the node and waits for the reply. Throws
    /// <see cref="ReplicaUnavailableException"/> when the node is not connected, its queue is full or
    /// its stream ends first, and <see cref="OperationCanceledException"/> when the token fires.
    /// </summary>
    public async Task<InferReply> CallAsync(string nodeId, InferCall call, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        if (!_lines.TryGetValue(nodeId, out var line))
        {
            throw new ReplicaUnavailableException($"node {nodeId} is not connected");
        }

        var id = (ulong)Interlocked.Increment(ref _nextCallId);
        call.CallId = id;
        var pending = new PendingCall(line, id, call.ReplicaId);
        line.Pending[id] = pending;
        if (line.Closed)
        {
            // Closed between the lookup and the registration: Close may not have seen this call.
            line.Pending.TryRemove(id, out _);
            throw new ReplicaUnavailableException($"node {nodeId} disconnected");
        }

        if (!line.Outbound.TryWrite(new CoordinatorMessage { InferCall = call }))
        {
            line.Pending.TryRemove(id, out _);
            throw new ReplicaUnavailableException($"node {nodeId}'s stream is full or closed");
        }

        using var registration = cancellationToken.UnsafeRegister(static (state, token) => ((PendingCall)state!).Cancel(token), pending);
        return await pending.Task.ConfigureAwait(false);
    }

    private sealed class NodeLine(string sessionId, ChannelWriter<CoordinatorMessage> outbound)
    {
        public string SessionId { get; } = sessionId;

        public ChannelWriter<CoordinatorMessage> Outbound { get; } = outbound;

        public ConcurrentDictionary<ulong, PendingCall> Pending { get; } = new();

        public volatile bool Closed;

        public void Close(string nodeId)
        {
            Closed = true;
            foreach (var id in Pending.Keys)
            {
                if (Pending.TryRemove(id, out var call))
                {
                    call.TrySetException(new ReplicaUnavailableException($"node {nodeId}'s stream ended before it answered"));
                }
            }
        }
    }

    /// <summary>One call waiting for its reply; completed by the reply, the stream's end or cancellation, whichever is first.</summary>
    private sealed class PendingCall(NodeLine line, ulong id, string replicaId) : TaskCompletionSource<InferReply>(TaskCreationOptions.RunContinuationsAsynchronously)
    {
        public string ReplicaId { get; } = replicaId;

        public void Cancel(CancellationToken token)
        {
            line.Pending.TryRemove(id, out _);
            TrySetCanceled(token);
        }
    }
}
