using Emc.Contracts.Node.V1;
using Emc.Core.Identity;
using Emc.Core.Registry;
using Google.Protobuf;
using Grpc.Core;
using Grpc.Net.Client;

namespace Emc.Coordinator.Tests.Infrastructure;

/// <summary>Builds registrations and drives the raw handshake, for tests that tamper with it.</summary>
public static class Registrations
{
    public static NodeRegistration Valid(string name = "test-node")
    {
        var registration = new NodeRegistration
        {
            Name = name,
            AgentVersion = "test",
            Hardware = new HardwareProfile
            {
                Hostname = "host",
                OperatingSystem = "Linux",
                CpuModel = "Test CPU",
                LogicalCores = 4,
                MemoryBytes = 8L << 30,
                DiskBytes = 100L << 30,
                DiskFreeBytes = 50L << 30,
            },
            Benchmark = new BenchmarkReport { LinkRttMs = 1, LinkDownloadMbps = 1000, LinkUploadMbps = 1000 },
        };
        registration.Devices.Add("cpu");
        registration.Benchmark.Devices.Add(new DeviceBenchmark { Device = "cpu", MatmulGflops = 50, MemoryBandwidthGbps = 10 });
        return registration;
    }

    /// <summary>A raw stream: hello sent, challenge read.</summary>
    public static async Task<(AsyncDuplexStreamingCall<NodeMessage, CoordinatorMessage> Call, Challenge Challenge)> HelloAsync(GrpcChannel channel, EthAddress address)
    {
        var call = new NodeGateway.NodeGatewayClient(channel).Connect();
        await call.RequestStream.WriteAsync(new NodeMessage { Hello = new Hello { Address = address.ToString(), ProtocolVersion = 1 } });
        Assert.True(await call.ResponseStream.MoveNext(CancellationToken.None));
        Assert.Equal(CoordinatorMessage.BodyOneofCase.Challenge, call.ResponseStream.Current.BodyCase);
        return (call, call.ResponseStream.Current.Challenge);
    }

    /// <summary>A register message for <paramref name="challenge"/>, signed by <paramref name="signer"/>.</summary>
    public static Register Sign(NodeKey signer, Challenge challenge, ByteString payload) => new()
    {
        Nonce = challenge.Nonce,
        Payload = payload,
        Signature = ByteString.CopyFrom(signer.SignMessage(RegistrationMessage.Build(challenge.CoordinatorId, challenge.Nonce.Span, payload.Span))),
    };

    public static ByteString Payload(NodeKey key, NodeRegistration registration)
    {
        registration.Address = key.Address.ToString();
        return registration.ToByteString();
    }

    /// <summary>Sends the register message and returns the refusal the coordinator answers with, and the call's final status.</summary>
    public static async Task<(Refusal Refusal, StatusCode Status)> ExpectRefusalAsync(
        AsyncDuplexStreamingCall<NodeMessage, CoordinatorMessage> call, NodeMessage message)
    {
        await call.RequestStream.WriteAsync(message);
        Assert.True(await call.ResponseStream.MoveNext(CancellationToken.None));
        var reply = call.ResponseStream.Current;
        Assert.Equal(CoordinatorMessage.BodyOneofCase.Refusal, reply.BodyCase);
        var ex = await Assert.ThrowsAsync<RpcException>(() => call.ResponseStream.MoveNext(CancellationToken.None));
        return (reply.Refusal, ex.StatusCode);
    }
}
