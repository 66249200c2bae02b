using System.Threading.Channels;
using Emc.Contracts.Node.V1;
using Emc.Coordinator.Inference;
using Emc.Core.Inference;
using Google.Protobuf;

namespace Emc.Coordinator.Tests.Inference;

/// <summary>Replies from untrusted nodes: matched per node, checked against the model, never trusted to be well-formed.</summary>
public sealed class NodeCallHubTests
{
    private static readonly ModelMetadata Model = new()
    {
        Name = "m",
        Versions = ["1"],
        Platform = "onnx_onnxv1",
        Inputs = [new TensorMetadata("input", TensorDatatype.Fp32, [-1, 2])],
        Outputs = [new TensorMetadata("logits", TensorDatatype.Fp32, [-1, 3])],
    };

    [Fact]
    public async Task ReplyReceived_UnknownIdOrOtherNode_IsIgnoredAndTheCallStillWaits()
    {
        var hub = new NodeCallHub();
        var a = Channel.CreateUnbounded<CoordinatorMessage>();
        var b = Channel.CreateUnbounded<CoordinatorMessage>();
        hub.SessionOpened("node-a", "s1", a.Writer);
        hub.SessionOpened("node-b", "s2", b.Writer);
        var pending = hub.CallAsync("node-a", new InferCall { ReplicaId = "r" }, CancellationToken.None);
        var sent = await a.Reader.ReadAsync();

        hub.ReplyReceived("node-a", new InferReply { CallId = sent.InferCall.CallId + 1000, Ok = true });
        hub.ReplyReceived("node-b", new InferReply { CallId = sent.InferCall.CallId, Ok = true });
        hub.ReplyReceived("node-c", new InferReply { CallId = sent.InferCall.CallId, Ok = true });
        Assert.False(pending.IsCompleted);
        Assert.Equal(3, hub.UnmatchedReplies);

        hub.ReplyReceived("node-a", new InferReply { CallId = sent.InferCall.CallId, Ok = true });
        Assert.True((await pending).Ok);

        // A duplicate of a reply already taken is ignored too.
        hub.ReplyReceived("node-a", new InferReply { CallId = sent.InferCall.CallId, Ok = true });
        Assert.Equal(4, hub.UnmatchedReplies);
    }

    [Fact]
    public async Task CallAsync_SessionsOutboundQueueFull_FailsAtOnceAsUnavailableInsteadOfWaitingForAReplyNeverAsked()
    {
        var hub = new NodeCallHub();
        var outbound = Emc.Coordinator.Gateway.NodeSessions.CreateOutbound();
        hub.SessionOpened("node-a", "s1", outbound.Writer);
        for (var i = 0; i < Emc.Coordinator.Gateway.NodeSessions.OutboundCapacity; i++)
        {
            Assert.True(outbound.Writer.TryWrite(new CoordinatorMessage()));
        }

        var full = await Assert.ThrowsAsync<ReplicaUnavailableException>(() => hub.CallAsync("node-a", new InferCall { ReplicaId = "r" }, CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(5)));
        Assert.Contains("full", full.Message, StringComparison.Ordinal);
        Assert.Equal(0, hub.Pending);

        // Once the writer drains a message there is room again.
        Assert.True(outbound.Reader.TryRead(out _));
        var call = hub.CallAsync("node-a", new InferCall { ReplicaId = "r" }, CancellationToken.None);
        Assert.False(call.IsCompleted);
        Assert.Equal(1, hub.Pending);
    }

    [Fact]
    public async Task AbandonReplica_FailsOnlyThatReplicasCallsAsUnavailable_AndItsLateReplyIsUnmatched()
    {
        var hub = new NodeCallHub();
        var outbound = Channel.CreateUnbounded<CoordinatorMessage>();
        hub.SessionOpened("node-a", "s1", outbound.Writer);
        var lost = Enumerable.Range(0, 2).Select(_ => hub.CallAsync("node-a", new InferCall { ReplicaId = "r#1" }, CancellationToken.None)).ToList();
        var other = hub.CallAsync("node-a", new InferCall { ReplicaId = "q#1" }, CancellationToken.None);
        var sent = new List<ulong>();
        for (var i = 0; i < 3; i++)
        {
            sent.Add((await outbound.Reader.ReadAsync()).InferCall.CallId);
        }

        Assert.Equal(0, hub.AbandonReplica("node-b", "r#1", "its lease ended"));
        Assert.Equal(2, hub.AbandonReplica("node-a", "r#1", "its lease ended"));
        foreach (var call in lost)
        {
            var ex = await Assert.ThrowsAsync<ReplicaUnavailableException>(() => call);
            Assert.Contains("its lease ended", ex.Message, StringComparison.Ordinal);
        }

        Assert.False(other.IsCompleted);
        hub.ReplyReceived("node-a", new InferReply { CallId = sent[0], Ok = true });
        Assert.Equal(1, hub.UnmatchedReplies);
        hub.ReplyReceived("node-a", new InferReply { CallId = sent[2], Ok = true });
        Assert.True((await other).Ok);
    }

    [Fact]
    public async Task SessionClosed_FailsPendingCallsAsUnavailable()
    {
        var hub = new NodeCallHub();
        var gone = new List<string>();
        hub.NodeGone += gone.Add;
        var outbound = Channel.CreateUnbounded<CoordinatorMessage>();
        hub.SessionOpened("node-a", "s1", outbound.Writer);
        var calls = Enumerable.Range(0, 3).Select(_ => hub.CallAsync("node-a", new InferCall(), CancellationToken.None)).ToList();

        hub.SessionClosed("node-a", "other-session");
        Assert.All(calls, c => Assert.False(c.IsCompleted));

        hub.SessionClosed("node-a", "s1");
        foreach (var call in calls)
        {
            await Assert.ThrowsAsync<ReplicaUnavailableException>(() => call);
        }

        Assert.Equal(["node-a"], gone);
        await Assert.ThrowsAsync<ReplicaUnavailableException>(() => hub.CallAsync("node-a", new InferCall(), CancellationToken.None));
        Assert.Equal(0, hub.Pending);
    }

    [Fact]
    public async Task CallAsync_Cancelled_ForgetsTheCall()
    {
        var hub = new NodeCallHub();
        hub.SessionOpened("node-a", "s1", Channel.CreateUnbounded<CoordinatorMessage>().Writer);
        using var cancel = new CancellationTokenSource();
        var call = hub.CallAsync("node-a", new InferCall(), cancel.Token);
        await cancel.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => call);
        Assert.Equal(0, hub.Pending);
    }

    [Theory]
    [InlineData("wrong-size")]
    [InlineData("wrong-shape")]
    [InlineData("wrong-datatype")]
    [InlineData("unknown-output")]
    [InlineData("missing-output")]
    [InlineData("duplicate-output")]
    [InlineData("negative-dimension")]
    public async Task SendAsync_MalformedReply_IsUnavailableSoTheRouterRetriesElsewhere(string fault)
    {
        var (hub, outbound) = Connected();
        var replica = new NodeReplica("job-1.0#1", "node-a", 4, hub);
        var send = replica.SendAsync(Call(), CancellationToken.None);
        var sent = await outbound.Reader.ReadAsync();
        var reply = new InferReply { CallId = sent.InferCall.CallId, Ok = true };
        var logits = Tensor("logits", "FP32", [1, 3], 12);
        switch (fault)
        {
            case "wrong-size": logits.Raw = ByteString.CopyFrom(new byte[11]); break;
            case "wrong-shape": logits.Shape[1] = 4; logits.Raw = ByteString.CopyFrom(new byte[16]); break;
            case "wrong-datatype": logits.Datatype = "INT32"; break;
            case "unknown-output": logits.Name = "secret"; break;
            case "negative-dimension": logits.Shape[0] = -1; break;
        }

        if (fault != "missing-output")
        {
            reply.Outputs.Add(logits);
        }

        if (fault == "duplicate-output")
        {
            reply.Outputs.Add(logits);
        }

        hub.ReplyReceived("node-a", reply);
        var error = await Assert.ThrowsAsync<ReplicaUnavailableException>(() => send);
        Assert.Contains("malformed", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task SendAsync_GoodReply_IsTheResponse_AndErrorsMapToRejectedOrUnavailable()
    {
        var (hub, outbound) = Connected();
        var replica = new NodeReplica("job-1.0#1", "node-a", 4, hub);

        var send = replica.SendAsync(Call(), CancellationToken.None);
        var sent = await outbound.Reader.ReadAsync();
        Assert.Equal("job-1.0#1", sent.InferCall.ReplicaId);
        Assert.Equal(8, sent.InferCall.Inputs[0].Raw.Length);
        var reply = new InferReply { CallId = sent.InferCall.CallId, Ok = true };
        reply.Outputs.Add(Tensor("logits", "FP32", [1, 3], 12));
        hub.ReplyReceived("node-a", reply);
        var response = await send;
        Assert.Equal([1L, 3L], response.Outputs[0].Shape);
        Assert.Equal(1, replica.Served);

        send = replica.SendAsync(Call(), CancellationToken.None);
        sent = await outbound.Reader.ReadAsync();
        hub.ReplyReceived("node-a", new InferReply { CallId = sent.InferCall.CallId, ErrorKind = InferErrorKind.BadRequest, Error = "bad input" });
        Assert.Equal("bad input", (await Assert.ThrowsAsync<ReplicaRejectedException>(() => send)).Message);

        send = replica.SendAsync(Call(), CancellationToken.None);
        sent = await outbound.Reader.ReadAsync();
        hub.ReplyReceived("node-a", new InferReply { CallId = sent.InferCall.CallId, ErrorKind = InferErrorKind.Overloaded, Error = "full" });
        Assert.Contains("overloaded", (await Assert.ThrowsAsync<ReplicaUnavailableException>(() => send)).Message, StringComparison.Ordinal);
    }

    private static (NodeCallHub Hub, Channel<CoordinatorMessage> Outbound) Connected()
    {
        var hub = new NodeCallHub();
        var outbound = Channel.CreateUnbounded<CoordinatorMessage>();
        hub.SessionOpened("node-a", "s1", outbound.Writer);
        return (hub, outbound);
    }

    private static RoutedCall Call() =>
        new(new InferRequest { Inputs = [InferTensor.Create<float>("input", [1, 2], [1f, 2f])] }, Model, DateTimeOffset.UtcNow.AddSeconds(10));

    private static InferTensorData Tensor(string name, string datatype, long[] shape, int bytes)
    {
        var tensor = new InferTensorData { Name = name, Datatype = datatype, Raw = ByteString.CopyFrom(new byte[bytes]) };
        tensor.Shape.Add(shape);
        return tensor;
    }
}
