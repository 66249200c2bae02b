using System.Security.Cryptography;
using System.Text.Json;
using Emc.Coordinator.Registry;
using Emc.Core.Hardware;
using Emc.Core;
using Emc.Core.Registry;
using Microsoft.EntityFrameworkCore;

namespace Emc.Coordinator.Persistence;

/// <summary>Durable node records: registrations, live state and queries for the API.</summary>
public sealed class NodeStore(IDbContextFactory<EmcDbContext> factory, TimeProvider time)
{
    private static readonly JsonSerializerOptions Json = EmcJson.Options;

    /// <summary>This coordinator's id, made once and kept: registrations are signed for it.</summary>
    public async Task<string> GetOrCreateCoordinatorIdAsync(CancellationToken cancellationToken)
    {
        await using var db = await factory.CreateDbContextAsync(cancellationToken);
        var existing = await db.Settings.AsNoTracking().FirstOrDefaultAsync(s => s.Key == "coordinator-id", cancellationToken);
        if (existing is not null)
        {
            return existing.Value;
        }

        var id = "emc-" + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(8));
        db.Settings.Add(new SettingRecord { Key = "coordinator-id", Value = id });
        await db.SaveChangesAsync(cancellationToken);
        return id;
    }

    /// <summary>Inserts or refreshes a node after a verified registration and makes it connected.</summary>
    public async Task UpsertRegistrationAsync(RegisteredNode node, string sessionId, string? remoteEndpoint, CancellationToken cancellationToken)
    {
        var now = time.GetUtcNow().ToUnixTimeMilliseconds();
        await using var db = await factory.CreateDbContextAsync(cancellationToken);
        var record = await db.Nodes.FindAsync([node.Address], cancellationToken);
        if (record is null)
        {
            record = new NodeRecord
            {
                Address = node.Address,
                Name = node.Name,
                Status = StatusText(NodeStatus.Connected),
                HardwareJson = "{}",
                BenchmarkJson = "{}",
                DevicesJson = "[]",
                FirstSeenUnixMs = now,
            };
            db.Nodes.Add(record);
        }

        record.Name = node.Name;
        record.AgentVersion = node.AgentVersion;
        record.HardwareJson = JsonSerializer.Serialize(node.Hardware, Json);
        record.BenchmarkJson = JsonSerializer.Serialize(node.Benchmark, Json);
        record.DevicesJson = JsonSerializer.Serialize(node.Devices, Json);
        record.Status = StatusText(NodeStatus.Connected);
        record.SessionId = sessionId;
        record.RemoteEndpoint = remoteEndpoint;
        record.LastSeenUnixMs = now;
        record.RegisteredUnixMs = now;
        record.Registrations++;
        await db.SaveChangesAsync(cancellationToken);
    }

    /// <summary>Applies live-state updates; an update of a session that is no longer the node's is dropped.</summary>
    public async Task ApplyStateUpdatesAsync(IReadOnlyCollection<NodeStateUpdate> updates, CancellationToken cancellationToken)
    {
        await using var db = await factory.CreateDbContextAsync(cancellationToken);
        await using var transaction = await db.Database.BeginTransactionAsync(cancellationToken);
        foreach (var update in updates)
        {
            var status = StatusText(update.Status);
            await db.Nodes
                .Where(n => n.Address == update.Address && n.SessionId == update.SessionId)
                .ExecuteUpdateAsync(
                    setters => setters
                        .SetProperty(n => n.Status, status)
                        .SetProperty(n => n.LastSeenUnixMs, update.LastSeenUnixMs),
                    cancellationToken);
        }

        await transaction.CommitAsync(cancellationToken);
    }

    /// <summary>
    /// At start no node has a stream to this process, whatever the database says from before a crash
    /// or restart: mark them lost until they reconnect.
    /// </summary>
    public async Task<int> MarkLiveNodesLostAsync(CancellationToken cancellationToken)
    {
        await using var db = await factory.CreateDbContextAsync(cancellationToken);
        var live = new[] { StatusText(NodeStatus.Connected), StatusText(NodeStatus.Busy), StatusText(NodeStatus.Draining) };
        var lost = StatusText(NodeStatus.Lost);
        return await db.Nodes
            .Where(n => live.Contains(n.Status))
            .ExecuteUpdateAsync(setters => setters.SetProperty(n => n.Status, lost), cancellationToken);
    }

    public async Task<IReadOnlyList<NodeView>> ListAsync(NodeStatus? status, CancellationToken cancellationToken)
    {
        await using var db = await factory.CreateDbContextAsync(cancellationToken);
        var query = db.Nodes.AsNoTracking();
        if (status is { } wanted)
        {
            var text = StatusText(wanted);
            query = query.Where(n => n.Status == text);
        }

        var records = await query.OrderBy(n => n.Name).ThenBy(n => n.Address).ToListAsync(cancellationToken);
        return records.Select(ToView).ToList();
    }

    public async Task<NodeView?> GetAsync(string address, CancellationToken cancellationToken)
    {
        await using var db = await factory.CreateDbContextAsync(cancellationToken);
        var record = await db.Nodes.AsNoTracking().FirstOrDefaultAsync(n => n.Address == address, cancellationToken);
        return record is null ? null : ToView(record);
    }

    /// <summary>Whether the registry knows the node (it registered at least once).</summary>
    public async Task<bool> ExistsAsync(string address, CancellationToken cancellationToken)
    {
        await using var db = await factory.CreateDbContextAsync(cancellationToken);
        return await db.Nodes.AsNoTracking().AnyAsync(n => n.Address == address, cancellationToken);
    }

    public async Task<Dictionary<string, int>> CountByStatusAsync(CancellationToken cancellationToken)
    {
        await using var db = await factory.CreateDbContextAsync(cancellationToken);
        return await db.Nodes.AsNoTracking()
            .GroupBy(n => n.Status)
            .Select(g => new { Status = g.Key, Count = g.Count() })
            .ToDictionaryAsync(g => g.Status, g => g.Count, cancellationToken);
    }

    internal static string StatusText(NodeStatus status) => status switch
    {
        NodeStatus.Connected => "connected",
        NodeStatus.Busy => "busy",
        NodeStatus.Draining => "draining",
        NodeStatus.Lost => "lost",
        NodeStatus.Disconnected => "disconnected",
        _ => throw new ArgumentOutOfRangeException(nameof(status)),
    };

    internal static bool TryParseStatus(string? text, out NodeStatus status)
    {
        foreach (var candidate in Enum.GetValues<NodeStatus>())
        {
            if (string.Equals(StatusText(candidate), text, StringComparison.OrdinalIgnoreCase))
            {
                status = candidate;
                return true;
            }
        }

        status = default;
        return false;
    }

    private static NodeView ToView(NodeRecord record)
    {
        var status = TryParseStatus(record.Status, out var parsed) ? parsed : NodeStatus.Lost;
        return new NodeView(
            record.Address,
            record.Name,
            status,
            record.AgentVersion,
            JsonSerializer.Deserialize<List<string>>(record.DevicesJson, Json) ?? [],
            JsonSerializer.Deserialize<HardwareProfile>(record.HardwareJson, Json) ?? new HardwareProfile(),
            JsonSerializer.Deserialize<BenchmarkReport>(record.BenchmarkJson, Json) ?? new BenchmarkReport(),
            DateTimeOffset.FromUnixTimeMilliseconds(record.FirstSeenUnixMs),
            DateTimeOffset.FromUnixTimeMilliseconds(record.LastSeenUnixMs),
            DateTimeOffset.FromUnixTimeMilliseconds(record.RegisteredUnixMs),
            record.Registrations);
    }
}
