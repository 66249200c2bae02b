using Emc.Coordinator.Inference;
using Emc.Coordinator.Persistence;
using Emc.Core.Inference;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.DependencyInjection;

namespace Emc.Coordinator.Tests.Inference;

/// <summary>The EF deployment store on a migrated SQLite file, resolved from DI as the serving path resolves it.</summary>
public sealed class DeploymentStoreTests : IAsyncLifetime
{
    private static readonly CancellationToken None = CancellationToken.None;
    private static readonly DateTimeOffset Created = new(2026, 11, 24, 12, 0, 0, TimeSpan.Zero);

    private readonly string _directory = Directory.CreateTempSubdirectory("emc-deployment-store-test-").FullName;
    private ServiceProvider _services = null!;
    private IDeploymentStore _store = null!;

    public async Task InitializeAsync()
    {
        var services = new ServiceCollection();
        services.AddSingleton(TimeProvider.System);
        services.AddEmcPersistence(_directory);
        _services = services.BuildServiceProvider();
        await _services.GetRequiredService<DatabaseInitializer>().InitializeAsync(None);
        _store = _services.GetRequiredService<IDeploymentStore>();
    }

    public async Task DisposeAsync()
    {
        await _services.DisposeAsync();
        SqliteConnection.ClearAllPools();
        Directory.Delete(_directory, recursive: true);
    }

    [Fact]
    public void Registration_IsTheDatabaseStore() => Assert.IsType<DeploymentStore>(_store);

    [Fact]
    public async Task AddGetList_RoundTripsEveryField()
    {
        var record = new DeploymentRecord("dep-1", FullSpec(), 3, Created);

        Assert.True(await _store.AddAsync(record, None));

        Assert.Equal(record, await _store.GetAsync("dep-1", None));
        Assert.Equal([record], await _store.ListAsync(None));
    }

    [Fact]
    public async Task Add_DuplicateId_ReturnsFalseAndKeepsTheFirst()
    {
        var first = new DeploymentRecord("dep-1", new DeploymentSpec { Model = "a" }, 1, Created);
        Assert.True(await _store.AddAsync(first, None));

        Assert.False(await _store.AddAsync(first with { Spec = new DeploymentSpec { Model = "b" } }, None));

        Assert.Equal(first, await _store.GetAsync("dep-1", None));
    }

    [Fact]
    public async Task Update_ReplacesSpec_AndIsFalseForAnUnknownId()
    {
        var record = new DeploymentRecord("dep-1", new DeploymentSpec { Model = "a", MaxReplicas = 1 }, 2, Created);
        await _store.AddAsync(record, None);
        var scaled = record with { Spec = record.Spec with { MaxReplicas = 4, MaxBatch = 8 } };

        Assert.True(await _store.UpdateAsync(scaled, None));
        Assert.False(await _store.UpdateAsync(scaled with { Id = "nope" }, None));

        Assert.Equal(scaled, await _store.GetAsync("dep-1", None));
        Assert.Null(await _store.GetAsync("nope", None));
    }

    [Fact]
    public async Task Remove_DeletesOnce()
    {
        await _store.AddAsync(new DeploymentRecord("dep-1", new DeploymentSpec { Model = "a" }, 1, Created), None);

        Assert.True(await _store.RemoveAsync("dep-1", None));
        Assert.False(await _store.RemoveAsync("dep-1", None));

        Assert.Null(await _store.GetAsync("dep-1", None));
        Assert.Empty(await _store.ListAsync(None));
    }

    [Fact]
    public async Task List_OrdersByCreationThenId()
    {
        var later = new DeploymentRecord("a-later", new DeploymentSpec { Model = "m" }, 1, Created.AddMinutes(1));
        var second = new DeploymentRecord("b", new DeploymentSpec { Model = "m" }, 1, Created);
        var first = new DeploymentRecord("a", new DeploymentSpec { Model = "m" }, 1, Created);
        foreach (var record in new[] { later, second, first })
        {
            await _store.AddAsync(record, None);
        }

        Assert.Equal(["a", "b", "a-later"], (await _store.ListAsync(None)).Select(r => r.Id));
    }

    [Fact]
    public async Task Records_SurviveANewServiceProvider()
    {
        var record = new DeploymentRecord("dep-1", FullSpec(), 1, Created);
        await _store.AddAsync(record, None);

        var services = new ServiceCollection();
        services.AddSingleton(TimeProvider.System);
        services.AddEmcPersistence(_directory);
        await using var restarted = services.BuildServiceProvider();

        Assert.Equal(record, await restarted.GetRequiredService<IDeploymentStore>().GetAsync("dep-1", None));
    }

    private static DeploymentSpec FullSpec() => new()
    {
        Model = "fmnist",
        Version = 3,
        MinReplicas = 2,
        MaxReplicas = 5,
        MaxBatch = 16,
        MaxDelayMicroseconds = 1500,
        MaxQueue = 99,
        MaxOngoingPerReplica = 3,
        Device = "cuda",
    };
}
