using Emc.Contracts.Node.V1;
using Emc.Core.Identity;
using Emc.Core.Registry;
using Google.Protobuf;
using Grpc.Core;
using Grpc.Net.Client;

namespace Emc.Node.Connection;

/// <summary>
/// One session of a node on the coordinator's gateway: the handshake (hello, challenge, signed
/// registration, welcome) and then heartbeats, leases, results, drain and goodbye on the same stream. Used by the
/// node agent and by the connection benchmark's simulated nodes alike.
/// </summary>
public sealed class NodeConnection : IAsyncDisposable
{
    private readonly AsyncDuplexStreamingCall<NodeMessage, CoordinatorMessage> _call;
    private readonly SemaphoreSlim _writeLock = new(1, 1);
    private ulong _sequence;

    private NodeConnection(AsyncDuplexStreamingCall<NodeMessage, CoordinatorMessage> call, Welcome welcome)
    {
        _call = call;
        Welcome = welcome;
    }

    /// <summary>What the coordinator said when it accepted the node.</summary>
    public Welcome Welcome { get; }

    /// <summary>Opens the stream and registers; throws <see cref="RegistrationRefusedException"/> when refused.</summary>
    public static async Task<NodeConnection> OpenAsync(
        GrpcChannel channel,
        NodeKey key,
        NodeRegistration registration,
        string agentVersion,
        CancellationToken cancellationToken)
    {
        var client = new NodeGateway.NodeGatewayClient(channel);
        // The token bounds the handshake only: the stream itself lives until the connection is disposed,
        // so that a node asked to stop can still send its drain and goodbye on it.
        var call = client.Connect(cancellationToken: CancellationToken.None);
        try
        {
            await call.RequestStream.WriteAsync(
                new NodeMessage { Hello = new Hello { Address = key.Address.ToString(), ProtocolVersion = 1, AgentVersion = agentVersion } },
                cancellationToken);

            var challenge = await ReadAsync(call, cancellationToken);
            if (challenge.BodyCase != CoordinatorMessage.BodyOneofCase.Challenge)
            {
                throw new RpcException(new Status(StatusCode.Internal, $"expected a challenge, got {challenge.BodyCase}"));
            }

            registration.Address = key.Address.ToString();
            var payload = registration.ToByteString();
            var message = RegistrationMessage.Build(challenge.Challenge.CoordinatorId, challenge.Challenge.Nonce.Span, payload.Span);
            await call.RequestStream.WriteAsync(
                new NodeMessage
                {
                    Register = new Register
                    {
                        Nonce = challenge.Challenge.Nonce,
                        Payload = payload,
                        Signature = ByteString.CopyFrom(key.SignMessage(message)),
                    },
                },
                cancellationToken);

            var welcome = await ReadAsync(call, cancellationToken);
            if (welcome.BodyCase != CoordinatorMessage.BodyOneofCase.Welcome)
            {
                throw new RpcException(new Status(StatusCode.Internal, $"expected a welcome, got {welcome.BodyCase}"));
            }

            return new NodeConnection(call, welcome.Welcome);
        }
        catch
        {
            call.Dispose();
            throw;
        }
    }

    /// <summary>Sends a heartbeat and returns its sequence number.</summary>
    public async Task<ulong> SendHeartbeatAsync(int runningTasks, long sentUnixMs, CancellationToken cancellationToken)
    {
        var seq = Interlocked.Increment(ref _sequence);
        await WriteAsync(new NodeMessage { Heartbeat = new Heartbeat { Seq = seq, RunningTasks = runningTasks, SentUnixMs = sentUnixMs } }, cancellationToken);
        return seq;
    }

    /// <summary>
    /// Writes any message on the stream. Writes are serialised here too, but a session with work
    /// running should funnel its messages through one <see cref="NodeOutbox"/> instead.
    /// </summary>
    public Task SendAsync(NodeMessage message, CancellationToken cancellationToken) =>
        WriteAsync(message, cancellationToken);

    /// <summary>Tells the coordinator the node takes no new work.</summary>
    public Task SendDrainAsync(string reason, CancellationToken cancellationToken) =>
        WriteAsync(new NodeMessage { Drain = new Drain { Reason = reason } }, cancellationToken);

    /// <summary>Says goodbye and closes the node's half of the stream.</summary>
    public async Task SendGoodbyeAsync(CancellationToken cancellationToken)
    {
        await WriteAsync(new NodeMessage { Goodbye = new Goodbye() }, cancellationToken);
        await _writeLock.WaitAsync(cancellationToken);
        try
        {
            await _call.RequestStream.CompleteAsync();
        }
        finally
        {
            _writeLock.Release();
        }
    }

    /// <summary>
    /// Reads the next message from the coordinator; null when the coordinator ended the stream.
    /// A refusal (for example "superseded") is thrown as <see cref="RegistrationRefusedException"/>.
    /// </summary>
    public async Task<CoordinatorMessage?> ReadAsync(CancellationToken cancellationToken)
    {
        if (!await _call.ResponseStream.MoveNext(cancellationToken))
        {
            return null;
        }

        var message = _call.ResponseStream.Current;
        if (message.BodyCase == CoordinatorMessage.BodyOneofCase.Refusal)
        {
            throw new RegistrationRefusedException(message.Refusal.Code, message.Refusal.Reason);
        }

        return message;
    }

    public ValueTask DisposeAsync()
    {
        _call.Dispose();
        _writeLock.Dispose();
        return ValueTask.CompletedTask;
    }

    private async Task WriteAsync(NodeMessage message, CancellationToken cancellationToken)
    {
        await _writeLock.WaitAsync(cancellationToken);
        try
        {
            await _call.RequestStream.WriteAsync(message, cancellationToken);
        }
        finally
        {
            _writeLock.Release();
        }
    }

    private static async Task<CoordinatorMessage> ReadAsync(AsyncDuplexStreamingCall<NodeMessage, CoordinatorMessage> call, CancellationToken cancellationToken)
    {
        if (!await call.ResponseStream.MoveNext(cancellationToken))
        {
            throw new RpcException(new Status(StatusCode.Unavailable, "the coordinator closed the stream during the handshake"));
        }

        var message = call.ResponseStream.Current;
        if (message.BodyCase == CoordinatorMessage.BodyOneofCase.Refusal)
        {
            throw new RegistrationRefusedException(message.Refusal.Code, message.Refusal.Reason);
        }

        return message;
    }
}
