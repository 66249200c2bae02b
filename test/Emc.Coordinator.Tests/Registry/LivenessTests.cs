using Emc.Contracts.Node.V1;
using Emc.Coordinator.Tests.Infrastructure;
using Emc.Core.Identity;
using Emc.Core.Registry;
using Emc.Node.Connection;

namespace Emc.Coordinator.Tests.Registry;

[Collection(CoordinatorCollection.Name)]
public sealed class LivenessTests(CoordinatorFixture fixture)
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(10);

    private TestCoordinator Coordinator => fixture.Coordinator;

    [Fact]
    public async Task Heartbeat_Answered_NodeStaysConnectedPastTheTimeout()
    {
        using var key = NodeKey.Create();
        await using var connection = await NodeConnection.OpenAsync(Coordinator.Channel, key, Registrations.Valid("beating"), "test", CancellationToken.None);

        // Beat for 1.5 times the 2 s timeout; every beat is acknowledged and the node stays connected.
        for (var i = 0; i < 15; i++)
        {
            var seq = await connection.SendHeartbeatAsync(0, 0, CancellationToken.None);
            var ack = await connection.ReadAsync(CancellationToken.None);
            Assert.Equal(seq, ack!.HeartbeatAck.Seq);
            await Task.Delay(200);
        }

        var node = await Coordinator.Api.GetNodeAsync(key.Address.ToString(), CancellationToken.None);
        Assert.Equal(NodeStatus.Connected, node.Status);
    }

    [Fact]
    public async Task Heartbeat_WithRunningTasks_NodeIsBusy()
    {
        using var key = NodeKey.Create();
        await using var connection = await NodeConnection.OpenAsync(Coordinator.Channel, key, Registrations.Valid("busy"), "test", CancellationToken.None);
        await connection.SendHeartbeatAsync(runningTasks: 2, 0, CancellationToken.None);
        await connection.ReadAsync(CancellationToken.None);

        await Coordinator.WaitForNodeAsync(key.Address.ToString(), n => n.Status == NodeStatus.Busy, Wait);
    }

    [Fact]
    public async Task Heartbeats_Stop_NodeMarkedLostAfterTheTimeoutButStreamStaysOpen()
    {
        using var key = NodeKey.Create();
        var started = DateTimeOffset.UtcNow;
        await using var connection = await NodeConnection.OpenAsync(Coordinator.Channel, key, Registrations.Valid("silent"), "test", CancellationToken.None);
        var registered = DateTimeOffset.UtcNow;

        var lost = await Coordinator.WaitForNodeAsync(key.Address.ToString(), n => n.Status == NodeStatus.Lost, Wait);

        // Timeout is 2 s with a 100 ms check: lost no sooner than the timeout.
        Assert.True(DateTimeOffset.UtcNow - started >= TimeSpan.FromSeconds(2));
        Assert.InRange(lost.LastSeen, started.AddMilliseconds(-1), registered.AddMilliseconds(1));
    }

    [Fact]
    public async Task Stream_BreaksWithoutGoodbye_NodeMarkedLost()
    {
        using var key = NodeKey.Create();
        var connection = await NodeConnection.OpenAsync(Coordinator.Channel, key, Registrations.Valid("broken"), "test", CancellationToken.None);
        await connection.DisposeAsync();

        await Coordinator.WaitForNodeAsync(key.Address.ToString(), n => n.Status == NodeStatus.Lost, Wait);
    }

    [Fact]
    public async Task DrainThenGoodbye_NodeDrainingThenDisconnected()
    {
        using var key = NodeKey.Create();
        await using var connection = await NodeConnection.OpenAsync(Coordinator.Channel, key, Registrations.Valid("leaving"), "test", CancellationToken.None);

        await connection.SendDrainAsync("maintenance", CancellationToken.None);
        await Coordinator.WaitForNodeAsync(key.Address.ToString(), n => n.Status == NodeStatus.Draining, Wait);

        await connection.SendGoodbyeAsync(CancellationToken.None);
        Assert.Null(await connection.ReadAsync(CancellationToken.None));
        await Coordinator.WaitForNodeAsync(key.Address.ToString(), n => n.Status == NodeStatus.Disconnected, Wait);
    }

    [Fact]
    public async Task Connect_SameNodeAgain_EarlierStreamSupersededAndNodeStaysConnected()
    {
        using var key = NodeKey.Create();
        await using var first = await NodeConnection.OpenAsync(Coordinator.Channel, key, Registrations.Valid("twice"), "test", CancellationToken.None);
        await using var second = await NodeConnection.OpenAsync(Coordinator.Channel, key, Registrations.Valid("twice"), "test", CancellationToken.None);

        // The first stream is ended by the coordinator.
        await Assert.ThrowsAnyAsync<Exception>(async () =>
        {
            while (await first.ReadAsync(CancellationToken.None) is not null)
            {
            }

            throw new EndOfStreamException();
        });

        var seq = await second.SendHeartbeatAsync(0, 0, CancellationToken.None);
        Assert.Equal(seq, (await second.ReadAsync(CancellationToken.None))!.HeartbeatAck.Seq);
        var node = await Coordinator.WaitForNodeAsync(key.Address.ToString(), n => n.Registrations == 2, Wait);
        Assert.Equal(NodeStatus.Connected, node.Status);
    }

    [Fact]
    public async Task Session_MessageOutOfPlace_RefusedAndNodeLost()
    {
        using var key = NodeKey.Create();
        await using var connection = await NodeConnection.OpenAsync(Coordinator.Channel, key, Registrations.Valid("rude"), "test", CancellationToken.None);
        var call = typeof(NodeConnection).GetField("_call", System.Reflection.BindingFlags.NonPublic | System.Reflection.BindingFlags.Instance)!
            .GetValue(connection) as Grpc.Core.AsyncDuplexStreamingCall<NodeMessage, CoordinatorMessage>;

        await call!.RequestStream.WriteAsync(new NodeMessage { Hello = new Hello { Address = key.Address.ToString(), ProtocolVersion = 1 } });
        var refused = await Assert.ThrowsAsync<RegistrationRefusedException>(() => connection.ReadAsync(CancellationToken.None));
        Assert.Equal(RefusalCode.Protocol, refused.Code);
        await Coordinator.WaitForNodeAsync(key.Address.ToString(), n => n.Status == NodeStatus.Lost, Wait);
    }
}
