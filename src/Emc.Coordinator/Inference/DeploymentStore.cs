using System.Text.Json;
using Emc.Coordinator.Persistence;
using Emc.Core;
using Emc.Core.Inference;
using Microsoft.EntityFrameworkCore;

namespace Emc.Coordinator.Inference;

/// <summary>An <see cref="IDeploymentStore"/> in the coordinator's database (table <c>deployments</c>, the spec as JSON).</summary>
public sealed class DeploymentStore(IDbContextFactory<EmcDbContext> factory) : IDeploymentStore
{
    public async Task<bool> AddAsync(DeploymentRecord record, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(record);
        await using var db = await factory.CreateDbContextAsync(cancellationToken);
        if (await db.Deployments.AnyAsync(d => d.Id == record.Id, cancellationToken))
        {
            return false;
        }

        db.Deployments.Add(ToRow(record));
        try
        {
            await db.SaveChangesAsync(cancellationToken);
            return true;
        }
        catch (DbUpdateException)
        {
            // Another writer added the same id between the check and the insert.
            return false;
        }
    }

    public async Task<IReadOnlyList<DeploymentRecord>> ListAsync(CancellationToken cancellationToken)
    {
        await using var db = await factory.CreateDbContextAsync(cancellationToken);
        var rows = await db.Deployments.AsNoTracking().OrderBy(d => d.CreatedAtUnixMs).ThenBy(d => d.Id).ToListAsync(cancellationToken);
        return [.. rows.Select(ToRecord)];
    }

    public async Task<DeploymentRecord?> GetAsync(string id, CancellationToken cancellationToken)
    {
        await using var db = await factory.CreateDbContextAsync(cancellationToken);
        var row = await db.Deployments.AsNoTracking().FirstOrDefaultAsync(d => d.Id == id, cancellationToken);
        return row is null ? null : ToRecord(row);
    }

    public async Task<bool> UpdateAsync(DeploymentRecord record, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(record);
        var row = ToRow(record);
        await using var db = await factory.CreateDbContextAsync(cancellationToken);
        return await db.Deployments.Where(d => d.Id == record.Id).ExecuteUpdateAsync(
            set => set
                .SetProperty(d => d.Model, row.Model)
                .SetProperty(d => d.Version, row.Version)
                .SetProperty(d => d.SpecJson, row.SpecJson)
                .SetProperty(d => d.Owner, row.Owner)
                .SetProperty(d => d.CreatedAtUnixMs, row.CreatedAtUnixMs),
            cancellationToken) > 0;
    }

    public async Task<bool> RemoveAsync(string id, CancellationToken cancellationToken)
    {
        await using var db = await factory.CreateDbContextAsync(cancellationToken);
        return await db.Deployments.Where(d => d.Id == id).ExecuteDeleteAsync(cancellationToken) > 0;
    }

    private static DeploymentRow ToRow(DeploymentRecord record) => new()
    {
        Id = record.Id,
        Model = record.Spec.Model,
        Version = record.Version,
        SpecJson = JsonSerializer.Serialize(record.Spec, EmcJson.Options),
        CreatedAtUnixMs = record.CreatedAt.ToUnixTimeMilliseconds(),
        Owner = record.Owner,
    };

    private static DeploymentRecord ToRecord(DeploymentRow row) => new(
        row.Id,
        JsonSerializer.Deserialize<DeploymentSpec>(row.SpecJson, EmcJson.Options) ?? throw new InvalidDataException($"deployment {row.Id} has an empty spec"),
        row.Version,
        DateTimeOffset.FromUnixTimeMilliseconds(row.CreatedAtUnixMs))
    {
        Owner = row.Owner,
    };
}
