using System.Globalization;
using System.Net;
using System.Net.Http.Json;
using System.Text;
using Emc.Client;
using Emc.Compute.Training;
using Emc.Coordinator.Blobs;
using Emc.Coordinator.Tests.Infrastructure;
using Emc.Core;
using Emc.Core.Hardware;
using Emc.Core.Training;
using Emc.Node.Agent;
using Microsoft.Extensions.Logging.Abstractions;

namespace Emc.Coordinator.Tests.Training;

/// <summary>A coordinator and real node agents (with the real round executor) in this process.</summary>
public sealed class TrainingNetworkTests
{
    private const int Features = 12;
    private const int Classes = 4;
    private const int Rows = 512;

    [Fact]
    public async Task Sync_H1_SgdFp32_MatchesSingleProcessSgdOnTheSameGlobalBatches()
    {
        await using var coordinator = await TestCoordinator.StartAsync();
        var csv = WriteCsv(coordinator.DataDirectory, seed: 7);
        await coordinator.Api.UploadDatasetAsync("blobs", "csv", null, null, [csv], CancellationToken.None);
        await using var nodes = await InProcessNodes.StartAsync(coordinator, 2);

        const int Steps = 20;
        const int PerNodeBatch = 16;
        const double LearningRate = 0.2;
        var spec = new TrainingJobSpec
        {
            Name = "sync-proof",
            Model = new ModelSpec { Name = "mlp", Hidden = [16] },
            Dataset = "blobs",
            Algorithm = TrainingAlgorithm.Sync,
            Nodes = new NodeCount { Min = 2, Max = 2 },
            BatchSize = PerNodeBatch,
            Rounds = Steps,
            Inner = new InnerOptimizerSpec { Optimizer = "sgd", LearningRate = LearningRate },
            Precision = UpdatePrecision.Fp32,
            Evaluation = new EvaluationSpec { HoldoutFraction = 0.25, Every = 1000 },
            Seed = 11,
        };
        var job = await coordinator.Api.SubmitTrainingAsync(spec, CancellationToken.None);
        var done = await WaitForEndAsync(coordinator.Api, job.Id, TimeSpan.FromMinutes(3));
        Assert.True(done.State == TrainingJobState.Completed, $"{done.State}: {done.Reason}");
        Assert.Equal(Steps, done.Round);
        Assert.Equal(2, done.Nodes.Count);
        Assert.All(done.Nodes.Values, n => Assert.Equal(Steps * PerNodeBatch, n.Samples));

        var model = await coordinator.Api.GetModelAsync("sync-proof", null, CancellationToken.None);
        var trained = WeightsCodec.Decode(await coordinator.Api.GetBlobAsync(model.Weights, CancellationToken.None), model.VectorLength);

        // The same SGD in one process: global batch t is stream positions [2·16·t, 2·16·(t+1)).
        var trainExamples = Rows - (long)Math.Round(Rows * 0.25);
        var data = new ExampleSet(ReadBlocks(coordinator, "blobs"));
        using var reference = TrainableModel.Create(spec.Model, [Features], Classes, isText: false, "cpu", spec.Seed);
        using var sgd = new InnerTrainer(new InnerOptions { Optimizer = InnerOptions.Sgd, LearningRate = LearningRate, WeightDecay = 0, TotalSteps = Steps });
        var stream = new SampleStream(spec.Seed, shuffle: true, trainExamples);
        var initial = reference.ReadVector();
        sgd.Run(reference, data, stream.Batches(0, Steps, 2 * PerNodeBatch), 0, CancellationToken.None);
        var expected = reference.ReadVector();

        Assert.Equal(expected.Length, trained.Length);
        var moved = Norm(expected, initial);
        Assert.True(moved > 1e-2, $"training moved the weights by only {moved}");
        var relative = Norm(trained, expected) / Norm(expected, new float[expected.Length]);
        Assert.True(relative <= 1e-4, $"network weights differ from single-process SGD by {relative:E2} (relative)");
    }

    [Fact]
    public async Task Sync_TorchScriptFromPyTorch_FollowsPyTorchsLossCurveWithinOnePercentPerStep()
    {
        var fixtures = Path.Combine(AppContext.BaseDirectory, "fixtures");
        using var curve = System.Text.Json.JsonDocument.Parse(await File.ReadAllTextAsync(Path.Combine(fixtures, "fmnist_cnn_curve.json")));
        var expected = curve.RootElement.GetProperty("losses").EnumerateArray().Select(l => l.GetDouble()).ToList();
        var batch = curve.RootElement.GetProperty("batch").GetInt32();
        var lr = curve.RootElement.GetProperty("lr").GetDouble();

        await using var coordinator = await TestCoordinator.StartAsync();
        const string FashionMnist = "/usr/share/datasets/fashion-mnist";
        await coordinator.Api.UploadDatasetAsync(
            "fmnist-train", "idx", null, null,
            [Path.Combine(FashionMnist, "train-images-idx3-ubyte.gz"), Path.Combine(FashionMnist, "train-labels-idx1-ubyte.gz")],
            CancellationToken.None);
        var script = await coordinator.Api.UploadBlobAsync(Path.Combine(fixtures, "fmnist_cnn.pt"), CancellationToken.None);
        await using var nodes = await InProcessNodes.StartAsync(coordinator, 2);

        // File order, two members of half a batch each: round t trains on examples [32t, 32t + 32), as PyTorch did.
        var job = await coordinator.Api.SubmitTrainingAsync(
            new TrainingJobSpec
            {
                Name = "torchscript-curve",
                Model = new ModelSpec { Name = "torchscript", Script = script },
                Dataset = "fmnist-train",
                Algorithm = TrainingAlgorithm.Sync,
                Nodes = new NodeCount { Min = 2, Max = 2 },
                BatchSize = batch / 2,
                Rounds = expected.Count,
                Inner = new InnerOptimizerSpec { Optimizer = "sgd", LearningRate = lr },
                Precision = UpdatePrecision.Fp32,
                Shuffle = false,
                Evaluation = new EvaluationSpec { HoldoutFraction = 0.1, Every = 1000, MaxExamples = 500 },
            },
            CancellationToken.None);
        var done = await WaitForEndAsync(coordinator.Api, job.Id, TimeSpan.FromMinutes(4));
        Assert.True(done.State == TrainingJobState.Completed, $"{done.State}: {done.Reason}");

        var rounds = await coordinator.Api.GetTrainingRoundsAsync(job.Id, 0, CancellationToken.None);
        Assert.Equal(expected.Count, rounds.Count);
        for (var step = 0; step < expected.Count; step++)
        {
            var loss = rounds[step].TrainLoss!.Value;
            Assert.True(Math.Abs(loss - expected[step]) <= 0.01 * expected[step], $"step {step}: network {loss:0.######}, PyTorch {expected[step]:0.######}");
        }

        Assert.True(expected[^1] < expected[0] * 0.8, "the fixture's curve should fall");
    }

    [Fact]
    public async Task Upload_BadFiles_AreRefusedWithTheReasonAndStoreNothing()
    {
        await using var coordinator = await TestCoordinator.StartAsync();
        var blobs = Path.Combine(coordinator.DataDirectory, "blobs");
        int BlobCount() => Directory.EnumerateFiles(blobs, "*", SearchOption.AllDirectories).Count(f => !f.Contains("incoming", StringComparison.Ordinal));
        var before = BlobCount();

        var truncated = Path.Combine(coordinator.DataDirectory, "train-images-idx3-ubyte");
        await File.WriteAllBytesAsync(truncated, [0, 0, 8, 3, 0, 0, 0, 10, 0, 0, 0, 28, 0, 0, 0, 28, 1, 2, 3]);
        var error = await Assert.ThrowsAsync<EmcApiException>(() => coordinator.Api.UploadDatasetAsync("bad", "idx", null, null, [truncated], CancellationToken.None));
        Assert.Equal(HttpStatusCode.BadRequest, error.Status);
        Assert.Contains("truncated", error.Message, StringComparison.OrdinalIgnoreCase);

        var wrongMagic = Path.Combine(coordinator.DataDirectory, "images.idx");
        await File.WriteAllBytesAsync(wrongMagic, Encoding.ASCII.GetBytes("hello, not an idx file"));
        error = await Assert.ThrowsAsync<EmcApiException>(() => coordinator.Api.UploadDatasetAsync("bad", "idx", null, null, [wrongMagic], CancellationToken.None));
        Assert.Equal(HttpStatusCode.BadRequest, error.Status);

        var csv = Path.Combine(coordinator.DataDirectory, "labels.csv");
        await File.WriteAllTextAsync(csv, "a,b,label\n1,2,0\n3,4,7\n");
        error = await Assert.ThrowsAsync<EmcApiException>(() => coordinator.Api.UploadDatasetAsync("bad", "csv", null, 3, [csv], CancellationToken.None));
        Assert.Contains("7", error.Message, StringComparison.Ordinal);

        error = await Assert.ThrowsAsync<EmcApiException>(() => coordinator.Api.UploadDatasetAsync("bad", "parquet", null, null, [csv], CancellationToken.None));
        Assert.Equal(HttpStatusCode.BadRequest, error.Status);

        Assert.Equal(before, BlobCount());
        Assert.Empty(await coordinator.Api.GetDatasetsAsync(CancellationToken.None));
    }

    [Fact]
    public async Task Submit_BadTrainingJobs_GetA400WithTheReasonAndStartNothing()
    {
        await using var coordinator = await TestCoordinator.StartAsync();
        await coordinator.Api.UploadDatasetAsync("blobs", "csv", null, null, [WriteCsv(coordinator.DataDirectory, seed: 1)], CancellationToken.None);
        var good = new TrainingJobSpec { Model = new ModelSpec { Name = "mlp" }, Dataset = "blobs", Rounds = 1 };

        async Task<string> RefusedAsync(TrainingJobSpec spec)
        {
            var error = await Assert.ThrowsAsync<EmcApiException>(() => coordinator.Api.SubmitTrainingAsync(spec, CancellationToken.None));
            Assert.Equal(HttpStatusCode.BadRequest, error.Status);
            return error.Message;
        }

        Assert.Contains("no dataset", await RefusedAsync(good with { Dataset = "missing" }), StringComparison.Ordinal);
        Assert.Contains("gpt-small", await RefusedAsync(good with { Model = new ModelSpec { Name = "gpt-small" } }), StringComparison.Ordinal);
        Assert.Contains("model", await RefusedAsync(good with { Model = new ModelSpec { Name = "transformer-xl" } }), StringComparison.Ordinal);
        Assert.Contains("how long", await RefusedAsync(good with { Rounds = null }), StringComparison.Ordinal);
        Assert.Contains("nodes", await RefusedAsync(good with { Nodes = new NodeCount { Min = 3, Max = 2 } }), StringComparison.Ordinal);
        Assert.Contains("'test' split", await RefusedAsync(good with { Evaluation = new EvaluationSpec { Split = "test" } }), StringComparison.Ordinal);
        Assert.Contains("innerSteps", await RefusedAsync(good with { Algorithm = TrainingAlgorithm.Sync, InnerSteps = 10 }), StringComparison.Ordinal);

        using var malformed = await coordinator.Http.PostAsync("api/v1/training", new StringContent("{\"model\": 5", Encoding.UTF8, "application/json"));
        Assert.Equal(HttpStatusCode.BadRequest, malformed.StatusCode);
        using var wrongType = await coordinator.Http.PostAsJsonAsync("api/v1/training", new { model = new { name = "mlp" }, dataset = "blobs", rounds = "many" });
        Assert.Equal(HttpStatusCode.BadRequest, wrongType.StatusCode);

        Assert.Empty(await coordinator.Api.GetTrainingJobsAsync(null, 100, CancellationToken.None));
        using var missing = await coordinator.Http.GetAsync("api/v1/training/train-99");
        Assert.Equal(HttpStatusCode.NotFound, missing.StatusCode);
    }

    [Fact]
    public async Task Blobs_PutWithWrongHashOrBadName_IsRefused_AndRangeRequestsResume()
    {
        await using var coordinator = await TestCoordinator.StartAsync();
        var content = Enumerable.Range(0, 10_000).Select(i => (byte)i).ToArray();
        var hash = BlobStore.Hash(content);

        using var wrong = await coordinator.Http.PutAsync($"api/v1/blobs/{new string('a', 64)}", new ByteArrayContent(content));
        Assert.Equal(HttpStatusCode.BadRequest, wrong.StatusCode);
        using var badName = await coordinator.Http.GetAsync("api/v1/blobs/..%2Fetc%2Fpasswd");
        Assert.Equal(HttpStatusCode.BadRequest, badName.StatusCode);
        using var put = await coordinator.Http.PutAsync($"api/v1/blobs/{hash}", new ByteArrayContent(content));
        Assert.Equal(HttpStatusCode.OK, put.StatusCode);

        using var request = new HttpRequestMessage(HttpMethod.Get, $"api/v1/blobs/{hash}");
        request.Headers.Range = new System.Net.Http.Headers.RangeHeaderValue(9_000, null);
        using var partial = await coordinator.Http.SendAsync(request);
        Assert.Equal(HttpStatusCode.PartialContent, partial.StatusCode);
        Assert.Equal(content[9_000..], await partial.Content.ReadAsByteArrayAsync());
    }

    internal static async Task<TrainingJobView> WaitForEndAsync(EmcApiClient api, string id, TimeSpan timeout)
    {
        using var deadline = new CancellationTokenSource(timeout);
        while (true)
        {
            var job = await api.GetTrainingJobAsync(id, CancellationToken.None);
            if (job.State is TrainingJobState.Completed or TrainingJobState.Failed or TrainingJobState.Cancelled)
            {
                return job;
            }

            if (deadline.IsCancellationRequested)
            {
                throw new TimeoutException($"{id} is still {job.State} after {timeout}: round {job.Round}, {job.Reason}");
            }

            await Task.Delay(100, CancellationToken.None);
        }
    }

    /// <summary>Four Gaussian blobs in 12 dimensions, as CSV with a label column.</summary>
    internal static string WriteCsv(string directory, int seed)
    {
        var random = new Random(seed);
        var builder = new StringBuilder(string.Join(",", Enumerable.Range(0, Features).Select(i => $"f{i}")) + ",label\n");
        for (var row = 0; row < Rows; row++)
        {
            var label = row % Classes;
            for (var f = 0; f < Features; f++)
            {
                var center = f % Classes == label ? 1.5 : 0;
                builder.Append((center + (random.NextDouble() - 0.5)).ToString("0.####", CultureInfo.InvariantCulture)).Append(',');
            }

            builder.Append(label.ToString(CultureInfo.InvariantCulture)).Append('\n');
        }

        var path = Path.Combine(directory, $"blobs-{seed}.csv");
        File.WriteAllText(path, builder.ToString());
        return path;
    }

    private static List<Core.Data.ExampleBlock> ReadBlocks(TestCoordinator coordinator, string dataset)
    {
        var view = coordinator.Api.GetDatasetAsync(dataset, CancellationToken.None).GetAwaiter().GetResult();
        return view.Manifest.Splits["train"].Shards
            .OrderBy(s => s.First)
            .Select(s => Core.Data.ShardCodec.Decode(coordinator.Api.GetBlobAsync(s.Sha256, CancellationToken.None).GetAwaiter().GetResult()))
            .ToList();
    }

    private static double Norm(float[] a, float[] b)
    {
        double sum = 0;
        for (var i = 0; i < a.Length; i++)
        {
            var d = (double)a[i] - b[i];
            sum += d * d;
        }

        return Math.Sqrt(sum);
    }
}

/// <summary>Node agents running in this process against a test coordinator.</summary>
internal sealed class InProcessNodes : IAsyncDisposable
{
    private readonly CancellationTokenSource _stop = new();
    private readonly List<Task> _agents = [];
    private readonly List<NodeAgent> _nodes = [];
    private readonly List<string> _directories = [];

    /// <summary>The nodes' data folders, in start order.</summary>
    public IReadOnlyList<string> Directories => _directories;

    /// <summary>The nodes' ids, in start order.</summary>
    public IReadOnlyList<string> NodeIds => [.. _nodes.Select(n => n.NodeId?.ToString() ?? "")];

    /// <summary>
    /// Starts <paramref name="count"/> agents with one training thread each. <paramref name="probe"/> is their
    /// admission benchmark (default: a fixed 10 GFLOP/s); <paramref name="faults"/> the fault each commits on purpose;
    /// <paramref name="executors"/> run their kinds on every node instead of the built-in executors of those kinds.
    /// </summary>
    public static async Task<InProcessNodes> StartAsync(TestCoordinator coordinator, int count, IDeviceProbe? probe = null, IReadOnlyList<Core.Verification.FaultSimulation?>? faults = null, IReadOnlyList<Node.Work.ITaskExecutor>? executors = null)
    {
        var nodes = new InProcessNodes();
        for (var i = 0; i < count; i++)
        {
            var directory = Directory.CreateTempSubdirectory("emc-node-test-").FullName;
            nodes._directories.Add(directory);
            var agent = new NodeAgent(
                new NodeAgentOptions
                {
                    Coordinator = coordinator.Host.Endpoints.ApiUrl,
                    Name = $"node-{i + 1}",
                    DataDirectory = directory,
                    TrainingThreads = 1,
                    DrainTimeout = TimeSpan.FromSeconds(5),
                    SimulateFault = faults is not null && i < faults.Count ? faults[i] : null,
                    Executors = WithDefaults(executors, probe ?? new FixedProbe()),
                },
                probe ?? new FixedProbe(),
                TimeProvider.System,
                NullLogger<NodeAgent>.Instance);
            nodes._nodes.Add(agent);
            nodes._agents.Add(Task.Run(() => agent.RunAsync(nodes._stop.Token)));
        }

        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(60);
        while ((await coordinator.Api.GetNodesAsync(Core.Registry.NodeStatus.Connected, CancellationToken.None)).Count < count)
        {
            if (DateTime.UtcNow > deadline || nodes._agents.Any(a => a.IsCompleted))
            {
                await nodes.DisposeAsync();
                throw new TimeoutException("the in-process nodes did not connect");
            }

            await Task.Delay(100);
        }

        return nodes;
    }

    private static Node.Work.TaskExecutors? WithDefaults(IReadOnlyList<Node.Work.ITaskExecutor>? executors, IDeviceProbe probe)
    {
        if (executors is null)
        {
            return null;
        }

        var all = Node.Work.TaskExecutors.CreateDefault(probe);
        foreach (var executor in executors)
        {
            all.Add(executor);
        }

        return all;
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        try
        {
            await Task.WhenAll(_agents).WaitAsync(TimeSpan.FromSeconds(30));
        }
        catch (Exception ex) when (ex is OperationCanceledException or TimeoutException)
        {
            // Stopped as asked.
        }

        _stop.Dispose();
        foreach (var directory in _directories)
        {
            try
            {
                Directory.Delete(directory, recursive: true);
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
