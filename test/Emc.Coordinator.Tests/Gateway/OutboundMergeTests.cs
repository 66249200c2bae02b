using System.Threading.Channels;
using Emc.Contracts.Node.V1;
using Emc.Coordinator.Gateway;
using Google.Protobuf;

namespace Emc.Coordinator.Tests.Gateway;

/// <summary>The session writer's merging of queued inference calls into one InferCalls message.</summary>
public sealed class OutboundMergeTests
{
    [Fact]
    public void Merge_CallsQueuedBehindEachOther_LeaveTogetherInOrderUpToTheLimits_OthersAlone()
    {
        var outbound = NodeSessions.CreateOutbound();
        for (ulong id = 1; id <= 300; id++)
        {
            Assert.True(outbound.Writer.TryWrite(Call(id)));
            if (id == 5)
            {
                Assert.True(outbound.Writer.TryWrite(new CoordinatorMessage { HeartbeatAck = new HeartbeatAck { Seq = 1 } }));
            }
        }

        Assert.True(outbound.Writer.TryWrite(Call(1000, NodeGatewayService.MaxMergedBytes)));
        Assert.True(outbound.Writer.TryWrite(Call(1001)));

        var sent = new List<CoordinatorMessage>();
        while (outbound.Reader.TryRead(out var message))
        {
            sent.Add(NodeGatewayService.Merge(message, outbound.Reader));
        }

        // 1-5 together, the ack, 6-261 (256), 262-300, then the oversized call and the one after it alone.
        Assert.Equal(
            ["InferCalls:5", "HeartbeatAck", "InferCalls:256", "InferCalls:39", "InferCall", "InferCall"],
            sent.Select(m => m.BodyCase == CoordinatorMessage.BodyOneofCase.InferCalls ? $"InferCalls:{m.InferCalls.Calls.Count}" : m.BodyCase.ToString()));
        var ids = sent.SelectMany(m => m.BodyCase switch
        {
            CoordinatorMessage.BodyOneofCase.InferCalls => m.InferCalls.Calls.Select(c => c.CallId),
            CoordinatorMessage.BodyOneofCase.InferCall => [m.InferCall.CallId],
            _ => [],
        });
        Assert.Equal([.. Enumerable.Range(1, 300).Select(i => (ulong)i), 1000UL, 1001UL], ids);
    }

    [Fact]
    public void Merge_LoneCall_IsSentAsItIs()
    {
        var outbound = Channel.CreateUnbounded<CoordinatorMessage>();
        var call = Call(1);
        Assert.Same(call, NodeGatewayService.Merge(call, outbound.Reader));
    }

    private static CoordinatorMessage Call(ulong id, int rawBytes = 16)
    {
        var call = new InferCall { CallId = id, ReplicaId = "job-1.0#1" };
        var tensor = new InferTensorData { Name = "input", Datatype = "FP32", Raw = ByteString.CopyFrom(new byte[rawBytes]) };
        tensor.Shape.Add(rawBytes / 4);
        call.Inputs.Add(tensor);
        return new CoordinatorMessage { InferCall = call };
    }
}
