using Microsoft.EntityFrameworkCore;

namespace Emc.Coordinator.Persistence;

/// <summary>Brings the database to the current schema at start and switches SQLite to WAL.</summary>
public sealed class DatabaseInitializer(IDbContextFactory<EmcDbContext> factory)
{
    public async Task InitializeAsync(CancellationToken cancellationToken)
    {
        await using var db = await factory.CreateDbContextAsync(cancellationToken);
        await db.Database.MigrateAsync(cancellationToken);
        if (db.Database.IsSqlite())
        {
            // WAL lets API reads run while heartbeats are written; NORMAL sync is durable at each checkpoint in WAL mode.
            await db.Database.ExecuteSqlRawAsync("PRAGMA journal_mode=WAL;", cancellationToken);
            await db.Database.ExecuteSqlRawAsync("PRAGMA synchronous=NORMAL;", cancellationToken);
        }
    }

    public async Task<bool> IsReachableAsync(CancellationToken cancellationToken)
    {
        await using var db = await factory.CreateDbContextAsync(cancellationToken);
        return await db.Database.CanConnectAsync(cancellationToken);
    }
}
