using System.Collections.Concurrent;
using System.Globalization;
using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using Emc.Compute.Inference;
using Emc.Contracts.Node.V1;
using Emc.Coordinator.Inference;
using Emc.Coordinator.Inference.Oip;
using Emc.Coordinator.Tests.Infrastructure;
using Emc.Coordinator.Verification;
using Emc.Core;
using Emc.Core.Identity;
using Emc.Core.Inference;
using Emc.Node.Connection;
using Google.Protobuf;
using Microsoft.Extensions.DependencyInjection;

namespace Emc.Coordinator.Tests.Inference;

/// <summary>Requests that cannot be served — malformed, unfit for the node's model, too large — get clear errors and leave the deployment serving.</summary>
public sealed class ServingRobustnessTests
{
    /// <summary>
    /// These tests count the calls that reach a misbehaving node; the auditor's background checks would
    /// reach it too (and are tested in Verification/InferenceAuditTests), so they are off here.
    /// </summary>
    private static void NoAudits(IServiceCollection services) => services.AddSingleton(new InferenceAuditOptions { Enabled = false });

    private const int Features = 6;
    private const long MaxRequestBytes = 256 * 1024;

    [Fact]
    public async Task Deployment_MalformedUnfitAndOversizedRequests_ClearErrorsWhileGoodRequestsKeepSucceeding()
    {
        await using var coordinator = await TestCoordinator.StartAsync(services: s => s.Configure<OipOptions>(o => o.MaxRequestBytes = MaxRequestBytes));

        // The registry declares a looser input than the file has ([-1, -1] for [-1, 6]), so that requests the
        // coordinator lets through reach nodes whose model cannot take them.
        await ServingNetworkTests.RegisterOnnxModelAsync(coordinator, "tiny", declaredInput: [-1, -1]);
        await using var nodes = new ServingNodes(coordinator);
        await nodes.StartAsync(2);
        using (var created = await coordinator.Http.PostAsJsonAsync(
            "api/v1/deployments", new DeploymentSpec { Model = "tiny", MinReplicas = 2, MaxReplicas = 2, MaxBatch = 8, MaxDelayMicroseconds = 1000 }, EmcJson.Options))
        {
            Assert.Equal(HttpStatusCode.Created, created.StatusCode);
        }

        var router = coordinator.Host.Services.GetRequiredService<DeploymentService>().GetRouter("tiny-v1")!;
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(60);
        while (router.ReplicaCount < 2)
        {
            Assert.True(DateTime.UtcNow < deadline, "two replicas were not ready within 60 s");
            await Task.Delay(50);
        }

        var replicas = router.GetReplicaLoads().Select(l => l.ReplicaId).Order(StringComparer.Ordinal).ToList();
        Assert.Equal(HttpStatusCode.OK, (await PostAsync(coordinator, Body(1, Features))).Status);

        // Good requests flow the whole time; each bad one is sent again and again between them.
        using var stop = new CancellationTokenSource();
        var good = new ConcurrentQueue<(HttpStatusCode Status, string Body)>();
        var clients = Enumerable.Range(0, 3).Select(_ => Task.Run(async () =>
        {
            while (!stop.IsCancellationRequested)
            {
                good.Enqueue(await PostAsync(coordinator, Body(1, Features)));
            }
        })).ToList();

        var cases = new (string What, Func<HttpContent> Content, HttpStatusCode Status)[]
        {
            ("malformed JSON", () => Json("{\"inputs\": [{\"name\": \"input\", \"shape\": [1, 6], \"datatype\": \"FP32\", \"data\": [1, 2,"), HttpStatusCode.BadRequest),
            ("data that does not fill the shape", () => Json(Body(2, Features, elements: 7)), HttpStatusCode.BadRequest),
            ("a datatype the model does not take", () => Json(Body(1, Features, datatype: "INT32")), HttpStatusCode.BadRequest),
            ("a shape the declared signature allows and the node's model does not", () => Json(Body(1, Features + 1)), HttpStatusCode.BadRequest),
            ("a rank the node's model does not take", () => Json(Body(1, Features, shape: [1, 2, 3])), HttpStatusCode.BadRequest),
            ("a body over the limit", () => Json(Body(MaxRequestBytes / 2, 2)), HttpStatusCode.RequestEntityTooLarge),
            ("a declared length over the limit", () => new ByteArrayContent(new byte[MaxRequestBytes + 1]) { Headers = { { "Content-Type", "application/json" } } }, HttpStatusCode.RequestEntityTooLarge),
        };
        foreach (var (what, content, status) in cases)
        {
            for (var i = 0; i < 5; i++)
            {
                using var request = content();
                var (got, body) = await PostAsync(coordinator, request);
                Assert.True(got == status, $"{what}: {(int)got} {body}");
                using var error = JsonDocument.Parse(body);
                var message = error.RootElement.GetProperty("error").GetString();
                Assert.False(string.IsNullOrEmpty(message), $"{what}: {body}");
                Assert.DoesNotContain("(Parameter '", message, StringComparison.Ordinal);
            }
        }

        // A request of far more rows than a batch holds is still answered.
        var (largeStatus, largeBody) = await PostAsync(coordinator, Body(2000, Features));
        Assert.True(largeStatus == HttpStatusCode.OK, largeBody);
        using (var large = JsonDocument.Parse(largeBody))
        {
            Assert.Equal([2000L, 3L], large.RootElement.GetProperty("outputs")[0].GetProperty("shape").EnumerateArray().Select(e => e.GetInt64()));
        }

        var before = good.Count;
        while (good.Count < before + 50)
        {
            await Task.Delay(20);
        }

        await stop.CancelAsync();
        await Task.WhenAll(clients).WaitAsync(TimeSpan.FromSeconds(30));
        var failures = good.Where(g => g.Status != HttpStatusCode.OK).Select(g => $"{(int)g.Status} {g.Body}").ToList();
        Assert.True(failures.Count == 0, $"{failures.Count} of {good.Count} good requests failed: {string.Join("; ", failures.Distinct())}");

        // The same replicas serve: no bad request cost a replica.
        Assert.Equal(replicas, router.GetReplicaLoads().Select(l => l.ReplicaId).Order(StringComparer.Ordinal));
        Assert.Equal(HttpStatusCode.OK, (await PostAsync(coordinator, Body(3, Features))).Status);
    }

    [Fact]
    public async Task Deployment_ReplicaOnAMisbehavingNode_ClientsGetOnlyRightAnswersAndAnOversizedReplyCostsOnlyThatNode()
    {
        // Eviction after malformed replies is the next test's; here the rogue keeps its replica until its oversized reply.
        await using var coordinator = await TestCoordinator.StartAsync(
            services: s => s.AddSingleton(new DeploymentOptions { Router = { EvictAfterMalformedReplies = 1_000_000 } }));
        var onnx = await ServingNetworkTests.RegisterOnnxModelAsync(coordinator, "tiny");
        using var direct = OnnxSession.Load(onnx);
        using var key = NodeKey.Create();
        await using var rogue = await RogueNode.StartAsync(coordinator, key);
        await using var nodes = new ServingNodes(coordinator);
        await nodes.StartAsync(1);
        using (var created = await coordinator.Http.PostAsJsonAsync(
            "api/v1/deployments", new DeploymentSpec { Model = "tiny", MinReplicas = 2, MaxReplicas = 2, MaxBatch = 4 }, EmcJson.Options))
        {
            Assert.Equal(HttpStatusCode.Created, created.StatusCode);
        }

        // One replica on the honest node, one on the rogue, which says it is ready and answers every call wrongly.
        var router = coordinator.Host.Services.GetRequiredService<DeploymentService>().GetRouter("tiny-v1")!;
        await WaitUntilAsync(() => router.ReplicaCount == 2, TimeSpan.FromSeconds(60), "two replicas");
        Assert.Contains(key.Address.ToString(), router.GetReplicaLoads().Select(l => l.NodeId));
        var backend = coordinator.Host.Services.GetRequiredService<IInferenceBackend>();

        using var stop = new CancellationTokenSource();
        var outcomes = new ConcurrentQueue<string>();
        var clients = Enumerable.Range(0, 4).Select(client => Task.Run(async () =>
        {
            var random = new Random(client);
            while (!stop.IsCancellationRequested)
            {
                var values = Enumerable.Range(0, Features).Select(_ => (float)random.NextDouble()).ToArray();
                try
                {
                    var response = await backend.InferAsync(
                        "tiny", null, new InferRequest { Inputs = [InferTensor.Create<float>("input", [1, Features], values)] }, DateTimeOffset.UtcNow.AddSeconds(20), CancellationToken.None);
                    var expected = Assert.Single(direct.Run([InferTensor.Create<float>("input", [1, Features], values)])).ToFloatArray();
                    var got = Assert.Single(response.Outputs).ToFloatArray();
                    outcomes.Enqueue(got.Zip(expected).All(p => Math.Abs(p.First - p.Second) <= 1e-5f) ? "ok" : $"wrong answer [{string.Join(", ", got)}]");
                }
                catch (OipException ex)
                {
                    outcomes.Enqueue($"{ex.StatusCode}: {ex.Message}");
                }
            }
        })).ToList();

        // Every kind of malformed reply reaches the router at least twice; the rogue is passed over for a while after each.
        await WaitUntilAsync(() => rogue.Calls >= 2 * RogueNode.Malformed, TimeSpan.FromSeconds(90), "calls to the rogue");

        // A reply over the stream's message limit ends the rogue's session, and only that.
        rogue.Oversize = true;
        await WaitUntilAsync(() => rogue.Ended, TimeSpan.FromSeconds(60), "the rogue's stream to end");
        // Its replica leaves the router (and is placed again on the honest node, which has room for two).
        await WaitUntilAsync(() => !router.GetReplicaLoads().Any(l => l.NodeId == key.Address.ToString()), TimeSpan.FromSeconds(30), "the rogue's replica to leave");
        var before = outcomes.Count;
        await WaitUntilAsync(() => outcomes.Count > before + 50, TimeSpan.FromSeconds(30), "requests after the rogue left");
        await stop.CancelAsync();
        await Task.WhenAll(clients).WaitAsync(TimeSpan.FromSeconds(30));

        var failures = outcomes.Where(o => o != "ok").ToList();
        Assert.True(failures.Count == 0, $"{failures.Count} of {outcomes.Count} requests failed: {string.Join("; ", failures.Distinct())}");
        Assert.DoesNotContain(key.Address.ToString(), router.GetReplicaLoads().Select(l => l.NodeId));
    }

    [Fact]
    public async Task Deployment_ReplicaAnsweringMalformedRepliesInARow_IsEvictedAndPlacedOnAnotherNode()
    {
        await using var coordinator = await TestCoordinator.StartAsync(services: NoAudits);
        await ServingNetworkTests.RegisterOnnxModelAsync(coordinator, "tiny");
        using var key = NodeKey.Create();
        await using var rogue = await RogueNode.StartAsync(coordinator, key);
        await using var nodes = new ServingNodes(coordinator);
        await nodes.StartAsync(1);
        using (var created = await coordinator.Http.PostAsJsonAsync(
            "api/v1/deployments", new DeploymentSpec { Model = "tiny", MinReplicas = 2, MaxReplicas = 2 }, EmcJson.Options))
        {
            Assert.Equal(HttpStatusCode.Created, created.StatusCode);
        }

        var service = coordinator.Host.Services.GetRequiredService<DeploymentService>();
        var router = service.GetRouter("tiny-v1")!;
        await WaitUntilAsync(() => router.ReplicaCount == 2, TimeSpan.FromSeconds(60), "two replicas");
        var rogueId = key.Address.ToString();
        Assert.Contains(rogueId, router.GetReplicaLoads().Select(l => l.NodeId));
        var backend = coordinator.Host.Services.GetRequiredService<IInferenceBackend>();

        // Requests go on while the rogue answers wrongly; each of its replies is retried on the honest replica.
        var failures = new List<string>();
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(60);
        while (rogue.Revoked == 0 && DateTime.UtcNow < deadline)
        {
            try
            {
                var response = await backend.InferAsync(
                    "tiny", null, new InferRequest { Inputs = [InferTensor.Create<float>("input", [1, Features], new float[Features])] }, DateTimeOffset.UtcNow.AddSeconds(20), CancellationToken.None);
                Assert.Equal([1L, 3L], Assert.Single(response.Outputs).Shape);
            }
            catch (OipException ex)
            {
                failures.Add(ex.Message);
            }
        }

        // Three malformed replies in a row cost the rogue its lease; the replica is placed again, not on the rogue.
        Assert.Equal(1, rogue.Revoked);
        Assert.Empty(failures);
        Assert.Equal(3, rogue.Calls);
        await WaitUntilAsync(() => router.ReplicaCount == 2, TimeSpan.FromSeconds(60), "the replacement replica");
        Assert.DoesNotContain(rogueId, router.GetReplicaLoads().Select(l => l.NodeId));
        var view = (await service.GetAsync("tiny-v1", CancellationToken.None))!;
        Assert.Equal("ready", view.State);
        Assert.All(view.Replicas, r => Assert.NotEqual(rogueId, r.NodeId));
    }

    [Fact]
    public async Task Deployment_ReplicaNodeGoesSilent_CallsWaitingOnItAreRetriedOnAnotherWhenItIsDeclaredLost()
    {
        await using var coordinator = await TestCoordinator.StartAsync(services: NoAudits);
        await ServingNetworkTests.RegisterOnnxModelAsync(coordinator, "tiny");
        using var key = NodeKey.Create();
        await using var rogue = await RogueNode.StartAsync(coordinator, key);
        await using var nodes = new ServingNodes(coordinator);
        await nodes.StartAsync(1);
        using (var created = await coordinator.Http.PostAsJsonAsync(
            "api/v1/deployments", new DeploymentSpec { Model = "tiny", MinReplicas = 2, MaxReplicas = 2 }, EmcJson.Options))
        {
            Assert.Equal(HttpStatusCode.Created, created.StatusCode);
        }

        var router = coordinator.Host.Services.GetRequiredService<DeploymentService>().GetRouter("tiny-v1")!;
        await WaitUntilAsync(() => router.ReplicaCount == 2, TimeSpan.FromSeconds(60), "two replicas");
        var backend = coordinator.Host.Services.GetRequiredService<IInferenceBackend>();

        // The rogue stops answering and stops its heartbeats, with its stream open: a hung machine. Calls
        // routed to it wait until the registry declares it lost (2 s here), then go to the other replica —
        // long before their 60 s deadline.
        rogue.Silent = true;
        var started = DateTime.UtcNow;
        var calls = new List<Task<InferResponse>>();
        while (rogue.Calls == 0 && DateTime.UtcNow - started < TimeSpan.FromSeconds(1))
        {
            calls.Add(backend.InferAsync(
                "tiny", null, new InferRequest { Inputs = [InferTensor.Create<float>("input", [1, Features], new float[Features])] }, DateTimeOffset.UtcNow.AddSeconds(60), CancellationToken.None));
            await Task.Delay(10);
        }

        Assert.True(rogue.Calls > 0, "no call reached the silent node");
        var responses = await Task.WhenAll(calls).WaitAsync(TimeSpan.FromSeconds(30));
        Assert.All(responses, r => Assert.Equal([1L, 3L], Assert.Single(r.Outputs).Shape));
        Assert.True(DateTime.UtcNow - started < TimeSpan.FromSeconds(30), $"took {DateTime.UtcNow - started}");
        Assert.DoesNotContain(key.Address.ToString(), router.GetReplicaLoads().Select(l => l.NodeId));
    }

    /// <summary>
    /// A node that registers properly, accepts serve leases, says its replicas are ready, keeps its leases
    /// alive — and answers every inference call with a malformed reply, or one too large for the stream;
    /// or, silent, answers nothing and stops its heartbeats with its stream open.
    /// </summary>
    private sealed class RogueNode : IAsyncDisposable
    {
        /// <summary>How many kinds of malformed reply there are.</summary>
        public const int Malformed = 5;

        private readonly NodeConnection _connection;
        private readonly CancellationTokenSource _stop = new();
        private readonly ConcurrentDictionary<string, bool> _leases = new(StringComparer.Ordinal);
        private Task _reader = Task.CompletedTask;
        private Task _heartbeats = Task.CompletedTask;
        private int _calls;
        private int _revoked;

        private RogueNode(NodeConnection connection) => _connection = connection;

        public int Calls => Volatile.Read(ref _calls);

        /// <summary>Leases the coordinator revoked.</summary>
        public int Revoked => Volatile.Read(ref _revoked);

        public volatile bool Oversize;

        public volatile bool Ended;

        public volatile bool Silent;

        public static async Task<RogueNode> StartAsync(TestCoordinator coordinator, NodeKey key)
        {
            var rogue = new RogueNode(await NodeConnection.OpenAsync(coordinator.Channel, key, Registrations.Valid("rogue"), "test", CancellationToken.None));
            rogue._reader = Task.Run(rogue.ReadAsync);
            rogue._heartbeats = Task.Run(rogue.HeartbeatAsync);
            return rogue;
        }

        public async ValueTask DisposeAsync()
        {
            await _stop.CancelAsync();
            await _connection.DisposeAsync();
            await Task.WhenAll(_reader, _heartbeats).WaitAsync(TimeSpan.FromSeconds(10));
            _stop.Dispose();
        }

        private async Task ReadAsync()
        {
            try
            {
                while (await _connection.ReadAsync(_stop.Token) is { } message)
                {
                    switch (message.BodyCase)
                    {
                        case CoordinatorMessage.BodyOneofCase.LeaseOffer:
                            var offer = message.LeaseOffer;
                            _leases[offer.LeaseId] = true;
                            await _connection.SendAsync(new NodeMessage { LeaseAccept = new LeaseAccept { LeaseId = offer.LeaseId } }, _stop.Token);
                            await _connection.SendAsync(new NodeMessage { ReplicaStatus = new ReplicaStatus { ReplicaId = offer.LeaseId, Ready = true } }, _stop.Token);
                            break;
                        case CoordinatorMessage.BodyOneofCase.LeaseRevoke:
                            _leases.TryRemove(message.LeaseRevoke.LeaseId, out _);
                            Interlocked.Increment(ref _revoked);
                            break;
                        case CoordinatorMessage.BodyOneofCase.InferCall:
                            var n = Interlocked.Increment(ref _calls);
                            if (Silent)
                            {
                                break;
                            }

                            await _connection.SendAsync(new NodeMessage { InferReply = Reply(message.InferCall.CallId, Oversize ? -1 : n % Malformed) }, _stop.Token);
                            break;
                    }
                }
            }
            catch (Exception ex) when (ex is Grpc.Core.RpcException or OperationCanceledException or IOException or ObjectDisposedException)
            {
                // The coordinator ended the stream, or the test is over.
            }
            finally
            {
                Ended = true;
            }
        }

        private async Task HeartbeatAsync()
        {
            ulong seq = 0;
            try
            {
                while (!_stop.IsCancellationRequested && !Ended)
                {
                    if (Silent)
                    {
                        await Task.Delay(200, _stop.Token);
                        continue;
                    }

                    var beat = new Heartbeat { Seq = ++seq, SentUnixMs = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds(), RunningTasks = _leases.Count };
                    beat.LeaseIds.Add(_leases.Keys);
                    await _connection.SendAsync(new NodeMessage { Heartbeat = beat }, _stop.Token);
                    await Task.Delay(200, _stop.Token);
                }
            }
            catch (Exception ex) when (ex is Grpc.Core.RpcException or OperationCanceledException or IOException or ObjectDisposedException or InvalidOperationException)
            {
                // Over.
            }
        }

        private static InferReply Reply(ulong callId, int kind)
        {
            var reply = new InferReply { CallId = callId, Ok = true };
            InferTensorData Logits(string datatype, long[] shape, int bytes)
            {
                var data = new InferTensorData { Name = "logits", Datatype = datatype, Raw = ByteString.CopyFrom(new byte[bytes]) };
                data.Shape.Add(shape);
                return data;
            }

            switch (kind)
            {
                case 0:
                    break; // no outputs at all
                case 1:
                    reply.Outputs.Add(Logits("FP32", [1, 4], 16)); // a shape the model does not have
                    break;
                case 2:
                    reply.Outputs.Add(Logits("FP64", [1, 3], 24)); // a datatype the model does not have
                    break;
                case 3:
                    reply.Outputs.Add(Logits("FP32", [1, 3], 5)); // data that does not fill the shape
                    break;
                case 4:
                    reply.Outputs.Add(Logits("FP32", [1, 3], 12));
                    reply.Outputs.Add(Logits("FP32", [1, 3], 12)); // the output twice
                    break;
                default:
                    reply.Outputs.Add(Logits("FP32", [1, 3], ServingLimits.MaxMessageBytes + 1024)); // over the stream's limit
                    break;
            }

            return reply;
        }
    }

    private static async Task WaitUntilAsync(Func<bool> condition, TimeSpan timeout, string what)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (!condition())
        {
            if (DateTime.UtcNow > deadline)
            {
                throw new TimeoutException($"timed out waiting for {what}");
            }

            await Task.Delay(20);
        }
    }

    private static async Task<(HttpStatusCode Status, string Body)> PostAsync(TestCoordinator coordinator, string body)
    {
        using var content = Json(body);
        return await PostAsync(coordinator, content);
    }

    private static async Task<(HttpStatusCode Status, string Body)> PostAsync(TestCoordinator coordinator, HttpContent content)
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        using var response = await coordinator.Http.PostAsync("v2/models/tiny/infer", content, timeout.Token);
        return (response.StatusCode, await response.Content.ReadAsStringAsync(timeout.Token));
    }

    private static StringContent Json(string body) => new(body, Encoding.UTF8, "application/json");

    private static string Body(long rows, int features, long? elements = null, string datatype = "FP32", long[]? shape = null)
    {
        var count = elements ?? rows * features;
        var data = new StringBuilder((int)Math.Min(count * 4, int.MaxValue / 2));
        for (var i = 0; i < count; i++)
        {
            data.Append(i == 0 ? "" : ",").Append(((i % 7) * 0.25).ToString(CultureInfo.InvariantCulture));
        }

        var dims = string.Join(",", shape ?? [rows, features]);
        return $"{{\"inputs\":[{{\"name\":\"input\",\"shape\":[{dims}],\"datatype\":\"{datatype}\",\"data\":[{data}]}}]}}";
    }
}
