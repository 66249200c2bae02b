using Emc.Contracts.Node.V1;
using Emc.Coordinator.Observability;
using Emc.Coordinator.Persistence;
using Emc.Coordinator.Hosting;
using Emc.Coordinator.Inference;
using Emc.Coordinator.Registry;
using Emc.Coordinator.Scheduling;
using Emc.Core.Identity;
using Emc.Core.Registry;
using System.Threading.Channels;
using Emc.Core.Scheduling;
using Grpc.Core;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Emc.Coordinator.Gateway;

/// <summary>
/// The node-facing gRPC service: a thin adapter that runs the session protocol on the node's stream
/// and hands verified events to the registry.
/// </summary>
public sealed partial class NodeGatewayService(
    ChallengeIssuer challenges,
    RegistrationVerifier verifier,
    NodeStore store,
    NodeSessions sessions,
    IGrainFactory grains,
    SchedulerService scheduler,
    NodeCallHub calls,
    CoordinatorIdentity identity,
    IOptions<RegistryOptions> options,
    ILogger<NodeGatewayService> logger) : NodeGateway.NodeGatewayBase
{
    /// <summary>The protocol version this coordinator speaks.</summary>
    public const uint ProtocolVersion = 1;

    private readonly RegistryOptions _options = options.Value;

    public override async Task Connect(
        IAsyncStreamReader<NodeMessage> requestStream,
        IServerStreamWriter<CoordinatorMessage> responseStream,
        ServerCallContext context)
    {
        using var sessionCancel = CancellationTokenSource.CreateLinkedTokenSource(context.CancellationToken, sessions.Stopping);
        var cancellationToken = sessionCancel.Token;

        // Hello and the signed answer must both come before the challenge expires.
        var challenge = challenges.Issue();
        using var handshakeTimeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        handshakeTimeout.CancelAfter(_options.ChallengeLifetime);

        var hello = await ReadAsync(requestStream, handshakeTimeout.Token);
        if (hello?.BodyCase != NodeMessage.BodyOneofCase.Hello)
        {
            await RefuseAsync(responseStream, RefusalCode.Protocol, "the first message on the stream must be hello", cancellationToken);
            return;
        }

        if (hello.Hello.ProtocolVersion != ProtocolVersion)
        {
            await RefuseAsync(responseStream, RefusalCode.Version, $"protocol version {hello.Hello.ProtocolVersion} is not supported; this coordinator speaks {ProtocolVersion}", cancellationToken);
            return;
        }

        if (!EthAddress.TryParse(hello.Hello.Address, out var address))
        {
            await RefuseAsync(responseStream, RefusalCode.Protocol, $"'{Truncate(hello.Hello.Address)}' is not a node address (0x and 40 hex digits)", cancellationToken);
            return;
        }

        await responseStream.WriteAsync(
            new CoordinatorMessage
            {
                Challenge = new Challenge
                {
                    Nonce = Google.Protobuf.ByteString.CopyFrom(challenge.Nonce),
                    CoordinatorId = identity.Id,
                    ExpiresUnixMs = challenge.ExpiresAt.ToUnixTimeMilliseconds(),
                },
            },
            cancellationToken);

        var answer = await ReadAsync(requestStream, handshakeTimeout.Token);
        if (answer?.BodyCase != NodeMessage.BodyOneofCase.Register)
        {
            await RefuseAsync(responseStream, RefusalCode.Protocol, "the answer to the challenge must be register", cancellationToken);
            return;
        }

        var (node, refusal) = verifier.Verify(address.Value, identity.Id, challenge, answer.Register);
        if (refusal is not null)
        {
            Log.RegistrationRefused(logger, address.Value.ToString(), refusal.Code, refusal.Reason);
            await RefuseAsync(responseStream, refusal.Code, refusal.Reason, cancellationToken);
            return;
        }

        var sessionId = Guid.NewGuid().ToString("N");
        var nodeId = node!.Address;
        await store.UpsertRegistrationAsync(node, sessionId, context.Peer, cancellationToken);
        var grain = grains.GetGrain<INodeGrain>(nodeId);
        await grain.Attach(sessionId);
        var outbound = NodeSessions.CreateOutbound();
        sessions.Open(nodeId, sessionId, sessionCancel, outbound);
        calls.SessionOpened(nodeId, sessionId, outbound.Writer);
        EmcMetrics.Registrations.WithLabels("accepted").Inc();
        EmcMetrics.Sessions.Inc();
        Log.NodeConnected(logger, nodeId, node.Name, sessionId);

        var graceful = false;
        Task? writer = null;
        try
        {
            await responseStream.WriteAsync(
                new CoordinatorMessage
                {
                    Welcome = new Welcome
                    {
                        NodeId = nodeId,
                        SessionId = sessionId,
                        HeartbeatIntervalMs = (int)_options.HeartbeatInterval.TotalMilliseconds,
                        HeartbeatTimeoutMs = (int)_options.HeartbeatTimeout.TotalMilliseconds,
                    },
                },
                cancellationToken);

            // From here on one writer owns the response stream; everything else queues for it.
            var mergeCalls = NodeRegistration.Parser.ParseFrom(answer.Register.Payload).Features.Contains(ProtocolFeatures.InferBatches);
            writer = WriteOutboundAsync(outbound.Reader, responseStream, mergeCalls, sessionCancel, cancellationToken);
            scheduler.NodeConnected(sessionId, node.ToCapacity());
            graceful = await RunSessionAsync(requestStream, outbound.Writer, grain, nodeId, sessionId, cancellationToken);
        }
        catch (Exception ex) when (ex is OperationCanceledException or IOException or InvalidOperationException)
        {
            // The stream broke or the node was superseded: the node is lost unless it said goodbye.
        }
        finally
        {
            outbound.Writer.TryComplete();
            if (writer is not null)
            {
                await writer;
            }

            sessions.Close(nodeId, sessionId);
            calls.SessionClosed(nodeId, sessionId);
            EmcMetrics.Sessions.Dec();
            await grain.Detach(sessionId, graceful);
            if (!sessions.Stopping.IsCancellationRequested)
            {
                // A coordinator that stops ends every stream itself: that is no reason to reissue
                // the nodes' work, which the restarted coordinator finds still leased.
                scheduler.NodeDisconnected(nodeId, sessionId, graceful ? "left the network" : "was lost (its stream broke)");
            }
            Log.NodeDisconnected(logger, nodeId, graceful);
        }
    }

    /// <summary>The most bytes of inference calls merged into one message.</summary>
    internal const int MaxMergedBytes = StreamMerging.MaxMergedBytes;

    /// <summary>
    /// An inference call with more queued right behind it leaves as one <see cref="InferCalls"/> message
    /// (see <see cref="StreamMerging"/>); anything else leaves as it is.
    /// </summary>
    internal static CoordinatorMessage Merge(CoordinatorMessage message, ChannelReader<CoordinatorMessage> outbound) =>
        StreamMerging.Merge(
            message,
            outbound,
            static m => m.BodyCase == CoordinatorMessage.BodyOneofCase.InferCall ? m.InferCall : null,
            static calls => new CoordinatorMessage { InferCalls = new InferCalls { Calls = { calls } } });

    private static async Task WriteOutboundAsync(
        ChannelReader<CoordinatorMessage> outbound,
        IServerStreamWriter<CoordinatorMessage> responseStream,
        bool mergeCalls,
        CancellationTokenSource session,
        CancellationToken cancellationToken)
    {
        try
        {
            // Messages that are already queued behind this one are written without a flush of their own
            // (gRPC's BufferHint): under load, many inference calls leave in one frame and one send.
            var buffered = new WriteOptions(WriteFlags.BufferHint);
            while (await outbound.WaitToReadAsync(cancellationToken))
            {
                while (outbound.TryRead(out var message))
                {
                    var next = mergeCalls ? Merge(message, outbound) : message;
                    responseStream.WriteOptions = outbound.Count > 0 ? buffered : null;
                    await responseStream.WriteAsync(next, cancellationToken);
                }
            }
        }
        catch (Exception ex) when (ex is OperationCanceledException or IOException or InvalidOperationException)
        {
            // A stream that cannot be written is dead: end the session so the reader stops too.
            await session.CancelAsync();
        }
    }

    private async Task<bool> RunSessionAsync(
        IAsyncStreamReader<NodeMessage> requestStream,
        ChannelWriter<CoordinatorMessage> outbound,
        INodeGrain grain,
        string nodeId,
        string sessionId,
        CancellationToken cancellationToken)
    {
        while (await requestStream.MoveNext(cancellationToken))
        {
            var message = requestStream.Current;
            switch (message.BodyCase)
            {
                case NodeMessage.BodyOneofCase.Heartbeat:
                    EmcMetrics.Heartbeats.Inc();
                    var heartbeat = message.Heartbeat;
                    if (heartbeat.LeaseIds.Count > MaxLeasesPerHeartbeat)
                    {
                        throw Refused(outbound, RefusalCode.Protocol, $"a heartbeat lists at most {MaxLeasesPerHeartbeat} leases");
                    }

                    if (!await grain.Heartbeat(sessionId, Math.Max(0, heartbeat.RunningTasks)))
                    {
                        throw Refused(outbound, RefusalCode.Superseded, "this node connected again on another stream");
                    }

                    scheduler.Heartbeat(nodeId, [.. heartbeat.LeaseIds]);
                    // Dropped when the node is not reading what it is sent: its next heartbeat asks again.
                    outbound.TryWrite(new CoordinatorMessage { HeartbeatAck = new HeartbeatAck { Seq = heartbeat.Seq } });
                    break;

                case NodeMessage.BodyOneofCase.Drain:
                    Log.NodeDraining(logger, nodeId, Truncate(message.Drain.Reason));
                    await grain.Drain(sessionId);
                    scheduler.NodeDraining(nodeId, sessionId);
                    break;

                case NodeMessage.BodyOneofCase.Goodbye:
                    return true;

                case NodeMessage.BodyOneofCase.LeaseAccept:
                    scheduler.LeaseAccepted(nodeId, message.LeaseAccept.LeaseId);
                    break;

                case NodeMessage.BodyOneofCase.LeaseReject:
                    scheduler.LeaseRejected(nodeId, message.LeaseReject.LeaseId, Truncate(message.LeaseReject.Reason));
                    break;

                case NodeMessage.BodyOneofCase.TaskResult:
                    var result = message.TaskResult;
                    scheduler.ResultReported(nodeId, result.LeaseId, result.Succeeded, result.Output, Truncate(result.Error, 1000), result.Retryable);
                    break;

                case NodeMessage.BodyOneofCase.CacheUpdate:
                    var problem = PlacementAttributes.CheckCacheKeys(message.CacheUpdate.Keys);
                    if (problem is not null)
                    {
                        throw Refused(outbound, RefusalCode.Protocol, problem);
                    }

                    scheduler.CacheUpdated(nodeId, [.. message.CacheUpdate.Keys.Distinct(StringComparer.Ordinal)]);
                    break;

                case NodeMessage.BodyOneofCase.InferReply:
                    // Matched among this node's calls only; an unknown id is dropped.
                    calls.ReplyReceived(nodeId, message.InferReply);
                    break;

                case NodeMessage.BodyOneofCase.InferReplies:
                    foreach (var reply in message.InferReplies.Replies)
                    {
                        calls.ReplyReceived(nodeId, reply);
                    }

                    break;

                case NodeMessage.BodyOneofCase.GenerateChunk:
                    // Matched among this node's generations only, like replies.
                    calls.ChunkReceived(nodeId, message.GenerateChunk);
                    break;

                case NodeMessage.BodyOneofCase.EngineChunk:
                    // Matched among this node's engine calls only, like replies.
                    calls.EngineChunkReceived(nodeId, message.EngineChunk);
                    break;

                case NodeMessage.BodyOneofCase.ReplicaStatus:
                    calls.StatusReceived(nodeId, message.ReplicaStatus);
                    break;

                default:
                    throw Refused(outbound, RefusalCode.Protocol, $"unexpected {message.BodyCase} message in a registered session");
            }
        }

        return false;
    }

    /// <summary>A session-ending protocol error: queues the refusal for the stream's writer (it is flushed before the stream ends) and returns the status to end it with.</summary>
    private static RpcException Refused(ChannelWriter<CoordinatorMessage> outbound, RefusalCode code, string reason)
    {
        EmcMetrics.Registrations.WithLabels(code.ToString().ToLowerInvariant()).Inc();
        outbound.TryWrite(new CoordinatorMessage { Refusal = new Refusal { Code = code, Reason = reason } });
        return new RpcException(new Status(code == RefusalCode.Superseded ? StatusCode.Aborted : StatusCode.InvalidArgument, reason));
    }

    private static async Task<NodeMessage?> ReadAsync(IAsyncStreamReader<NodeMessage> stream, CancellationToken cancellationToken)
    {
        try
        {
            return await stream.MoveNext(cancellationToken) ? stream.Current : null;
        }
        catch (OperationCanceledException)
        {
            return null;
        }
    }

    private static async Task RefuseAsync(IServerStreamWriter<CoordinatorMessage> stream, RefusalCode code, string reason, CancellationToken cancellationToken)
    {
        EmcMetrics.Registrations.WithLabels(code.ToString().ToLowerInvariant()).Inc();
        try
        {
            await stream.WriteAsync(new CoordinatorMessage { Refusal = new Refusal { Code = code, Reason = reason } }, cancellationToken);
        }
        catch (Exception ex) when (ex is OperationCanceledException or IOException or InvalidOperationException)
        {
            // The node is already gone; the status below is what it would have read.
        }

        var status = code switch
        {
            RefusalCode.BadSignature or RefusalCode.BadChallenge => StatusCode.Unauthenticated,
            RefusalCode.Version => StatusCode.FailedPrecondition,
            RefusalCode.Superseded => StatusCode.Aborted,
            _ => StatusCode.InvalidArgument,
        };
        throw new RpcException(new Status(status, reason));
    }

    private const int MaxLeasesPerHeartbeat = 4096;

    private static string Truncate(string text, int max = 80) => text.Length <= max ? text : text[..max] + "…";

    private static partial class Log
    {
        [LoggerMessage(EventId = 1000, Level = LogLevel.Information, Message = "Node {NodeId} ({Name}) connected, session {SessionId}.")]
        public static partial void NodeConnected(ILogger logger, string nodeId, string name, string sessionId);

        [LoggerMessage(EventId = 1001, Level = LogLevel.Warning, Message = "Registration of {NodeId} refused ({Code}): {Reason}")]
        public static partial void RegistrationRefused(ILogger logger, string nodeId, RefusalCode code, string reason);

        [LoggerMessage(EventId = 1002, Level = LogLevel.Information, Message = "Node {NodeId} is draining: {Reason}")]
        public static partial void NodeDraining(ILogger logger, string nodeId, string reason);

        [LoggerMessage(EventId = 1003, Level = LogLevel.Information, Message = "Node {NodeId} disconnected (clean: {Graceful}).")]
        public static partial void NodeDisconnected(ILogger logger, string nodeId, bool graceful);
    }
}
