using Emc.Coordinator.Persistence;
using Microsoft.Data.Sqlite;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Infrastructure;
using Microsoft.EntityFrameworkCore.Migrations;

namespace Emc.Coordinator.Tests.Accounts;

/// <summary>Resources from before accounts existed belong to the operator once the database is migrated.</summary>
public sealed class AccountsMigrationTests
{
    [Fact]
    public async Task Migrate_RowsFromBeforeAccounts_BelongToTheOperator()
    {
        var directory = Directory.CreateTempSubdirectory("emc-migrate-").FullName;
        var path = Path.Combine(directory, "emc.db");
        try
        {
            var options = new DbContextOptionsBuilder<EmcDbContext>().UseSqlite($"Data Source={path};Pooling=False").Options;
            await using (var db = new EmcDbContext(options))
            {
                await db.GetService<IMigrator>().MigrateAsync("20261124175020_Inference");
                await db.Database.ExecuteSqlRawAsync(
                    "INSERT INTO datasets (Name, ManifestHash, ManifestJson, Format, Bytes, CreatedAtUnixMs) VALUES ('old-data', 'h', '{{}}', 'csv', 1, 0);" +
                    "INSERT INTO models (Name, Version, Format, DescriptorJson, WeightsHash, Bytes, CreatedAtUnixMs) VALUES ('old-model', 1, 'onnx', '{{}}', '', 1, 0);" +
                    "INSERT INTO deployments (Id, Model, Version, SpecJson, CreatedAtUnixMs) VALUES ('old-model-v1', 'old-model', 1, '{{}}', 0);");
                await db.Database.MigrateAsync();
            }

            await using (var db = new EmcDbContext(options))
            {
                Assert.Equal("operator", (await db.Datasets.SingleAsync()).Owner);
                Assert.Equal("operator", (await db.Models.SingleAsync()).Owner);
                Assert.Equal("operator", (await db.Deployments.SingleAsync()).Owner);
                Assert.Empty(await db.Accounts.ToListAsync());
                Assert.Empty(await db.ApiKeys.ToListAsync());
            }
        }
        finally
        {
            SqliteConnection.ClearAllPools();
            Directory.Delete(directory, recursive: true);
        }
    }
}
