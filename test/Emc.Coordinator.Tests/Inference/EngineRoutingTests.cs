using System.Text;
using System.Text.Json.Nodes;
using System.Threading.Channels;
using Emc.Contracts.Node.V1;
using Emc.Coordinator.Inference;
using Emc.Core.Inference;
using Google.Protobuf;
using Microsoft.Extensions.Logging.Abstractions;

namespace Emc.Coordinator.Tests.Inference;

/// <summary>
/// Engine calls over the node streams, with the nodes played by hand: retried on another replica
/// before the answer starts, ended with an error after it, and a node's garbage (not JSON, oversize,
/// another call's id) refused without harm.
/// </summary>
public sealed class EngineRoutingTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(10);

    private static readonly ModelMetadata Engine = new() { Name = "tiny", Versions = [], Platform = "openai_engine", Inputs = [], Outputs = [] };

    [Fact]
    public async Task EngineCall_ReplicaFailingBeforeItsAnswer_IsRetriedOnAnother()
    {
        var (hub, router, a, b) = TwoNodes();
        var sink = new EngineSink();
        var routing = Route(router, Request(stream: false), sink);

        var (first, firstNode, other, otherNode) = await FirstCallAsync(a, b);
        Assert.Equal("completions", first.Path);
        hub.EngineChunkReceived(firstNode, new EngineChunk { CallId = first.CallId, Last = true, ErrorKind = InferErrorKind.Unavailable, Error = "engine 'tiny' does not answer" });

        var retried = (await other.ReadAsync().AsTask().WaitAsync(Timeout)).EngineCall;
        Assert.Equal(first.Body, retried.Body);
        hub.EngineChunkReceived(otherNode, new EngineChunk { CallId = retried.CallId, Status = 200, Last = true, Data = Json("""{"object":"text_completion","model":"tiny-7b","choices":[{"text":"hi"}],"usage":{"prompt_tokens":2,"completion_tokens":1}}""") });

        var start = await sink.Started.WaitAsync(Timeout);
        Assert.Equal(200, start.Status);
        var answer = JsonNode.Parse(start.Body!)!;
        Assert.Equal("tiny", (string?)answer["model"]);
        Assert.Equal("hi", (string?)answer["choices"]![0]!["text"]);
        Assert.Equal(new TokenUsage(2, 1), sink.Usage);
        var result = await routing.WaitAsync(Timeout);
        Assert.Equal(RouteOutcome.Success, result.Outcome);
        Assert.Equal(2, result.Attempts);
    }

    [Fact]
    public async Task EngineCall_Engine5xx_IsRetriedButItsOwn4xxReachesTheCaller()
    {
        var (hub, router, a, b) = TwoNodes();
        var sink = new EngineSink();
        var routing = Route(router, Request(stream: true), sink);

        var (first, firstNode, other, otherNode) = await FirstCallAsync(a, b);
        hub.EngineChunkReceived(firstNode, new EngineChunk { CallId = first.CallId, Status = 503, Last = true, Data = Json("""{"error":{"message":"loading","type":"server_error"}}""") });
        var retried = (await other.ReadAsync().AsTask().WaitAsync(Timeout)).EngineCall;
        hub.EngineChunkReceived(otherNode, new EngineChunk { CallId = retried.CallId, Status = 400, Data = Json("""{"error":{"message":"n must be 1",""") });
        hub.EngineChunkReceived(otherNode, new EngineChunk { CallId = retried.CallId, Last = true, Data = Json("\"type\":\"invalid_request_error\",\"param\":\"n\",\"code\":null}}") });

        var start = await sink.Started.WaitAsync(Timeout);
        Assert.Equal(400, start.Status);
        Assert.Equal("n", (string?)JsonNode.Parse(start.Body!)!["error"]!["param"]);
        Assert.Null(sink.Usage);
        Assert.Equal(RouteOutcome.Success, (await routing.WaitAsync(Timeout)).Outcome);
    }

    [Fact]
    public async Task EngineCall_GarbageBeforeTheFirstEvent_IsRetriedElsewhere_AndAfterItEndsTheStream()
    {
        var (hub, router, a, b) = TwoNodes();
        var sink = new EngineSink();
        var routing = Route(router, Request(stream: true), sink);

        var (first, firstNode, other, otherNode) = await FirstCallAsync(a, b);
        var firstLine = firstNode == "node-a" ? a.Reader : b.Reader;
        hub.EngineChunkReceived(firstNode, new EngineChunk { CallId = first.CallId, Status = 200, Data = ByteString.CopyFromUtf8("this is not JSON") });

        // The garbage ended that call on its node, and the request went to the other one.
        Assert.Equal(first.CallId, (await firstLine.ReadAsync().AsTask().WaitAsync(Timeout)).GenerateCancel.CallId);
        var retried = (await other.ReadAsync().AsTask().WaitAsync(Timeout)).EngineCall;
        hub.EngineChunkReceived(otherNode, new EngineChunk { CallId = retried.CallId, Status = 200, Data = Json("""{"object":"text_completion","model":"tiny-7b","choices":[{"text":"a"}]}""") });
        Assert.Equal(200, (await sink.Started.WaitAsync(Timeout)).Status);
        var firstEvent = JsonNode.Parse(await sink.Reader.ReadAsync().AsTask().WaitAsync(Timeout))!;
        Assert.Equal("tiny", (string?)firstEvent["model"]);

        // Garbage after the first event cannot be retried: the stream ends with an error, and the node is told to stop.
        hub.EngineChunkReceived(otherNode, new EngineChunk { CallId = retried.CallId, Data = ByteString.CopyFromUtf8("[1, 2, 3]") });
        var error = await Assert.ThrowsAsync<GenerationException>(async () =>
        {
            await foreach (var _ in sink.Reader.ReadAllAsync())
            {
                Assert.Fail("nothing more was passed on");
            }
        });
        Assert.Contains("not a JSON object", error.Message, StringComparison.Ordinal);
        var otherLine = otherNode == "node-a" ? a.Reader : b.Reader;
        Assert.Equal(retried.CallId, (await otherLine.ReadAsync().AsTask().WaitAsync(Timeout)).GenerateCancel.CallId);
        Assert.Equal(RouteOutcome.Success, (await routing.WaitAsync(Timeout)).Outcome);
        Assert.Equal(0, hub.Streaming);
    }

    [Fact]
    public async Task EngineCall_ChunksFromAnotherNodeOrWithUnknownIdsOrOversize_DoNoHarm()
    {
        var hub = new NodeCallHub();
        var a = Channel.CreateUnbounded<CoordinatorMessage>();
        var b = Channel.CreateUnbounded<CoordinatorMessage>();
        hub.SessionOpened("node-a", "s1", a.Writer);
        hub.SessionOpened("node-b", "s2", b.Writer);
        var replica = new NodeReplica("r-a", "node-a", 4, hub);
        var sink = new EngineSink();
        var sending = replica.SendAsync(new RoutedCall(Request(stream: true), Engine, DateTimeOffset.MaxValue, sink), CancellationToken.None);
        var call = (await a.Reader.ReadAsync().AsTask().WaitAsync(Timeout)).EngineCall;

        // Node b answers for node a's call, and node a for a call that does not exist: both ignored.
        var unmatched = hub.UnmatchedReplies;
        hub.EngineChunkReceived("node-b", new EngineChunk { CallId = call.CallId, Status = 200, Data = Json("""{"forged":true}""") });
        hub.EngineChunkReceived("node-a", new EngineChunk { CallId = call.CallId + 1000, Status = 200, Data = Json("""{"forged":true}""") });
        Assert.Equal(unmatched + 2, hub.UnmatchedReplies);
        Assert.False(sink.HasStarted);

        // An event larger than any may be ends the call: nothing was sent, so the router would retry it.
        hub.EngineChunkReceived("node-a", new EngineChunk { CallId = call.CallId, Status = 200, Data = ByteString.CopyFrom(new byte[EngineLimits.MaxEventBytes + 1]) });
        var failure = await Assert.ThrowsAsync<ReplicaUnavailableException>(() => sending.WaitAsync(Timeout));
        Assert.Contains("more than", failure.Message, StringComparison.Ordinal);
        Assert.Equal(call.CallId, (await a.Reader.ReadAsync().AsTask().WaitAsync(Timeout)).GenerateCancel.CallId);
        Assert.Equal(0, hub.Streaming);
    }

    [Fact]
    public async Task EngineCall_NodeStreamEndsMidAnswer_EndsTheStreamWithAnError()
    {
        var hub = new NodeCallHub();
        var a = Channel.CreateUnbounded<CoordinatorMessage>();
        hub.SessionOpened("node-a", "s1", a.Writer);
        var replica = new NodeReplica("r-a", "node-a", 4, hub);
        var sink = new EngineSink();
        var sending = replica.SendAsync(new RoutedCall(Request(stream: true), Engine, DateTimeOffset.MaxValue, sink), CancellationToken.None);
        var call = (await a.Reader.ReadAsync().AsTask().WaitAsync(Timeout)).EngineCall;
        hub.EngineChunkReceived("node-a", new EngineChunk { CallId = call.CallId, Status = 200, Data = Json("""{"model":"x","choices":[{"text":"a"}]}""") });
        Assert.NotNull(await sink.Reader.ReadAsync().AsTask().WaitAsync(Timeout));

        hub.SessionClosed("node-a", "s1");

        await sending.WaitAsync(Timeout);
        var error = await Assert.ThrowsAsync<GenerationException>(async () =>
        {
            await foreach (var _ in sink.Reader.ReadAllAsync())
            {
                Assert.Fail("nothing more was passed on");
            }
        });
        Assert.Contains("broke off", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task EngineCall_CancelledByTheCaller_TellsTheNodeToStop()
    {
        var hub = new NodeCallHub();
        var a = Channel.CreateUnbounded<CoordinatorMessage>();
        hub.SessionOpened("node-a", "s1", a.Writer);
        var replica = new NodeReplica("r-a", "node-a", 4, hub);
        using var cancel = new CancellationTokenSource();
        var sending = replica.SendAsync(new RoutedCall(Request(stream: true), Engine, DateTimeOffset.MaxValue, new EngineSink()), cancel.Token);
        var call = (await a.Reader.ReadAsync().AsTask().WaitAsync(Timeout)).EngineCall;

        await cancel.CancelAsync();

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => sending.WaitAsync(Timeout));
        Assert.Equal(call.CallId, (await a.Reader.ReadAsync().AsTask().WaitAsync(Timeout)).GenerateCancel.CallId);
        Assert.Equal(0, hub.Streaming);
    }

    [Fact]
    public void RewriteEvent_UsageTheClientDidNotAskFor_IsTakenOut()
    {
        var hidden = Request(stream: true) with { HideUsage = true };
        var shown = Request(stream: true);
        var text = """{"id":"x","object":"chat.completion.chunk","model":"tiny-7b","choices":[{"index":0,"delta":{"content":"hi"}}],"usage":null}"""u8;
        var usageOnly = """{"id":"x","object":"chat.completion.chunk","model":"tiny-7b","choices":[],"usage":{"prompt_tokens":5,"completion_tokens":2,"total_tokens":7}}"""u8;

        var plain = JsonNode.Parse(EnginePayloads.RewriteEvent(text, "tiny", hidden, out var none, out var problem)!)!.AsObject();
        Assert.Null(problem);
        Assert.Null(none);
        Assert.Equal("tiny", (string?)plain["model"]);
        Assert.False(plain.ContainsKey("usage"));
        Assert.Equal("hi", (string?)plain["choices"]![0]!["delta"]!["content"]);

        Assert.Null(EnginePayloads.RewriteEvent(usageOnly, "tiny", hidden, out var usage, out problem));
        Assert.Null(problem);
        Assert.Equal(new TokenUsage(5, 2), usage);

        var kept = JsonNode.Parse(EnginePayloads.RewriteEvent(usageOnly, "tiny", shown, out usage, out _)!)!;
        Assert.Equal(7, (int)kept["usage"]!["total_tokens"]!);
        Assert.Equal(new TokenUsage(5, 2), usage);
        Assert.True(JsonNode.Parse(EnginePayloads.RewriteEvent(text, "tiny", shown, out _, out _)!)!.AsObject().ContainsKey("usage"));
    }

    [Theory]
    [InlineData("not json", "not JSON")]
    [InlineData("[1]", "not a JSON object")]
    [InlineData("\"text\"", "not a JSON object")]
    [InlineData("", "not JSON")]
    public void RewriteEvent_NotAJsonObject_IsAProblem(string data, string expected)
    {
        Assert.Null(EnginePayloads.RewriteEvent(Encoding.UTF8.GetBytes(data), "tiny", Request(stream: true), out _, out var problem));
        Assert.Contains(expected, problem, StringComparison.Ordinal);
    }

    [Fact]
    public void RewriteAnswer_UsageOutOfBounds_IsBoundedOrIgnored()
    {
        var request = Request(stream: false) with { MaxTokens = 10 };

        EnginePayloads.RewriteAnswer("""{"usage":{"prompt_tokens":3,"completion_tokens":1000000}}"""u8, "tiny", request, out var capped, out _);
        EnginePayloads.RewriteAnswer("""{"usage":{"prompt_tokens":-3,"completion_tokens":2}}"""u8, "tiny", request, out var negative, out _);
        EnginePayloads.RewriteAnswer("""{"usage":{"prompt_tokens":"3","completion_tokens":2}}"""u8, "tiny", request, out var text, out _);
        EnginePayloads.RewriteAnswer("""{"usage":{"prompt_tokens":99999999,"completion_tokens":2}}"""u8, "tiny", request, out var lie, out _);

        Assert.Equal(new TokenUsage(3, 10), capped);
        Assert.Null(negative);
        Assert.Null(text);
        Assert.Equal(request.Body.Length, lie!.Value.PromptTokens);
    }

    [Fact]
    public void ErrorBody_NotOpenAisShape_IsWrappedInIt()
    {
        var passed = EnginePayloads.ErrorBody("""{"error":{"message":"bad","type":"invalid_request_error","param":"n","code":null}}"""u8, 400);
        var wrapped = JsonNode.Parse(EnginePayloads.ErrorBody("Bad Request"u8, 400))!;

        Assert.Equal("n", (string?)JsonNode.Parse(passed)!["error"]!["param"]);
        Assert.Equal("The engine answered 400: Bad Request", (string?)wrapped["error"]!["message"]);
        Assert.Equal("invalid_request_error", (string?)wrapped["error"]!["type"]);
    }

    private static EngineRequest Request(bool stream) => new()
    {
        Path = "completions",
        Body = Encoding.UTF8.GetBytes($$"""{"model":"tiny","prompt":"hello","stream":{{(stream ? "true" : "false")}}}"""),
        Stream = stream,
    };

    private static ByteString Json(string text) => ByteString.CopyFromUtf8(text);

    private static Task<RouteResult<InferResponse>> Route(ReplicaRouter<RoutedCall, InferResponse> router, EngineRequest request, EngineSink sink)
    {
        var deadline = DateTimeOffset.UtcNow.AddSeconds(30);
        return router.RouteAsync(new RoutedCall(request, Engine, deadline, sink), deadline).AsTask();
    }

    private static (NodeCallHub Hub, ReplicaRouter<RoutedCall, InferResponse> Router, Channel<CoordinatorMessage> A, Channel<CoordinatorMessage> B) TwoNodes()
    {
        var hub = new NodeCallHub();
        var a = Channel.CreateUnbounded<CoordinatorMessage>();
        var b = Channel.CreateUnbounded<CoordinatorMessage>();
        hub.SessionOpened("node-a", "s1", a.Writer);
        hub.SessionOpened("node-b", "s2", b.Writer);
        var router = new ReplicaRouter<RoutedCall, InferResponse>("tiny-engine", new ReplicaRouterOptions(), TimeProvider.System, NullLogger.Instance, seed: 1);
        router.AddReplica(new NodeReplica("r-a", "node-a", 4, hub));
        router.AddReplica(new NodeReplica("r-b", "node-b", 4, hub));
        return (hub, router, a, b);
    }

    private static async Task<(EngineCall Call, string Node, ChannelReader<CoordinatorMessage> Other, string OtherNode)> FirstCallAsync(Channel<CoordinatorMessage> a, Channel<CoordinatorMessage> b)
    {
        var readA = a.Reader.WaitToReadAsync().AsTask();
        var readB = b.Reader.WaitToReadAsync().AsTask();
        var first = await Task.WhenAny(readA, readB).WaitAsync(Timeout);
        return first == readA
            ? ((await a.Reader.ReadAsync()).EngineCall, "node-a", b.Reader, "node-b")
            : ((await b.Reader.ReadAsync()).EngineCall, "node-b", a.Reader, "node-a");
    }
}
