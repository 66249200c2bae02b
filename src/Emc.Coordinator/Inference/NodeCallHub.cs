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

    /// <summary>Generations streaming now, all nodes together.</summary>
    public int Streaming => _lines.Values.Sum(line => line.Streams.Count);

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

    /// <summary>
    /// A generation chunk from <paramref name="nodeId"/>: passed to its stream, which ends with the chunk
    /// that has a finish reason or an error. Ignored when no stream of that node has the id. A node that
    /// sends more chunks than the stream holds ends it (a byte model sends at most one per token).
    /// </summary>
    public void ChunkReceived(string nodeId, GenerateChunk chunk)
    {
        if (!_lines.TryGetValue(nodeId, out var line) || !line.Streams.TryGetValue(chunk.CallId, out var stream))
        {
            Interlocked.Increment(ref _unmatchedReplies);
            return;
        }

        var last = chunk.FinishReason.Length > 0 || chunk.Error.Length > 0 || chunk.ErrorKind != InferErrorKind.Unspecified;
        if (!stream.Writer.TryWrite(chunk))
        {
            stream.Fail(new ReplicaUnavailableException($"node {nodeId} sent more chunks than the generation allows"), cancelOnNode: true);
        }
        else if (last)
        {
            stream.Finish();
        }
    }

    /// <summary>
    /// Sends a generation to the node and returns its stream of chunks (the call's id is set here). The
    /// reader ends after the last chunk, or with <see cref="ReplicaUnavailableException"/> when the node's
    /// stream ends first. Disposing the stream before its end cancels the generation on the node.
    /// </summary>
    /// <param name="nodeId">The node the replica runs on.</param>
    /// <param name="call">The generation.</param>
    /// <param name="capacity">Chunks the stream holds at most (the tokens asked for, and the last chunk).</param>
    public GenerationStream OpenGeneration(string nodeId, GenerateCall call, int capacity)
    {
        ArgumentNullException.ThrowIfNull(call);
        if (!_lines.TryGetValue(nodeId, out var line))
        {
            throw new ReplicaUnavailableException($"node {nodeId} is not connected");
        }

        var id = (ulong)Interlocked.Increment(ref _nextCallId);
        call.CallId = id;
        var stream = new GenerationStream(line, id, capacity);
        line.Streams[id] = stream;
        if (line.Closed)
        {
            line.Streams.TryRemove(id, out _);
            throw new ReplicaUnavailableException($"node {nodeId} disconnected");
        }

        if (!line.Outbound.TryWrite(new CoordinatorMessage { GenerateCall = call }))
        {
            line.Streams.TryRemove(id, out _);
            throw new ReplicaUnavailableException($"node {nodeId}'s stream is full or closed");
        }

        return stream;
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

        public ConcurrentDictionary<ulong, GenerationStream> Streams { get; } = new();

        public volatile bool Closed;

        public void Close(string nodeId)
        {
            Closed = true;
            foreach (var stream in Streams.Values)
            {
                stream.Fail(new ReplicaUnavailableException($"node {nodeId}'s stream ended during the generation"), cancelOnNode: false);
            }

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

    /// <summary>
    /// The chunks of one generation on a node, in the order the node sent them. Dispose it when done:
    /// before its last chunk that tells the node to stop.
    /// </summary>
    public sealed class GenerationStream : IDisposable
    {
        private readonly NodeLine _line;
        private readonly Channel<GenerateChunk> _chunks;
        private int _ended;

        internal GenerationStream(object line, ulong callId, int capacity)
        {
            _line = (NodeLine)line;
            CallId = callId;
            _chunks = Channel.CreateBounded<GenerateChunk>(new BoundedChannelOptions(Math.Max(2, capacity))
            {
                SingleReader = true,
                FullMode = BoundedChannelFullMode.Wait,
            });
        }

        public ulong CallId { get; }

        /// <summary>The chunks; completes after the last one, or with the failure that ended the stream.</summary>
        public ChannelReader<GenerateChunk> Chunks => _chunks.Reader;

        internal ChannelWriter<GenerateChunk> Writer => _chunks.Writer;

        public void Dispose() => Fail(null, cancelOnNode: true);

        internal void Finish()
        {
            if (Interlocked.Exchange(ref _ended, 1) == 0)
            {
                _line.Streams.TryRemove(CallId, out _);
                _chunks.Writer.TryComplete();
            }
        }

        internal void Fail(Exception? error, bool cancelOnNode)
        {
            if (Interlocked.Exchange(ref _ended, 1) != 0)
            {
                return;
            }

            _line.Streams.TryRemove(CallId, out _);
            _chunks.Writer.TryComplete(error);
            if (cancelOnNode && !_line.Closed)
            {
                _line.Outbound.TryWrite(new CoordinatorMessage { GenerateCancel = new GenerateCancel { CallId = CallId } });
            }
        }
    }
}
