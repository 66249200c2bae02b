using System.Net;
using Emc.Client;
using Emc.Coordinator.Tests.Infrastructure;
using Emc.Core.Inference;
using Emc.Core.Scheduling;

namespace Emc.Coordinator.Tests.Accounts;

/// <summary>Lists show a key its own account's resources only, and names another account holds cannot be taken over.</summary>
public sealed class OwnershipTests
{
    private static readonly CancellationToken None = CancellationToken.None;

    [Fact]
    public async Task Lists_UserSeesOnlyItsOwn_OperatorSeesEverything()
    {
        await using var coordinator = await TestCoordinator.StartAsync();
        var alice = await coordinator.CreateUserAsync("alice");
        var bob = await coordinator.CreateUserAsync("bob");
        var onnx = await OnnxFileAsync(coordinator);
        foreach (var user in new[] { alice, bob })
        {
            await user.Api.SubmitJobAsync(new JobSpec { Tasks = [new TaskSpec { Kind = "sleep", Input = "{}" }] }, None);
            await user.Api.UploadDatasetAsync($"{user.Id}-data", "csv", null, null, [Training.TrainingNetworkTests.WriteCsv(coordinator.DataDirectory, seed: 2)], None);
            await user.Api.SubmitTrainingAsync(AccessFixture.TrainingSpec($"{user.Id}-data"), None);
            await user.Api.PushModelAsync(onnx, $"{user.Id}-model", null, "onnx", [], [], None);
            await user.Api.DeployAsync(new DeploymentSpec { Model = $"{user.Id}-model", Budget = 1_000_000 }, None);
        }

        var jobs = await alice.Api.GetJobsAsync(null, null, 100, None);
        Assert.Equal("alice", Assert.Single(jobs).Account);
        Assert.All(await alice.Api.GetTasksAsync(null, null, null, 100, None), t => Assert.Equal("alice", t.Account));
        Assert.NotEmpty(await alice.Api.GetTasksAsync(null, null, null, 100, None));
        Assert.Equal(["alice-data"], (await alice.Api.GetDatasetsAsync(None)).Select(d => d.Name));
        Assert.Equal(["alice"], (await alice.Api.GetTrainingJobsAsync(null, 100, None)).Select(j => j.Account));
        Assert.Equal(["alice-model"], (await alice.Api.GetModelsAsync(None)).Select(m => m.Name));
        Assert.Equal("alice", Assert.Single(await alice.Api.GetDeploymentsAsync(None)).Owner);

        // The operator sees both accounts' (its own jobs list also holds the serving replicas' jobs).
        Assert.Equal(["alice", "bob"], (await coordinator.Api.GetJobsAsync(null, null, 100, None)).Select(j => j.Account).Where(a => a != "deployments").Order());
        Assert.Equal(["alice-data", "bob-data"], (await coordinator.Api.GetDatasetsAsync(None)).Select(d => d.Name).Order());
        Assert.Equal(["alice-model", "bob-model"], (await coordinator.Api.GetModelsAsync(None)).Select(m => m.Name).Order());
        Assert.Equal(["alice", "bob"], (await coordinator.Api.GetDeploymentsAsync(None)).Select(d => d.Owner).Order());
        Assert.Equal(["alice", "bob"], (await coordinator.Api.GetTrainingJobsAsync(null, 100, None)).Select(j => j.Account).Order());

        // What users submit is theirs, whatever account the document leaves out; the operator may name any.
        Assert.Equal("bob", (await coordinator.Api.SubmitJobAsync(new JobSpec { Account = "bob", Tasks = [new TaskSpec { Kind = "sleep", Input = "{}" }] }, None)).Account);
        Assert.Equal("operator", (await coordinator.Api.SubmitJobAsync(new JobSpec { Tasks = [new TaskSpec { Kind = "sleep", Input = "{}" }] }, None)).Account);
    }

    [Fact]
    public async Task Names_AnotherAccountsNames_RefusedAndTheirResourcesUnchanged()
    {
        await using var coordinator = await TestCoordinator.StartAsync();
        var alice = await coordinator.CreateUserAsync("alice");
        var bob = await coordinator.CreateUserAsync("bob");
        var onnx = await OnnxFileAsync(coordinator);
        var csv = Training.TrainingNetworkTests.WriteCsv(coordinator.DataDirectory, seed: 4);
        var model = await bob.Api.PushModelAsync(onnx, "shared-name", null, "onnx", [], [], None);
        var dataset = await bob.Api.UploadDatasetAsync("bob-data", "csv", null, null, [csv], None);
        var job = await bob.Api.SubmitJobAsync(new JobSpec { IdempotencyKey = "bob-once", Tasks = [new TaskSpec { Kind = "sleep", Input = "{}" }] }, None);
        await alice.Api.UploadDatasetAsync("alice-data", "csv", null, null, [csv], None);

        // Pushing a version of bob's model, reusing his dataset name, serving an engine or training under his model's name.
        await RefusedAsync(HttpStatusCode.Conflict, "taken by another account", () => alice.Api.PushModelAsync(onnx, "shared-name", null, "onnx", [], [], None));
        await RefusedAsync(HttpStatusCode.Conflict, "taken by another account", () => alice.Api.UploadDatasetAsync("bob-data", "csv", null, null, [csv], None));
        await RefusedAsync(HttpStatusCode.Conflict, "taken by another account", () => alice.Api.DeployAsync(new DeploymentSpec { Model = "shared-name", Engine = true }, None));
        await RefusedAsync(HttpStatusCode.Conflict, "taken by another account", () => alice.Api.SubmitTrainingAsync(AccessFixture.TrainingSpec("alice-data", output: "shared-name"), None));
        await RefusedAsync(HttpStatusCode.Forbidden, "belongs to another account", () => alice.Api.SubmitTrainingAsync(AccessFixture.TrainingSpec("bob-data"), None));

        // Another account's idempotency key neither shows that job nor makes a new one.
        await RefusedAsync(HttpStatusCode.Conflict, "idempotency key", () => alice.Api.SubmitJobAsync(new JobSpec { IdempotencyKey = "bob-once", Tasks = [new TaskSpec { Kind = "sleep", Input = "{}" }] }, None));
        Assert.Empty(await alice.Api.GetJobsAsync(null, null, 100, None));

        var still = Assert.Single(await bob.Api.GetModelsAsync(None));
        Assert.Equal((model.Name, model.Version, model.File, "bob"), (still.Name, still.Version, still.File, still.Owner));
        Assert.Equal(dataset.ManifestHash, (await bob.Api.GetDatasetAsync("bob-data", None)).ManifestHash);
        Assert.Equal(job.Id, Assert.Single(await bob.Api.GetJobsAsync(null, null, 100, None)).Id);

        // The operator may add a version to bob's model: it stays bob's.
        var operatorVersion = await coordinator.Api.PushModelAsync(onnx, "shared-name", null, "onnx", [], [], None);
        Assert.Equal((2, "bob"), (operatorVersion.Version, operatorVersion.Owner));
    }

    [Fact]
    public async Task ModelFiles_OwnerPullsThroughTheModel_NotThroughRawBlobs()
    {
        await using var coordinator = await TestCoordinator.StartAsync();
        var alice = await coordinator.CreateUserAsync("alice");
        var onnx = await OnnxFileAsync(coordinator);
        var model = await alice.Api.PushModelAsync(onnx, "mine", null, "onnx", [], [], None);

        Assert.Equal(await File.ReadAllBytesAsync(onnx), await alice.Api.GetModelFileAsync("mine", null, model.File!, None));
        await RefusedAsync(HttpStatusCode.Forbidden, "raw blobs are for nodes and the operator", () => alice.Api.GetBlobAsync(model.File!, None));

        // A file that is not the model's is not served through it, even to its owner.
        var other = await alice.Api.UploadBlobAsync(Training.TrainingNetworkTests.WriteCsv(coordinator.DataDirectory, seed: 9), None);
        await RefusedAsync(HttpStatusCode.NotFound, "has a file", () => alice.Api.GetModelFileAsync("mine", null, other, None));
    }

    private static async Task<string> OnnxFileAsync(TestCoordinator coordinator)
    {
        var path = Path.Combine(coordinator.DataDirectory, "model.onnx");
        using var model = Compute.Training.TrainableModel.Create(new Core.Training.ModelSpec { Name = Core.Training.ModelSpec.Mlp, Hidden = [8] }, [4], 3, false, "cpu", 1);
        await File.WriteAllBytesAsync(path, Compute.Inference.OnnxExporter.Export(model));
        return path;
    }

    private static async Task RefusedAsync(HttpStatusCode status, string message, Func<Task> call)
    {
        var error = await Assert.ThrowsAsync<EmcApiException>(call);
        Assert.Equal(status, error.Status);
        Assert.Contains(message, error.Message, StringComparison.Ordinal);
    }
}
