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

    /// <summary>Generations and engine calls streaming now, all nodes together.</summary>
    public int Streaming => _lines.Values.Sum(line => line.Streams.Count + line.EngineCalls.Count);

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

    /// <summary>
    /// An engine chunk from <paramref name="nodeId"/>: passed to its call, which ends with the chunk marked
    /// last or carrying an error. Ignored when no engine call of that node has the id. A chunk larger than
    /// an event may be, or one more than the call may hold for a slow client, ends the call.
    /// </summary>
    public void EngineChunkReceived(string nodeId, EngineChunk chunk)
    {
        ArgumentNullException.ThrowIfNull(chunk);
        if (!_lines.TryGetValue(nodeId, out var line) || !line.EngineCalls.TryGetValue(chunk.CallId, out var call))
        {
            Interlocked.Increment(ref _unmatchedReplies);
            return;
        }

        if (chunk.Data.Length > Math.Max(Core.Inference.EngineLimits.MaxEventBytes, Core.Inference.EngineLimits.PieceBytes))
        {
            call.Fail(new ReplicaUnavailableException($"node {nodeId} sent an engine chunk of {chunk.Data.Length} bytes, more than {Core.Inference.EngineLimits.MaxEventBytes}"), cancelOnNode: true);
            return;
        }

        call.Add(chunk, nodeId);
    }

    /// <summary>
    /// Sends an engine call to the node and returns its stream of chunks (the call's id is set here). The
    /// reader ends after the last chunk, or with <see cref="ReplicaUnavailableException"/> when the node's
    /// stream ends first. Disposing the stream before its end stops the engine request on the node.
    /// </summary>
    public EngineCallStream OpenEngineCall(string nodeId, EngineCall call)
    {
        ArgumentNullException.ThrowIfNull(call);
        if (!_lines.TryGetValue(nodeId, out var line))
        {
            throw new ReplicaUnavailableException($"node {nodeId} is not connected");
        }

        var id = (ulong)Interlocked.Increment(ref _nextCallId);
        call.CallId = id;
        var stream = new EngineCallStream(line, id);
        line.EngineCalls[id] = stream;
        if (line.Closed)
        {
            line.EngineCalls.TryRemove(id, out _);
            throw new ReplicaUnavailableException($"node {nodeId} disconnected");
        }

        if (!line.Outbound.TryWrite(new CoordinatorMessage { EngineCall = call }))
        {
            line.EngineCalls.TryRemove(id, out _);
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

        public ConcurrentDictionary<ulong, EngineCallStream> EngineCalls { get; } = new();

        public volatile bool Closed;

        public void Close(string nodeId)
        {
            Closed = true;
            foreach (var stream in Streams.Values)
            {
                stream.Fail(new ReplicaUnavailableException($"node {nodeId}'s stream ended during the generation"), cancelOnNode: false);
            }

            foreach (var call in EngineCalls.Values)
            {
                call.Fail(new ReplicaUnavailableException($"node {nodeId}'s stream ended during the engine call"), cancelOnNode: false);
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

    /// <summary>
    /// One call waiting for its reply; completed by the reply, the stream's end or cancellation, whichever is
    /// first. Its caller goes on synchronously on the thread that completes it: a reply finishes its request
    /// (the answer is written to the client) on the node stream's reader, with no thread-pool hop per reply.
    /// That is safe because nothing on the way blocks: calls are queued with TryWrite, and writes to clients
    /// are asynchronous (bench/README.md has what it saves).
    /// </summary>
    private sealed class PendingCall(NodeLine line, ulong id, string replicaId) : TaskCompletionSource<InferReply>(TaskCreationOptions.None)
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

    /// <summary>
    /// The chunks of one engine call on a node, in the order the node sent them. The node's stream cannot
    /// wait for a slow client, so chunks are held here up to <see cref="Core.Inference.EngineLimits.MaxBufferedBytes"/>;
    /// past that the call ends. Dispose it when done: before its last chunk that stops the engine request.
    /// </summary>
    public sealed class EngineCallStream : IDisposable
    {
        private readonly NodeLine _line;
        private readonly Channel<EngineChunk> _chunks = Channel.CreateUnbounded<EngineChunk>(new UnboundedChannelOptions { SingleReader = true });
        private long _buffered;
        private int _ended;

        internal EngineCallStream(object line, ulong callId)
        {
            _line = (NodeLine)line;
            CallId = callId;
        }

        public ulong CallId { get; }

        /// <summary>
        /// The chunks in order; ends after the last one, or throws the failure that ended the call
        /// (<see cref="ReplicaUnavailableException"/>).
        /// </summary>
        public async IAsyncEnumerable<EngineChunk> ReadAllAsync([System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken cancellationToken)
        {
            await foreach (var chunk in _chunks.Reader.ReadAllAsync(cancellationToken).ConfigureAwait(false))
            {
                Interlocked.Add(ref _buffered, -chunk.Data.Length);
                yield return chunk;
            }
        }

        public void Dispose() => Fail(null, cancelOnNode: true);

        internal void Add(EngineChunk chunk, string nodeId)
        {
            if (Interlocked.Add(ref _buffered, chunk.Data.Length) > Core.Inference.EngineLimits.MaxBufferedBytes)
            {
                Fail(new ReplicaUnavailableException($"the answer from node {nodeId} outran its client by more than {Core.Inference.EngineLimits.MaxBufferedBytes} bytes"), cancelOnNode: true);
                return;
            }

            if (!_chunks.Writer.TryWrite(chunk))
            {
                return;
            }

            if (chunk.Last || chunk.Error.Length > 0 || chunk.ErrorKind != InferErrorKind.Unspecified)
            {
                if (Interlocked.Exchange(ref _ended, 1) == 0)
                {
                    _line.EngineCalls.TryRemove(CallId, out _);
                    _chunks.Writer.TryComplete();
                }
            }
        }

        internal void Fail(Exception? error, bool cancelOnNode)
        {
            if (Interlocked.Exchange(ref _ended, 1) != 0)
            {
                return;
            }

            _line.EngineCalls.TryRemove(CallId, out _);
            _chunks.Writer.TryComplete(error);
            if (cancelOnNode && !_line.Closed)
            {
                _line.Outbound.TryWrite(new CoordinatorMessage { GenerateCancel = new GenerateCancel { CallId = CallId } });
            }
        }
    }
}
