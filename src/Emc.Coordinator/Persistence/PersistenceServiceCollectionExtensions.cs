using Emc.Coordinator.Inference;
using Emc.Coordinator.Scheduling;
using Microsoft.Data.Sqlite;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;

namespace Emc.Coordinator.Persistence;

/// <summary>Registers the database, the node store, the scheduler store and the deployment store.</summary>
public static class PersistenceServiceCollectionExtensions
{
    public static IServiceCollection AddEmcPersistence(this IServiceCollection services, string dataDirectory)
    {
        var path = Path.Combine(dataDirectory, "emc.db");
        var connectionString = new SqliteConnectionStringBuilder
        {
            DataSource = path,
            Cache = SqliteCacheMode.Private,
            Pooling = true,
            DefaultTimeout = 30,
        }.ToString();
        services.AddDbContextFactory<EmcDbContext>(options => options.UseSqlite(connectionString));
        services.AddSingleton<NodeStore>();
        services.AddSingleton<SchedulerStore>();
        services.AddSingleton<IDeploymentStore, DeploymentStore>();
        services.AddSingleton<DatabaseInitializer>();
        return services;
    }
}
