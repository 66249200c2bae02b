using Emc.Coordinator.Persistence;
using Emc.Core.Verification;
using Microsoft.EntityFrameworkCore;

namespace Emc.Coordinator.Verification;

/// <summary>The <see cref="TrustBook"/>'s tables: records per (node, scope) in <c>trust_records</c>, reputations per node in <c>trust_reputations</c>.</summary>
public sealed class TrustStore(IDbContextFactory<EmcDbContext> factory, TimeProvider time)
{
    /// <summary>The longest node id the tables hold.</summary>
    public const int MaxNodeLength = 64;

    /// <summary>The longest scope the tables hold.</summary>
    public const int MaxScopeLength = 200;

    /// <summary>Everything stored, as a snapshot to restore the book from.</summary>
    public async Task<TrustSnapshot> LoadAsync(CancellationToken cancellationToken)
    {
        await using var db = await factory.CreateDbContextAsync(cancellationToken);
        var records = await db.TrustRecords.AsNoTracking().ToListAsync(cancellationToken);
        var reputations = await db.TrustReputations.AsNoTracking().ToListAsync(cancellationToken);
        return new TrustSnapshot(
            [.. records
                .OrderBy(r => r.Node, StringComparer.Ordinal)
                .ThenBy(r => r.Scope, StringComparer.Ordinal)
                .Select(r => new TrustRecord(r.Node, r.Scope, r.Consecutive, r.Verified, r.Faults, r.Disputes))],
            reputations.ToDictionary(r => r.Node, r => r.Reputation, StringComparer.Ordinal));
    }

    /// <summary>Writes the newest values of some records and reputations, inserting or replacing rows, in one transaction.</summary>
    public async Task SaveAsync(IReadOnlyCollection<TrustRecord> records, IReadOnlyDictionary<string, double> reputations, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(records);
        ArgumentNullException.ThrowIfNull(reputations);
        if (records.Count == 0 && reputations.Count == 0)
        {
            return;
        }

        var now = time.GetUtcNow().ToUnixTimeMilliseconds();
        await using var db = await factory.CreateDbContextAsync(cancellationToken);

        // A batch is a second's verdicts: the rows of its nodes are few, so they are read and changed in memory.
        var nodes = records.Select(r => r.Node).Concat(reputations.Keys).Distinct(StringComparer.Ordinal).ToList();
        var storedRecords = (await db.TrustRecords.Where(r => nodes.Contains(r.Node)).ToListAsync(cancellationToken))
            .ToDictionary(r => (r.Node, r.Scope));
        foreach (var record in records)
        {
            if (!storedRecords.TryGetValue((record.Node, record.Scope), out var row))
            {
                row = new TrustRecordRow { Node = record.Node, Scope = record.Scope };
                db.TrustRecords.Add(row);
                storedRecords[(record.Node, record.Scope)] = row;
            }

            row.Consecutive = record.Consecutive;
            row.Verified = record.Verified;
            row.Faults = record.Faults;
            row.Disputes = record.Disputes;
            row.UpdatedAtUnixMs = now;
        }

        var storedReputations = (await db.TrustReputations.Where(r => nodes.Contains(r.Node)).ToListAsync(cancellationToken))
            .ToDictionary(r => r.Node, StringComparer.Ordinal);
        foreach (var (node, reputation) in reputations)
        {
            if (!storedReputations.TryGetValue(node, out var row))
            {
                row = new TrustReputationRow { Node = node };
                db.TrustReputations.Add(row);
                storedReputations[node] = row;
            }

            row.Reputation = reputation;
            row.UpdatedAtUnixMs = now;
        }

        await db.SaveChangesAsync(cancellationToken);
    }
}
