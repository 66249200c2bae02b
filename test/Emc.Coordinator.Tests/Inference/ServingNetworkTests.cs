using System.Collections.Concurrent;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Emc.Compute.Inference;
using Emc.Compute.Training;
using Emc.Coordinator.Inference;
using Emc.Coordinator.Persistence;
using Emc.Coordinator.Tests.Infrastructure;
using Emc.Coordinator.Training;
using Emc.Core;
using Emc.Core.Hardware;
using Emc.Core.Inference;
using Emc.Core.Training;
using Emc.Node.Agent;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;

namespace Emc.Coordinator.Tests.Inference;

/// <summary>A coordinator and real node agents serving an ONNX model in this process.</summary>
public sealed class ServingNetworkTests
{
    private const int Features = 6;
    private const int Classes = 3;

    [Fact]
    public async Task Deployment_OnTwoNodes_ServesBatchesSurvivesALostNodeAndStops()
    {
        await using var coordinator = await TestCoordinator.StartAsync();
        var onnx = await RegisterOnnxModelAsync(coordinator, "tiny");
        await using var nodes = new ServingNodes(coordinator);
        await nodes.StartAsync(2);

        // Deploy on the two nodes there are.
        using (var bad = await coordinator.Http.PostAsJsonAsync("api/v1/deployments", new DeploymentSpec { Model = "tiny", MinReplicas = 3, MaxReplicas = 2 }, EmcJson.Options))
        {
            Assert.Equal(HttpStatusCode.BadRequest, bad.StatusCode);
        }

        using (var missing = await coordinator.Http.PostAsJsonAsync("api/v1/deployments", new DeploymentSpec { Model = "absent" }, EmcJson.Options))
        {
            Assert.Equal(HttpStatusCode.NotFound, missing.StatusCode);
        }

        var spec = new DeploymentSpec { Model = "tiny", MinReplicas = 2, MaxReplicas = 2, MaxBatch = 16, MaxDelayMicroseconds = 3000 };
        using (var created = await coordinator.Http.PostAsJsonAsync("api/v1/deployments", spec, EmcJson.Options))
        {
            Assert.Equal(HttpStatusCode.Created, created.StatusCode);
        }

        using (var again = await coordinator.Http.PostAsJsonAsync("api/v1/deployments", spec, EmcJson.Options))
        {
            Assert.Equal(HttpStatusCode.Conflict, again.StatusCode);
        }

        var service = coordinator.Host.Services.GetRequiredService<DeploymentService>();
        var backend = coordinator.Host.Services.GetRequiredService<IInferenceBackend>();
        var router = service.GetRouter("tiny-v1")!;
        await Polling.UntilAsync(() => router.ReplicaCount == 2, TimeSpan.FromSeconds(60), "two replicas ready");
        Assert.True(await backend.IsReadyAsync("tiny", null, CancellationToken.None));
        var replicaNodes = router.GetReplicaLoads().Select(l => l.NodeId).ToHashSet();
        Assert.Equal(2, replicaNodes.Count);

        // The same outputs as ONNX Runtime run directly.
        using var direct = OnnxSession.Load(onnx);
        var random = new Random(5);
        for (var rows = 1; rows <= 3; rows++)
        {
            var values = Enumerable.Range(0, rows * Features).Select(_ => (float)random.NextDouble()).ToArray();
            var response = await backend.InferAsync("tiny", null, Request(values, rows), Deadline(10), CancellationToken.None);
            var expected = Assert.Single(direct.Run([InferTensor.Create<float>("input", [rows, Features], values)]));
            var output = Assert.Single(response.Outputs);
            Assert.Equal("logits", output.Name);
            Assert.Equal(expected.Shape, output.Shape);
            var got = output.ToFloatArray();
            var want = expected.ToFloatArray();
            for (var i = 0; i < want.Length; i++)
            {
                Assert.True(Math.Abs(got[i] - want[i]) <= 1e-5f, $"element {i}: {got[i]} vs {want[i]}");
            }
        }

        // A request that does not fit the model is a 400, not a node's problem.
        var wrong = await Assert.ThrowsAsync<OipException>(() => backend.InferAsync("tiny", null, Request(new float[Features + 1], 1, Features + 1), Deadline(10), CancellationToken.None));
        Assert.Equal(OipErrorKind.BadRequest, wrong.Kind);

        // Concurrent single-row requests are batched on the nodes.
        await Task.WhenAll(Enumerable.Range(0, 96).Select(i => backend.InferAsync("tiny", null, Request(new float[Features], 1), Deadline(20), CancellationToken.None)));
        var batchedRows = nodes.Agents.Sum(agent => agent.Inference?.ReadyReplicas.Sum(id => agent.Inference.GetStats(id)?.BatchSizeCounts.Skip(1).Sum() ?? 0) ?? 0);
        Assert.True(batchedRows > 0, "no batch of more than one request was formed");

        // A third node joins; one replica's node is stopped while requests flow.
        await nodes.StartAsync(1);
        var victim = nodes.Agents.First(a => replicaNodes.Contains(a.NodeId!.Value.ToString()));
        var survivor = replicaNodes.Single(n => n != victim.NodeId!.Value.ToString());
        using var flowing = new CancellationTokenSource();
        var outcomes = new ConcurrentBag<string>();
        var clients = Enumerable.Range(0, 4).Select(_ => Task.Run(async () =>
        {
            while (!flowing.IsCancellationRequested)
            {
                try
                {
                    await backend.InferAsync("tiny", null, Request(new float[Features], 1), Deadline(5), CancellationToken.None);
                    outcomes.Add("ok");
                }
                catch (OipException ex)
                {
                    outcomes.Add($"{ex.StatusCode}: {ex.Message}");
                }
            }
        })).ToList();
        await Polling.UntilAsync(() => outcomes.Count > 50, TimeSpan.FromSeconds(30), "requests flowing");
        await nodes.StopAsync(victim);
        await Polling.UntilAsync(
            () => router.ReplicaCount == 2 && router.GetReplicaLoads().All(l => l.NodeId != victim.NodeId!.Value.ToString()),
            TimeSpan.FromSeconds(60),
            "a replacement replica on the third node");
        var before = outcomes.Count;
        await Polling.UntilAsync(() => outcomes.Count > before + 50, TimeSpan.FromSeconds(30), "requests flowing on the replacement");
        await flowing.CancelAsync();
        await Task.WhenAll(clients).WaitAsync(TimeSpan.FromSeconds(30));
        var failures = outcomes.Where(o => o != "ok").ToList();
        Assert.True(failures.All(f => f.StartsWith("503", StringComparison.Ordinal)), string.Join("; ", failures.Distinct()));
        Assert.True(failures.Count <= outcomes.Count / 10, $"{failures.Count} of {outcomes.Count} requests failed: {string.Join("; ", failures.Distinct())}");
        Assert.Contains(survivor, router.GetReplicaLoads().Select(l => l.NodeId));

        var listed = await coordinator.Http.GetFromJsonAsync<List<DeploymentView>>("api/v1/deployments", EmcJson.Options);
        var view = Assert.Single(listed!);
        Assert.Equal("ready", view.State);
        Assert.Equal(2, view.Replicas.Count(r => r.State == "ready"));

        // Undeploy stops every replica on the nodes.
        using (var deleted = await coordinator.Http.DeleteAsync("api/v1/deployments/tiny"))
        {
            Assert.Equal(HttpStatusCode.OK, deleted.StatusCode);
        }

        using (var gone = await coordinator.Http.GetAsync("api/v1/deployments/tiny-v1"))
        {
            Assert.Equal(HttpStatusCode.NotFound, gone.StatusCode);
        }

        await Polling.UntilAsync(() => nodes.Agents.All(a => a.Inference is null || a.Inference.ReadyReplicas.Count == 0), TimeSpan.FromSeconds(30), "replicas stopped");
        var after = await Assert.ThrowsAsync<OipException>(() => backend.InferAsync("tiny", null, Request(new float[Features], 1), Deadline(5), CancellationToken.None));
        Assert.Equal(OipErrorKind.NotFound, after.Kind);
    }

    [Fact]
    public async Task Deployments_OneNodeServesSeveralModelsAndAnUnfitDeploymentSaysWhatItWaitsFor()
    {
        await using var coordinator = await TestCoordinator.StartAsync();
        await RegisterOnnxModelAsync(coordinator, "first");
        await RegisterOnnxModelAsync(coordinator, "second");
        await using var nodes = new ServingNodes(coordinator);
        await nodes.StartAsync(1);

        // Replicas share the node's device: one node holds both deployments at once.
        foreach (var model in new[] { "first", "second" })
        {
            using var created = await coordinator.Http.PostAsJsonAsync("api/v1/deployments", new DeploymentSpec { Model = model }, EmcJson.Options);
            Assert.Equal(HttpStatusCode.Created, created.StatusCode);
        }

        var backend = coordinator.Host.Services.GetRequiredService<IInferenceBackend>();
        var service = coordinator.Host.Services.GetRequiredService<DeploymentService>();
        await Polling.UntilAsync(() => service.GetRouter("first-v1")!.ReplicaCount == 1 && service.GetRouter("second-v1")!.ReplicaCount == 1, TimeSpan.FromSeconds(60), "both deployments ready");
        foreach (var model in new[] { "first", "second" })
        {
            var response = await backend.InferAsync(model, null, Request(new float[Features], 1), Deadline(10), CancellationToken.None);
            Assert.Equal([1L, Classes], Assert.Single(response.Outputs).Shape);
        }

        // A deployment no node can take stays pending and says why; its replica is queued.
        using (var created = await coordinator.Http.PostAsJsonAsync("api/v1/deployments", new DeploymentSpec { Model = "first", Version = 1, Device = "cuda" }, EmcJson.Options))
        {
            Assert.Equal(HttpStatusCode.Conflict, created.StatusCode);
        }

        using (var deleted = await coordinator.Http.DeleteAsync("api/v1/deployments/second"))
        {
            Assert.Equal(HttpStatusCode.OK, deleted.StatusCode);
        }

        using (var created = await coordinator.Http.PostAsJsonAsync("api/v1/deployments", new DeploymentSpec { Model = "second", Device = "cuda" }, EmcJson.Options))
        {
            Assert.Equal(HttpStatusCode.Created, created.StatusCode);
        }

        DeploymentView? pending = null;
        await Polling.UntilAsync(
            () =>
            {
                pending = coordinator.Http.GetFromJsonAsync<DeploymentView>("api/v1/deployments/second-v1", EmcJson.Options).GetAwaiter().GetResult();
                return pending?.Reason is not null;
            },
            TimeSpan.FromSeconds(30),
            "the pending deployment's reason");
        Assert.Equal("pending", pending!.State);
        Assert.Equal("no node with a cuda device", pending.Reason);
        var replica = Assert.Single(pending.Replicas);
        Assert.Equal(("waiting", "no node with a cuda device"), (replica.State, replica.Reason));

        // The serving deployment says nothing of the kind, and counts what its replica answered.
        var ready = (await coordinator.Http.GetFromJsonAsync<DeploymentView>("api/v1/deployments/first-v1", EmcJson.Options))!;
        Assert.Equal("ready", ready.State);
        Assert.Null(ready.Reason);
        Assert.Equal(1, Assert.Single(ready.Replicas).Served);
    }

    /// <summary>Registers a small ONNX MLP (6 features, 3 classes); <paramref name="declaredInput"/> is the input shape the registry declares.</summary>
    internal static async Task<byte[]> RegisterOnnxModelAsync(TestCoordinator coordinator, string name, long[]? declaredInput = null)
    {
        var spec = new ModelSpec { Name = "mlp", Hidden = [8] };
        byte[] onnx;
        using (var model = TrainableModel.Create(spec, [Features], Classes, isText: false, "cpu", seed: 3))
        {
            onnx = OnnxExporter.Export(model);
        }

        var path = Path.Combine(coordinator.DataDirectory, name + ".onnx");
        await File.WriteAllBytesAsync(path, onnx);
        var hash = await coordinator.Api.UploadBlobAsync(path, CancellationToken.None);
        var descriptor = new ModelDescriptor
        {
            Name = name,
            Version = 1,
            Format = "onnx",
            Model = spec,
            SampleShape = [Features],
            Classes = Classes,
            Weights = "",
            File = hash,
            Inputs = [new TensorMetadata("input", TensorDatatype.Fp32, declaredInput ?? [-1, Features])],
            Outputs = [new TensorMetadata("logits", TensorDatatype.Fp32, [-1, Classes])],
            Bytes = onnx.Length,
        };
        var store = coordinator.Host.Services.GetRequiredService<TrainingStore>();
        await store.RegisterModelAsync(
            new ModelRow { Name = name, Format = "onnx", DescriptorJson = JsonSerializer.Serialize(descriptor, EmcJson.Options), WeightsHash = hash, Bytes = onnx.Length },
            null,
            CancellationToken.None);
        return onnx;
    }

    private static InferRequest Request(float[] values, int rows, int features = Features) =>
        new() { Inputs = [InferTensor.Create<float>("input", [rows, features], values)] };

    private static DateTimeOffset Deadline(int seconds) => DateTimeOffset.UtcNow.AddSeconds(seconds);
}

/// <summary>Node agents that can be started and stopped one by one.</summary>
internal sealed class ServingNodes(TestCoordinator coordinator) : IAsyncDisposable
{
    private readonly List<(NodeAgent Agent, Task Run, CancellationTokenSource Stop, string Directory)> _nodes = [];

    public IReadOnlyList<NodeAgent> Agents => [.. _nodes.Where(n => !n.Run.IsCompleted).Select(n => n.Agent)];

    /// <summary>Deposits the minimum stake (10 EMC) for every running node, so that paid deployments may use them.</summary>
    public async Task StakeAsync()
    {
        foreach (var agent in Agents)
        {
            var node = agent.NodeId!.Value.ToString();
            await coordinator.Api.StakeAsync(node, 10_000_000, "deposit", $"stake-{node}", CancellationToken.None);
        }
    }

    public async Task StartAsync(int count, IReadOnlyList<Emc.Node.Inference.EngineEndpoint>? engines = null, Emc.Core.Verification.FaultSimulation? fault = null)
    {
        var started = new List<NodeAgent>();
        for (var i = 0; i < count; i++)
        {
            var directory = Directory.CreateTempSubdirectory("emc-serve-test-").FullName;
            var agent = new NodeAgent(
                new NodeAgentOptions
                {
                    Coordinator = coordinator.Host.Endpoints.ApiUrl,
                    Name = $"serve-{_nodes.Count + 1}",
                    DataDirectory = directory,
                    TrainingThreads = 1,
                    InferenceThreads = 1,
                    DrainTimeout = TimeSpan.FromSeconds(10),
                    LinkBenchmarkBytes = 64 * 1024,
                    Engines = engines ?? [],
                    SimulateFault = fault,
                },
                new FixedProbe(),
                TimeProvider.System,
                NullLogger<NodeAgent>.Instance);
            var stop = new CancellationTokenSource();
            _nodes.Add((agent, Task.Run(() => agent.RunAsync(stop.Token)), stop, directory));
            started.Add(agent);
        }

        await Task.WhenAll(started.Select(a => a.Registered)).WaitAsync(TimeSpan.FromSeconds(60));
    }

    public async Task StopAsync(NodeAgent agent)
    {
        var node = _nodes.Single(n => ReferenceEquals(n.Agent, agent));
        await node.Stop.CancelAsync();
        await node.Run.WaitAsync(TimeSpan.FromSeconds(30));
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var node in _nodes)
        {
            await node.Stop.CancelAsync();
        }

        try
        {
            await Task.WhenAll(_nodes.Select(n => n.Run)).WaitAsync(TimeSpan.FromSeconds(30));
        }
        catch (Exception ex) when (ex is OperationCanceledException or TimeoutException)
        {
            // Stopped as asked.
        }

        foreach (var node in _nodes)
        {
            node.Stop.Dispose();
            try
            {
                Directory.Delete(node.Directory, recursive: true);
            }
            catch (IOException)
            {
                // Left for the OS to clean.
            }
        }
    }

    private sealed class FixedProbe : IDeviceProbe
    {
        public int CudaDeviceCount => 0;

        public DeviceBenchmark Benchmark(string device, CancellationToken cancellationToken) =>
            new() { Device = device, MatmulGflops = 10, MemoryBandwidthGBps = 5 };
    }
}
