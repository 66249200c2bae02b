using Emc.Contracts.Node.V1;
using Emc.Coordinator.Tests.Infrastructure;
using Emc.Core.Identity;
using Emc.Core.Registry;
using Emc.Node.Connection;
using Google.Protobuf;
using Grpc.Core;

namespace Emc.Coordinator.Tests.Gateway;

[Collection(CoordinatorCollection.Name)]
public sealed class RegistrationTests(CoordinatorFixture fixture)
{
    private TestCoordinator Coordinator => fixture.Coordinator;

    [Fact]
    public async Task Connect_ValidSignedRegistration_NodeListedConnectedWithItsHardware()
    {
        using var key = NodeKey.Create();
        await using var connection = await NodeConnection.OpenAsync(Coordinator.Channel, key, Registrations.Valid("valid"), "test", CancellationToken.None);

        Assert.Equal(key.Address.ToString(), connection.Welcome.NodeId);
        var node = await Coordinator.Api.GetNodeAsync(key.Address.ToString(), CancellationToken.None);
        Assert.Equal(NodeStatus.Connected, node.Status);
        Assert.Equal("valid", node.Name);
        Assert.Equal(4, node.Hardware.LogicalCores);
        Assert.Equal(50, node.Benchmark.Devices.Single().MatmulGflops);
        Assert.Equal(1, node.Registrations);
    }

    [Fact]
    public async Task Connect_SignatureOfAnotherKey_RefusedUnauthenticatedAndNothingRegistered()
    {
        using var node = NodeKey.Create();
        using var forger = NodeKey.Create();
        var (call, challenge) = await Registrations.HelloAsync(Coordinator.Channel, node.Address);
        using (call)
        {
            var register = Registrations.Sign(forger, challenge, Registrations.Payload(node, Registrations.Valid()));
            var (refusal, status) = await Registrations.ExpectRefusalAsync(call, new NodeMessage { Register = register });

            Assert.Equal(RefusalCode.BadSignature, refusal.Code);
            Assert.Contains("signed by", refusal.Reason, StringComparison.Ordinal);
            Assert.Equal(StatusCode.Unauthenticated, status);
        }

        await AssertNotRegisteredAsync(node.Address);
    }

    [Fact]
    public async Task Connect_CorruptedSignature_RefusedAndNothingRegistered()
    {
        using var node = NodeKey.Create();
        var (call, challenge) = await Registrations.HelloAsync(Coordinator.Channel, node.Address);
        using (call)
        {
            var register = Registrations.Sign(node, challenge, Registrations.Payload(node, Registrations.Valid()));
            var signature = register.Signature.ToByteArray();
            signature[64] = 29;
            register.Signature = ByteString.CopyFrom(signature);
            var (refusal, status) = await Registrations.ExpectRefusalAsync(call, new NodeMessage { Register = register });

            Assert.Equal(RefusalCode.BadSignature, refusal.Code);
            Assert.Equal(StatusCode.Unauthenticated, status);
        }

        await AssertNotRegisteredAsync(node.Address);
    }

    [Fact]
    public async Task Connect_AnswerToAnotherStreamsChallenge_RefusedAndNothingRegistered()
    {
        using var node = NodeKey.Create();
        var payload = Registrations.Payload(node, Registrations.Valid());

        // An answer signed for stream 1's challenge, played on stream 2.
        var (first, firstChallenge) = await Registrations.HelloAsync(Coordinator.Channel, node.Address);
        var captured = Registrations.Sign(node, firstChallenge, payload);
        first.Dispose();

        var (second, _) = await Registrations.HelloAsync(Coordinator.Channel, node.Address);
        using (second)
        {
            var (refusal, status) = await Registrations.ExpectRefusalAsync(second, new NodeMessage { Register = captured });
            Assert.Equal(RefusalCode.BadChallenge, refusal.Code);
            Assert.Equal(StatusCode.Unauthenticated, status);
        }

        await AssertNotRegisteredAsync(node.Address);
    }

    [Fact]
    public async Task Connect_ReplayOfAnAcceptedRegistration_RefusedAndRegistryUnchanged()
    {
        using var node = NodeKey.Create();
        var payload = Registrations.Payload(node, Registrations.Valid("original"));
        var (first, challenge) = await Registrations.HelloAsync(Coordinator.Channel, node.Address);
        var register = Registrations.Sign(node, challenge, payload);
        await first.RequestStream.WriteAsync(new NodeMessage { Register = register });
        Assert.True(await first.ResponseStream.MoveNext(CancellationToken.None));
        Assert.Equal(CoordinatorMessage.BodyOneofCase.Welcome, first.ResponseStream.Current.BodyCase);
        var before = await Coordinator.Api.GetNodeAsync(node.Address.ToString(), CancellationToken.None);

        var (replay, _) = await Registrations.HelloAsync(Coordinator.Channel, node.Address);
        using (replay)
        {
            var (refusal, status) = await Registrations.ExpectRefusalAsync(replay, new NodeMessage { Register = register });
            Assert.Equal(RefusalCode.BadChallenge, refusal.Code);
            Assert.Contains("already used", refusal.Reason, StringComparison.Ordinal);
            Assert.Equal(StatusCode.Unauthenticated, status);
        }

        var after = await Coordinator.Api.GetNodeAsync(node.Address.ToString(), CancellationToken.None);
        Assert.Equal(before.Registrations, after.Registrations);
        Assert.Equal(before.RegisteredAt, after.RegisteredAt);
        Assert.Equal(NodeStatus.Connected, after.Status);
        first.Dispose();
    }

    public static TheoryData<string, Action<NodeRegistration>, string> MalformedHardware => new()
    {
        { "zero cores", r => r.Hardware.LogicalCores = 0, "logical cores" },
        { "negative memory", r => r.Hardware.MemoryBytes = -1, "memory" },
        { "NaN benchmark", r => r.Benchmark.Devices[0].MatmulGflops = double.NaN, "benchmark" },
        { "cuda without devices", r => r.Devices.Add("cuda:0"), "cuda:0" },
        { "unknown device", r => r.Devices[0] = "tpu", "tpu" },
        { "no hardware", r => r.Hardware = null, "no hardware" },
        { "control characters in name", r => r.Name = "bad\u0007name", "name" },
        { "free disk above size", r => r.Hardware.DiskFreeBytes = r.Hardware.DiskBytes + 1, "disk" },
    };

    [Theory]
    [MemberData(nameof(MalformedHardware))]
    public async Task Connect_MalformedHardware_RefusedInvalidArgumentWithReason(string caseName, Action<NodeRegistration> corrupt, string reasonMentions)
    {
        using var node = NodeKey.Create();
        var registration = Registrations.Valid(caseName.Replace(' ', '-'));
        corrupt(registration);
        var (call, challenge) = await Registrations.HelloAsync(Coordinator.Channel, node.Address);
        using (call)
        {
            var register = Registrations.Sign(node, challenge, Registrations.Payload(node, registration));
            var (refusal, status) = await Registrations.ExpectRefusalAsync(call, new NodeMessage { Register = register });

            Assert.Equal(RefusalCode.BadHardware, refusal.Code);
            Assert.Contains(reasonMentions, refusal.Reason, StringComparison.OrdinalIgnoreCase);
            Assert.Equal(StatusCode.InvalidArgument, status);
        }

        await AssertNotRegisteredAsync(node.Address);
    }

    [Fact]
    public async Task Connect_PayloadThatIsNotARegistration_RefusedAndNothingRegistered()
    {
        using var node = NodeKey.Create();
        var (call, challenge) = await Registrations.HelloAsync(Coordinator.Channel, node.Address);
        using (call)
        {
            var garbage = ByteString.CopyFrom(0xFF, 0xFF, 0xFF, 0x01);
            var (refusal, status) = await Registrations.ExpectRefusalAsync(call, new NodeMessage { Register = Registrations.Sign(node, challenge, garbage) });
            Assert.Equal(RefusalCode.BadHardware, refusal.Code);
            Assert.Equal(StatusCode.InvalidArgument, status);
        }

        await AssertNotRegisteredAsync(node.Address);
    }

    [Fact]
    public async Task Connect_PayloadNamingAnotherAddress_Refused()
    {
        using var node = NodeKey.Create();
        using var other = NodeKey.Create();
        var (call, challenge) = await Registrations.HelloAsync(Coordinator.Channel, node.Address);
        using (call)
        {
            var payload = Registrations.Payload(other, Registrations.Valid());
            var (refusal, _) = await Registrations.ExpectRefusalAsync(call, new NodeMessage { Register = Registrations.Sign(node, challenge, payload) });
            Assert.Equal(RefusalCode.BadHardware, refusal.Code);
        }

        await AssertNotRegisteredAsync(node.Address);
        await AssertNotRegisteredAsync(other.Address);
    }

    [Fact]
    public async Task Connect_FirstMessageNotHello_RefusedAsProtocolError()
    {
        using var call = new NodeGateway.NodeGatewayClient(Coordinator.Channel).Connect();
        var (refusal, status) = await Registrations.ExpectRefusalAsync(call, new NodeMessage { Heartbeat = new Heartbeat { Seq = 1 } });
        Assert.Equal(RefusalCode.Protocol, refusal.Code);
        Assert.Equal(StatusCode.InvalidArgument, status);
    }

    [Fact]
    public async Task Connect_HelloWithMalformedAddress_Refused()
    {
        using var call = new NodeGateway.NodeGatewayClient(Coordinator.Channel).Connect();
        var (refusal, _) = await Registrations.ExpectRefusalAsync(call, new NodeMessage { Hello = new Hello { Address = "0x1234", ProtocolVersion = 1 } });
        Assert.Equal(RefusalCode.Protocol, refusal.Code);
        Assert.Contains("not a node address", refusal.Reason, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Connect_UnsupportedProtocolVersion_RefusedFailedPrecondition()
    {
        using var key = NodeKey.Create();
        using var call = new NodeGateway.NodeGatewayClient(Coordinator.Channel).Connect();
        var (refusal, status) = await Registrations.ExpectRefusalAsync(call, new NodeMessage { Hello = new Hello { Address = key.Address.ToString(), ProtocolVersion = 99 } });
        Assert.Equal(RefusalCode.Version, refusal.Code);
        Assert.Equal(StatusCode.FailedPrecondition, status);
    }

    [Fact]
    public async Task Connect_SecondMessageNotRegister_RefusedAndNothingRegistered()
    {
        using var node = NodeKey.Create();
        var (call, _) = await Registrations.HelloAsync(Coordinator.Channel, node.Address);
        using (call)
        {
            var (refusal, _) = await Registrations.ExpectRefusalAsync(call, new NodeMessage { Heartbeat = new Heartbeat { Seq = 1 } });
            Assert.Equal(RefusalCode.Protocol, refusal.Code);
        }

        await AssertNotRegisteredAsync(node.Address);
    }

    private async Task AssertNotRegisteredAsync(EthAddress address)
    {
        var ex = await Assert.ThrowsAsync<Client.EmcApiException>(() => Coordinator.Api.GetNodeAsync(address.ToString(), CancellationToken.None));
        Assert.Equal(System.Net.HttpStatusCode.NotFound, ex.Status);
        var all = await Coordinator.Api.GetNodesAsync(null, CancellationToken.None);
        Assert.DoesNotContain(all, n => n.Id == address.ToString());
    }
}
