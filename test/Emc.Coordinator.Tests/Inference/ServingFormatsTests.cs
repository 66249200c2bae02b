using System.Net;
using System.Net.Http.Json;
using Emc.Compute.Training;
using Emc.Coordinator.Inference;
using Emc.Coordinator.Tests.Infrastructure;
using Emc.Coordinator.Tests.Training;
using Emc.Core;
using Emc.Core.Inference;
using Emc.Core.Training;
using Microsoft.Extensions.DependencyInjection;
using TorchSharp;

namespace Emc.Coordinator.Tests.Inference;

/// <summary>
/// The libtorch formats served through the network: a zoo model trained by the network (the registry's
/// weights vector) and a TorchScript file pushed with its signature. What the network answers must be
/// what TrainableModel's forward pass gives for the same weights.
/// </summary>
public sealed class ServingFormatsTests
{
    private const float Tolerance = 1e-5f;

    [Fact]
    public async Task ZooModel_TrainedByTheNetwork_ServedOutputsEqualTrainableModelForward()
    {
        await using var coordinator = await TestCoordinator.StartAsync();
        var csv = TrainingNetworkTests.WriteCsv(coordinator.DataDirectory, seed: 3);
        await coordinator.Api.UploadDatasetAsync("blobs", "csv", null, null, [csv], CancellationToken.None);
        await using var nodes = new ServingNodes(coordinator);
        await nodes.StartAsync(1);

        // A few rounds of training through the network register "blobs-mlp" as an emc-zoo model.
        var job = await coordinator.Api.SubmitTrainingAsync(
            new TrainingJobSpec
            {
                Name = "blobs-mlp",
                Model = new ModelSpec { Name = "mlp", Hidden = [16] },
                Dataset = "blobs",
                Algorithm = TrainingAlgorithm.Sync,
                Nodes = new NodeCount { Min = 1, Max = 1 },
                BatchSize = 32,
                Rounds = 3,
                Inner = new InnerOptimizerSpec { Optimizer = "sgd", LearningRate = 0.1 },
                Evaluation = new EvaluationSpec { HoldoutFraction = 0.25, Every = 1000 },
                Seed = 5,
            },
            CancellationToken.None);
        var done = await TrainingNetworkTests.WaitForEndAsync(coordinator.Api, job.Id, TimeSpan.FromMinutes(3));
        Assert.True(done.State == TrainingJobState.Completed, $"{done.State}: {done.Reason}");
        var model = await coordinator.Api.GetModelAsync("blobs-mlp", null, CancellationToken.None);
        Assert.Equal("emc-zoo", model.Format);
        var weights = WeightsCodec.Decode(await coordinator.Api.GetBlobAsync(model.Weights, CancellationToken.None), model.VectorLength);

        var backend = await DeployAsync(coordinator, "blobs-mlp");
        var features = model.SampleShape[0];
        using var direct = TrainableModel.Create(model.Model, [.. model.SampleShape], model.Classes, model.IsText, "cpu", seed: 0);
        direct.WriteVector(weights);
        var random = new Random(9);
        for (var rows = 1; rows <= 4; rows++)
        {
            var values = Enumerable.Range(0, rows * features).Select(_ => (float)(random.NextDouble() * 3 - 1)).ToArray();
            var response = await backend.InferAsync("blobs-mlp", null, Request(values, [rows, features]), Deadline(30), CancellationToken.None);
            AssertClose(Forward(direct, values, [rows, features]), [rows, model.Classes], Assert.Single(response.Outputs));
        }
    }

    [Fact]
    public async Task TorchScript_PushedWithSignature_ServedOutputsEqualTorchSharpForward()
    {
        await using var coordinator = await TestCoordinator.StartAsync();
        var script = Path.Combine(AppContext.BaseDirectory, "fixtures", "fmnist_cnn.pt");
        var pushed = await coordinator.Api.PushModelAsync(script, "fmnist-cnn", null, null, ["input:FP32:-1,1,28,28"], ["logits:FP32:-1,10"], CancellationToken.None);
        Assert.Equal("torchscript", pushed.Format);

        // A signature the network cannot run a TorchScript file with is refused at deploy, not by every node in turn.
        await coordinator.Api.PushModelAsync(script, "fmnist-loose", null, null, ["input:FP32:-1,1,-1,28"], ["logits:FP32:-1,10"], CancellationToken.None);
        using (var refused = await coordinator.Http.PostAsJsonAsync("api/v1/deployments", new DeploymentSpec { Model = "fmnist-loose" }, EmcJson.Options))
        {
            var body = await refused.Content.ReadAsStringAsync();
            Assert.True(refused.StatusCode == HttpStatusCode.BadRequest, body);
            Assert.Contains("fixed sample dimensions", body, StringComparison.Ordinal);
        }

        await using var nodes = new ServingNodes(coordinator);
        await nodes.StartAsync(1);
        var backend = await DeployAsync(coordinator, "fmnist-cnn");

        using var direct = TrainableModel.Create(new ModelSpec { Name = ModelSpec.TorchScript, Script = pushed.File }, [1, 28, 28], 10, isText: false, "cpu", seed: 0, script);
        var random = new Random(4);
        foreach (var rows in new[] { 1, 3 })
        {
            var values = Enumerable.Range(0, rows * 28 * 28).Select(_ => (float)random.NextDouble()).ToArray();
            var response = await backend.InferAsync("fmnist-cnn", null, Request(values, [rows, 1, 28, 28]), Deadline(30), CancellationToken.None);
            AssertClose(Forward(direct, values, [rows, 1, 28, 28]), [rows, 10], Assert.Single(response.Outputs));
        }
    }

    /// <summary>Deploys one replica of <paramref name="model"/> and waits until it serves.</summary>
    internal static async Task<IInferenceBackend> DeployAsync(TestCoordinator coordinator, string model, int maxBatch = 8)
    {
        using (var created = await coordinator.Http.PostAsJsonAsync(
            "api/v1/deployments", new DeploymentSpec { Model = model, MinReplicas = 1, MaxReplicas = 1, MaxBatch = maxBatch }, EmcJson.Options))
        {
            Assert.True(created.StatusCode == HttpStatusCode.Created, await created.Content.ReadAsStringAsync());
        }

        var backend = coordinator.Host.Services.GetRequiredService<IInferenceBackend>();
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(60);
        while (!await backend.IsReadyAsync(model, null, CancellationToken.None))
        {
            if (DateTime.UtcNow > deadline)
            {
                var views = await coordinator.Http.GetStringAsync("api/v1/deployments");
                throw new TimeoutException($"{model} has no ready replica after 60 s: {views}");
            }

            await Task.Delay(50);
        }

        return backend;
    }

    private static float[] Forward(TrainableModel model, float[] values, long[] shape)
    {
        using var scope = torch.NewDisposeScope();
        using var noGrad = torch.no_grad();
        using var input = torch.tensor(values, shape);
        return model.Forward(input).contiguous().data<float>().ToArray();
    }

    private static void AssertClose(float[] expected, long[] shape, InferTensor output)
    {
        Assert.Equal(TensorDatatype.Fp32, output.Datatype);
        Assert.Equal(shape, output.Shape);
        var got = output.ToFloatArray();
        Assert.Equal(expected.Length, got.Length);
        for (var i = 0; i < expected.Length; i++)
        {
            Assert.True(Math.Abs(got[i] - expected[i]) <= Tolerance, $"element {i}: served {got[i]}, forward {expected[i]}");
        }
    }

    private static InferRequest Request(float[] values, long[] shape) =>
        new() { Inputs = [InferTensor.Create<float>("input", shape, values)] };

    private static DateTimeOffset Deadline(int seconds) => DateTimeOffset.UtcNow.AddSeconds(seconds);
}
