using System.Threading.Channels;
using Emc.Contracts.Node.V1;
using Emc.Coordinator.Inference;
using Emc.Core.Inference;
using Google.Protobuf;
using Microsoft.Extensions.Logging.Abstractions;

namespace Emc.Coordinator.Tests.Inference;

/// <summary>Generations over the node streams: retried before the first text, ended with an error after it.</summary>
public sealed class GenerationRoutingTests
{
    private static readonly ModelMetadata Model = new()
    {
        Name = "lm",
        Versions = ["1"],
        Platform = "emc_zoo",
        Inputs = [new TensorMetadata("input", TensorDatatype.Int64, [-1, -1])],
        Outputs = [new TensorMetadata("logits", TensorDatatype.Fp32, [-1, -1, 256])],
    };

    [Fact]
    public async Task Generation_ReplicaFailingBeforeTheFirstText_IsRetriedOnAnother_ThenAFailureAfterItEndsTheStream()
    {
        var hub = new NodeCallHub();
        var a = Channel.CreateUnbounded<CoordinatorMessage>();
        var b = Channel.CreateUnbounded<CoordinatorMessage>();
        hub.SessionOpened("node-a", "s1", a.Writer);
        hub.SessionOpened("node-b", "s2", b.Writer);
        var router = new ReplicaRouter<RoutedCall, InferResponse>("lm-v1", new ReplicaRouterOptions(), TimeProvider.System, NullLogger.Instance, seed: 1);
        router.AddReplica(new NodeReplica("r-a", "node-a", 4, hub));
        router.AddReplica(new NodeReplica("r-b", "node-b", 4, hub));

        var sink = new GenerationSink(12);
        var request = new GenerationRequest { Prompt = "hi"u8.ToArray(), MaxTokens = 10 };
        var routing = router.RouteAsync(new RoutedCall(request, Model, DateTimeOffset.UtcNow.AddSeconds(30), sink), DateTimeOffset.UtcNow.AddSeconds(30)).AsTask();

        // Whichever node gets it first says it is overloaded: nothing was generated, so the other one gets it.
        var (first, firstNode, second, secondNode) = await FirstCallAsync(a, b);
        Assert.Equal(request.MaxTokens, first.MaxTokens);
        Assert.Equal("hi", first.Prompt.ToStringUtf8());
        hub.ChunkReceived(firstNode, new GenerateChunk { CallId = first.CallId, ErrorKind = InferErrorKind.Overloaded, Error = "busy" });
        var retried = (await second.ReadAsync()).GenerateCall;
        Assert.NotNull(retried);

        // A chunk from the wrong node is ignored; the right one's text starts the answer.
        hub.ChunkReceived(firstNode, new GenerateChunk { CallId = retried.CallId, Text = ByteString.CopyFromUtf8("forged") });
        hub.ChunkReceived(secondNode, new GenerateChunk { CallId = retried.CallId, Text = ByteString.CopyFromUtf8("Hel") });
        Assert.Equal((secondNode == "node-a" ? "r-a" : "r-b"), await sink.Started.WaitAsync(TimeSpan.FromSeconds(10)));
        var delta = await sink.Reader.ReadAsync();
        Assert.Equal("Hel", delta.Text);

        // The node's stream ends midway: the answer ends with an error, and is not sent elsewhere.
        hub.SessionClosed(secondNode, secondNode == "node-a" ? "s1" : "s2");
        var error = await Assert.ThrowsAsync<GenerationException>(async () =>
        {
            await foreach (var _ in sink.Reader.ReadAllAsync())
            {
                Assert.Fail("no more text was sent");
            }
        });
        Assert.Contains("broke off", error.Message, StringComparison.Ordinal);
        await routing.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.False(first.CallId == retried.CallId && firstNode == secondNode);
        Assert.Equal(0, hub.Streaming);
    }

    [Fact]
    public async Task Generation_CancelledByTheCaller_TellsTheNodeToStop()
    {
        var hub = new NodeCallHub();
        var a = Channel.CreateUnbounded<CoordinatorMessage>();
        hub.SessionOpened("node-a", "s1", a.Writer);
        var replica = new NodeReplica("r-a", "node-a", 4, hub);
        var sink = new GenerationSink(12);
        using var cancel = new CancellationTokenSource();
        var sending = replica.SendAsync(new RoutedCall(new GenerationRequest { Prompt = [], MaxTokens = 10 }, Model, DateTimeOffset.MaxValue, sink), cancel.Token);
        var call = (await a.Reader.ReadAsync()).GenerateCall;
        await cancel.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => sending);
        Assert.Equal(call.CallId, (await a.Reader.ReadAsync()).GenerateCancel.CallId);
        Assert.Equal(0, hub.Streaming);
    }

    private static async Task<(GenerateCall Call, string Node, ChannelReader<CoordinatorMessage> Other, string OtherNode)> FirstCallAsync(Channel<CoordinatorMessage> a, Channel<CoordinatorMessage> b)
    {
        var readA = a.Reader.WaitToReadAsync().AsTask();
        var readB = b.Reader.WaitToReadAsync().AsTask();
        var first = await Task.WhenAny(readA, readB).WaitAsync(TimeSpan.FromSeconds(10));
        return first == readA
            ? ((await a.Reader.ReadAsync()).GenerateCall, "node-a", b.Reader, "node-b")
            : ((await b.Reader.ReadAsync()).GenerateCall, "node-b", a.Reader, "node-a");
    }
}
