using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json.Nodes;
using Emc.Contracts.Node.V1;
using Emc.Core.Inference;
using Emc.Node.Inference;
using Emc.Node.Tests.Work;
using Emc.Node.Work;
using Emc.Tests.Shared;
using Google.Protobuf;
using Microsoft.Extensions.Logging.Abstractions;

namespace Emc.Node.Tests.Inference;

/// <summary>One engine process (test/fixtures/openai_engine.py) serving the model "tiny-7b", shared by the tests of a class.</summary>
public sealed class EngineFixture : IAsyncLifetime
{
    public OpenAiEngineProcess Engine { get; private set; } = null!;

    public async Task InitializeAsync() => Engine = await OpenAiEngineProcess.StartAsync(false, "--model", "tiny-7b");

    public async Task DisposeAsync() => await Engine.DisposeAsync();
}

/// <summary>
/// A node's external engine against a real OpenAI-compatible server: the model it picks, calls passed
/// through whole and streamed, the engine's own errors, an engine that is down or breaks off, and
/// cancellation reaching the engine.
/// </summary>
public sealed class ExternalEngineTests(EngineFixture fixture) : IClassFixture<EngineFixture>
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(30);

    [Fact]
    public async Task ResolveModel_OneModelListed_PicksItWhateverItsName()
    {
        using var engine = new ExternalEngine(new EngineEndpoint("tiny", fixture.Engine.BaseUrl));

        Assert.Equal("tiny-7b", await engine.ResolveModelAsync(CancellationToken.None));
    }

    [Fact]
    public async Task ResolveModel_SeveralModels_PicksTheOneNamedLikeTheEngineOrRefuses()
    {
        await using var several = await OpenAiEngineProcess.StartAsync(false, "--model", "a", "--model", "b");
        using var named = new ExternalEngine(new EngineEndpoint("b", several.BaseUrl));
        using var unnamed = new ExternalEngine(new EngineEndpoint("c", several.BaseUrl));

        Assert.Equal("b", await named.ResolveModelAsync(CancellationToken.None));
        var error = await Assert.ThrowsAsync<EngineException>(() => unnamed.ResolveModelAsync(CancellationToken.None));
        Assert.False(error.Transient);
        Assert.Contains("lists 2 models (a, b) and none is named 'c'", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task ResolveModel_EngineDown_IsTransient()
    {
        using var engine = new ExternalEngine(new EngineEndpoint("tiny", new Uri($"http://127.0.0.1:{ClosedPort()}/v1")));

        var error = await Assert.ThrowsAsync<EngineException>(() => engine.ResolveModelAsync(CancellationToken.None));

        Assert.True(error.Transient);
        Assert.Contains("does not answer", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task ResolveModel_NotAnOpenAiBaseUrl_SaysSo()
    {
        using var engine = new ExternalEngine(new EngineEndpoint("tiny", new Uri($"http://127.0.0.1:{fixture.Engine.Port}/nothing")));

        var error = await Assert.ThrowsAsync<EngineException>(() => engine.ResolveModelAsync(CancellationToken.None));

        Assert.False(error.Transient);
        Assert.Contains("answered 404", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Proxy_WholeAnswer_ComesBackWithTheEngineModelAndUsage()
    {
        using var engine = new ExternalEngine(new EngineEndpoint("tiny", fixture.Engine.BaseUrl));
        var call = Call("chat/completions", new JsonObject
        {
            ["model"] = "tiny",
            ["messages"] = new JsonArray(new JsonObject { ["role"] = "system", ["content"] = "be brief" }, new JsonObject { ["role"] = "user", ["content"] = "one two three four" }),
            ["max_tokens"] = 3,
        });

        var chunks = await ProxyAsync(engine, call, "tiny-7b");

        var only = Assert.Single(chunks);
        Assert.Equal(200, only.Status);
        Assert.True(only.Last);
        var answer = JsonNode.Parse(only.Data.ToStringUtf8())!;
        Assert.Equal("tiny-7b", (string?)answer["model"]);
        Assert.Equal("one two three", (string?)answer["choices"]![0]!["message"]!["content"]);
        Assert.Equal("length", (string?)answer["choices"]![0]!["finish_reason"]);
        Assert.Equal(6, (int)answer["usage"]!["prompt_tokens"]!);
        Assert.Equal(3, (int)answer["usage"]!["completion_tokens"]!);
    }

    [Fact]
    public async Task Proxy_Stream_SendsOneChunkPerEventThenALastEmptyOne()
    {
        using var engine = new ExternalEngine(new EngineEndpoint("tiny", fixture.Engine.BaseUrl));
        var call = Call("completions", new JsonObject
        {
            ["model"] = "tiny",
            ["prompt"] = "alpha beta gamma",
            ["stream"] = true,
            ["stream_options"] = new JsonObject { ["include_usage"] = true },
        });
        call.Stream = true;

        var chunks = await ProxyAsync(engine, call, "tiny-7b");

        Assert.Equal(200, chunks[0].Status);
        Assert.All(chunks.Skip(1), c => Assert.Equal(0, c.Status));
        Assert.True(chunks[^1].Last);
        Assert.True(chunks[^1].Data.IsEmpty);
        Assert.All(chunks[..^1], c => Assert.False(c.Last));
        var events = chunks[..^1].Select(c => JsonNode.Parse(c.Data.ToStringUtf8())!).ToList();
        Assert.All(events, e => Assert.Equal("tiny-7b", (string?)e["model"]));
        Assert.Equal("alpha beta gamma", string.Concat(events.Where(e => e["choices"]!.AsArray().Count > 0).Select(e => (string?)e["choices"]![0]!["text"])));
        var usage = events[^1]["usage"]!;
        Assert.Equal(3, (int)usage["prompt_tokens"]!);
        Assert.Equal(3, (int)usage["completion_tokens"]!);
    }

    [Fact]
    public async Task Proxy_EngineRefusesTheRequest_ItsStatusAndErrorBodyPassThrough()
    {
        using var engine = new ExternalEngine(new EngineEndpoint("tiny", fixture.Engine.BaseUrl));
        var call = Call("chat/completions", new JsonObject { ["model"] = "tiny", ["messages"] = new JsonArray(new JsonObject { ["role"] = "user", ["content"] = "x" }), ["n"] = 2, ["stream"] = true });
        call.Stream = true;

        var chunks = await ProxyAsync(engine, call, "tiny-7b");

        var only = Assert.Single(chunks);
        Assert.Equal(400, only.Status);
        Assert.True(only.Last);
        Assert.Equal("n", (string?)JsonNode.Parse(only.Data.ToStringUtf8())!["error"]!["param"]);
    }

    [Fact]
    public async Task Proxy_EngineDown_AnswersUnavailable()
    {
        using var engine = new ExternalEngine(new EngineEndpoint("tiny", new Uri($"http://127.0.0.1:{ClosedPort()}/v1")));

        var chunks = await ProxyAsync(engine, Call("completions", new JsonObject { ["model"] = "tiny", ["prompt"] = "x" }), "tiny-7b");

        var only = Assert.Single(chunks);
        Assert.Equal(InferErrorKind.Unavailable, only.ErrorKind);
        Assert.Contains("does not answer", only.Error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Proxy_NotAJsonObject_IsABadRequest()
    {
        using var engine = new ExternalEngine(new EngineEndpoint("tiny", fixture.Engine.BaseUrl));
        var call = new EngineCall { CallId = 1, ReplicaId = "r", Path = "completions", Body = ByteString.CopyFromUtf8("[1, 2]") };

        var chunks = await ProxyAsync(engine, call, "tiny-7b");

        Assert.Equal(InferErrorKind.BadRequest, Assert.Single(chunks).ErrorKind);
    }

    [Fact]
    public async Task Proxy_EngineBreaksOffMidStream_EndsWithAnError()
    {
        using var engine = new ExternalEngine(new EngineEndpoint("tiny", fixture.Engine.BaseUrl));
        var call = Call("completions", new JsonObject { ["model"] = "tiny", ["prompt"] = "a b c d e", ["stream"] = true, ["x_fixture"] = new JsonObject { ["break_after"] = 2 } });
        call.Stream = true;

        var chunks = await ProxyAsync(engine, call, "tiny-7b");

        Assert.Equal(3, chunks.Count);
        Assert.Equal(InferErrorKind.Internal, chunks[^1].ErrorKind);
        Assert.True(chunks[^1].Last);
    }

    [Fact]
    public async Task Proxy_Cancelled_StopsTheEngineRequest()
    {
        var before = (int)(await fixture.Engine.StatsAsync())["disconnected"]!;
        using var engine = new ExternalEngine(new EngineEndpoint("tiny", fixture.Engine.BaseUrl));
        var call = Call("completions", new JsonObject
        {
            ["model"] = "tiny",
            ["prompt"] = string.Join(' ', Enumerable.Range(0, 100).Select(i => $"w{i}")),
            ["max_tokens"] = 100,
            ["stream"] = true,
            ["x_fixture"] = new JsonObject { ["token_delay_ms"] = 100 },
        });
        call.Stream = true;
        using var cancel = new CancellationTokenSource();
        var first = new TaskCompletionSource();
        var proxy = engine.ProxyAsync(
            call,
            "tiny-7b",
            _ =>
            {
                first.TrySetResult();
                return ValueTask.FromResult(true);
            },
            cancel.Token);

        await first.Task.WaitAsync(Timeout);
        await cancel.CancelAsync();

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => proxy.WaitAsync(Timeout));
        await fixture.Engine.WaitForStatsAsync(s => (int)s["disconnected"]! > before, Timeout);
    }

    [Fact]
    public async Task InferenceHost_EngineReplica_PassesCallsThroughAndRefusesTensorCalls()
    {
        using var engine = new ExternalEngine(new EngineEndpoint("tiny", fixture.Engine.BaseUrl));
        using var models = new ModelCache((_, _, _) => throw new InvalidOperationException("an engine replica loads no model"));
        await using var host = new InferenceHost(models, NullLogger.Instance, engines: [engine]);
        var outbox = new RecordingOutbox();
        await host.AttachAsync(outbox, CancellationToken.None);
        Assert.Equal(NodeMessage.BodyOneofCase.CacheUpdate, (await outbox.NextAsync()).BodyCase);
        using var lease = new CancellationTokenSource();
        var running = host.RunReplicaAsync("serve-1.0#1", new ServeTaskInput { Deployment = "tiny-engine", Engine = "tiny" }, "cpu", lease.Token);

        var status = (await outbox.NextAsync(NodeMessage.BodyOneofCase.ReplicaStatus)).ReplicaStatus;
        Assert.True(status.Ready);
        Assert.Equal("serve-1.0#1", status.ReplicaId);
        Assert.Equal(NodeMessage.BodyOneofCase.CacheUpdate, (await outbox.NextAsync()).BodyCase);

        var call = Call("completions", new JsonObject { ["model"] = "tiny", ["prompt"] = "hello engine" });
        call.ReplicaId = "serve-1.0#1";
        call.CallId = 42;
        host.Dispatch(call);
        var chunk = (await outbox.NextAsync(NodeMessage.BodyOneofCase.EngineChunk)).EngineChunk;
        Assert.Equal(42ul, chunk.CallId);
        Assert.Equal(200, chunk.Status);
        Assert.Equal("hello engine", (string?)JsonNode.Parse(chunk.Data.ToStringUtf8())!["choices"]![0]!["text"]);

        host.Dispatch(new InferCall { CallId = 43, ReplicaId = "serve-1.0#1" });
        var reply = (await outbox.NextAsync(NodeMessage.BodyOneofCase.InferReply)).InferReply;
        Assert.Equal(InferErrorKind.BadRequest, reply.ErrorKind);

        host.Dispatch(new EngineCall { CallId = 44, ReplicaId = "serve-9.0#1", Path = "completions", Body = ByteString.CopyFromUtf8("{}") });
        Assert.Equal(InferErrorKind.Unavailable, (await outbox.NextAsync(NodeMessage.BodyOneofCase.EngineChunk)).EngineChunk.ErrorKind);

        await lease.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => running.WaitAsync(Timeout));
        Assert.False((await outbox.NextAsync(NodeMessage.BodyOneofCase.ReplicaStatus)).ReplicaStatus.Ready);
    }

    [Fact]
    public async Task InferenceHost_EngineNotAnswering_ReplicaAsksAgainAndIsNotReady()
    {
        // An "engine" that takes connections and drops them at once: each check is one connection.
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var checks = 0;
        var thirdCheck = new TaskCompletionSource();
        var accepting = Task.Run(async () =>
        {
            while (true)
            {
                using var client = await listener.AcceptTcpClientAsync();
                client.Client.LingerState = new LingerOption(true, 0);
                if (Interlocked.Increment(ref checks) == 3)
                {
                    thirdCheck.TrySetResult();
                }
            }
        });
        using var engine = new ExternalEngine(new EngineEndpoint("tiny", new Uri($"http://127.0.0.1:{((IPEndPoint)listener.LocalEndpoint).Port}/v1")));
        using var models = new ModelCache((_, _, _) => throw new InvalidOperationException("an engine replica loads no model"));
        await using var host = new InferenceHost(models, NullLogger.Instance, engines: [engine]) { EngineRetryDelay = TimeSpan.FromMilliseconds(20), EngineRetryMaxDelay = TimeSpan.FromMilliseconds(50) };
        using var lease = new CancellationTokenSource();

        var running = host.RunReplicaAsync("serve-1.0#1", new ServeTaskInput { Deployment = "tiny-engine", Engine = "tiny" }, "cpu", lease.Token);
        await thirdCheck.Task.WaitAsync(Timeout);

        Assert.False(running.IsCompleted);
        Assert.Empty(host.ReadyReplicas);
        await lease.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => running.WaitAsync(Timeout));
        listener.Stop();
        await Assert.ThrowsAnyAsync<Exception>(() => accepting);
    }

    [Fact]
    public async Task InferenceHost_UnknownEngine_FailsTheLease()
    {
        using var models = new ModelCache((_, _, _) => throw new InvalidOperationException("an engine replica loads no model"));
        await using var host = new InferenceHost(models, NullLogger.Instance);

        var error = await Assert.ThrowsAsync<TaskFailedException>(() => host.RunReplicaAsync("serve-1.0#1", new ServeTaskInput { Deployment = "x-engine", Engine = "x" }, "cpu", CancellationToken.None));

        Assert.Contains("no engine named 'x'", error.Message, StringComparison.Ordinal);
    }

    private static EngineCall Call(string path, JsonObject body) => new()
    {
        CallId = 7,
        ReplicaId = "r",
        Path = path,
        Body = ByteString.CopyFrom(Encoding.UTF8.GetBytes(body.ToJsonString())),
    };

    private static async Task<List<EngineChunk>> ProxyAsync(ExternalEngine engine, EngineCall call, string model)
    {
        var chunks = new List<EngineChunk>();
        await engine.ProxyAsync(
            call,
            model,
            chunk =>
            {
                chunks.Add(chunk);
                return ValueTask.FromResult(true);
            },
            CancellationToken.None).WaitAsync(Timeout);
        return chunks;
    }

    private static int ClosedPort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
