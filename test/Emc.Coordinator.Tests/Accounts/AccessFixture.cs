using System.Text;
using Emc.Compute.Inference;
using Emc.Compute.Training;
using Emc.Coordinator.Tests.Infrastructure;
using Emc.Coordinator.Tests.Training;
using Emc.Core.Inference;
using Emc.Core.Scheduling;
using Emc.Core.Training;
using Microsoft.Data.Sqlite;

namespace Emc.Coordinator.Tests.Accounts;

/// <summary>
/// A coordinator with two users: bob owns a job, a dataset, a training job, a model (an ONNX file) and a
/// deployment of it; alice owns nothing of those, and has a key she revoked. No node is connected, so
/// nothing moves on its own: what a refused request could change is read from the database and the blob
/// folder (<see cref="SnapshotAsync"/>).
/// </summary>
public sealed class AccessFixture : IAsyncLifetime
{
    public const string BobDataset = "bob-data";
    public const string BobModel = "bob-model";

    public TestCoordinator Coordinator { get; private set; } = null!;

    public TestUser Alice { get; private set; } = null!;

    public TestUser Bob { get; private set; } = null!;

    /// <summary>A key of alice's that she revoked.</summary>
    public string RevokedKey { get; private set; } = "";

    /// <summary>A well-formed key that no account has.</summary>
    public string UnknownKey { get; } = "emc_0123456789ab_" + new string('A', 43);

    public string BobJob { get; private set; } = "";

    public string BobTask => BobJob + ".0";

    public string BobTraining { get; private set; } = "";

    public string BobModelFile { get; private set; } = "";

    public string BobDeployment { get; private set; } = "";

    /// <summary>The ONNX file of bob's model: an MLP, input "input" FP32 [batch, 4], 3 classes.</summary>
    public byte[] Onnx { get; private set; } = [];

    public async Task InitializeAsync()
    {
        Coordinator = await TestCoordinator.StartAsync();
        Alice = await Coordinator.CreateUserAsync("alice");
        Bob = await Coordinator.CreateUserAsync("bob");
        var spare = await Alice.Api.CreateKeyAsync("me", "spare", CancellationToken.None);
        await Alice.Api.RevokeKeyAsync("me", spare.Id, CancellationToken.None);
        RevokedKey = spare.Key;

        var none = CancellationToken.None;
        BobJob = (await Bob.Api.SubmitJobAsync(new JobSpec { Tasks = [new TaskSpec { Kind = "sleep", Input = "{\"ms\":1}" }] }, none)).Id;
        var csv = TrainingNetworkTests.WriteCsv(Coordinator.DataDirectory, seed: 5);
        await Bob.Api.UploadDatasetAsync(BobDataset, "csv", null, null, [csv], none);
        BobTraining = (await Bob.Api.SubmitTrainingAsync(TrainingSpec(BobDataset), none)).Id;

        using (var model = TrainableModel.Create(new ModelSpec { Name = ModelSpec.Mlp, Hidden = [8] }, [4], 3, false, "cpu", 3))
        {
            Onnx = OnnxExporter.Export(model);
        }

        var path = Path.Combine(Coordinator.DataDirectory, "bob-model.onnx");
        await File.WriteAllBytesAsync(path, Onnx);
        BobModelFile = (await Bob.Api.PushModelAsync(path, BobModel, null, "onnx", [], [], none)).File!;
        BobDeployment = (await Bob.Api.DeployAsync(new DeploymentSpec { Model = BobModel, Budget = 1_000_000 }, none)).Id;
        await QuietAsync();
    }

    /// <summary>A training job on <paramref name="dataset"/> (an MLP; it waits, as no node is connected).</summary>
    public static TrainingJobSpec TrainingSpec(string dataset, string? output = null) => new()
    {
        Name = "access",
        Model = new ModelSpec { Name = "mlp", Hidden = [8] },
        Dataset = dataset,
        BatchSize = 16,
        Rounds = 2,
        Output = output,
        Budget = 1_000_000,
    };

    /// <summary>
    /// Every row of every table (leaving out the columns time alone changes: last seen, last used, updated
    /// at, wait reasons) and the names of the stored blobs.
    /// </summary>
    public async Task<string> SnapshotAsync()
    {
        var text = new StringBuilder();
        await using (var connection = new SqliteConnection($"Data Source={Path.Combine(Coordinator.DataDirectory, "emc.db")};Mode=ReadOnly;Pooling=False"))
        {
            await connection.OpenAsync();
            var tables = new List<string>();
            await using (var list = connection.CreateCommand())
            {
                list.CommandText = "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name";
                await using var reader = await list.ExecuteReaderAsync();
                while (await reader.ReadAsync())
                {
                    tables.Add(reader.GetString(0));
                }
            }

            foreach (var table in tables)
            {
                text.Append('[').Append(table).Append("]\n");
                await using var select = connection.CreateCommand();
                select.CommandText = $"SELECT * FROM \"{table}\" ORDER BY rowid";
                await using var reader = await select.ExecuteReaderAsync();
                while (await reader.ReadAsync())
                {
                    for (var i = 0; i < reader.FieldCount; i++)
                    {
                        var column = reader.GetName(i);
                        if (!IsVolatile(column))
                        {
                            text.Append(column).Append('=').Append(reader.IsDBNull(i) ? "null" : Convert.ToString(reader.GetValue(i), System.Globalization.CultureInfo.InvariantCulture)).Append(';');
                        }
                    }

                    text.Append('\n');
                }
            }
        }

        var blobs = Path.Combine(Coordinator.DataDirectory, "blobs");
        text.Append("[blobs]\n").AppendJoin('\n', Directory.EnumerateFiles(blobs, "*", SearchOption.AllDirectories).Select(Path.GetFileName).Order(StringComparer.Ordinal));
        return text.ToString();
    }

    public async Task DisposeAsync() => await Coordinator.DisposeAsync();

    private static bool IsVolatile(string column) =>
        column.Contains("updated", StringComparison.OrdinalIgnoreCase)
        || column.Contains("LastSeen", StringComparison.OrdinalIgnoreCase)
        || column.Contains("LastUsed", StringComparison.OrdinalIgnoreCase)
        || column.Contains("reason", StringComparison.OrdinalIgnoreCase);

    /// <summary>Waits until two snapshots a moment apart agree: what was set up has been written.</summary>
    private async Task QuietAsync()
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
        var last = await SnapshotAsync();
        while (DateTime.UtcNow < deadline)
        {
            await Task.Delay(300);
            var next = await SnapshotAsync();
            if (next == last)
            {
                return;
            }

            last = next;
        }

        throw new TimeoutException("the coordinator's state did not settle after the set-up");
    }
}

[CollectionDefinition(Name)]
public sealed class AccessCollection : ICollectionFixture<AccessFixture>
{
    public const string Name = "access";
}
