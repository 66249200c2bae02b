using System.Collections.Concurrent;
using Emc.Coordinator.Accounts;
using Emc.Core.Inference;

namespace Emc.Coordinator.Inference;

/// <summary>A deployment as stored: what was asked and which version it resolved to.</summary>
public sealed record DeploymentRecord(string Id, DeploymentSpec Spec, int Version, DateTimeOffset CreatedAt)
{
    /// <summary>The account whose deployment it is: the owner of the model it serves, or who deployed an engine.</summary>
    public string Owner { get; init; } = AccountIds.Operator;
}

/// <summary>Durable deployments, so that a restarted coordinator serves what it served before.</summary>
public interface IDeploymentStore
{
    /// <summary>Stores a new deployment; false when one with the same id exists.</summary>
    Task<bool> AddAsync(DeploymentRecord record, CancellationToken cancellationToken);

    Task<IReadOnlyList<DeploymentRecord>> ListAsync(CancellationToken cancellationToken);

    Task<DeploymentRecord?> GetAsync(string id, CancellationToken cancellationToken);

    /// <summary>Replaces a deployment's spec (replica bounds, batching); false when it does not exist.</summary>
    Task<bool> UpdateAsync(DeploymentRecord record, CancellationToken cancellationToken);

    /// <summary>Removes a deployment (undeploy); false when it did not exist.</summary>
    Task<bool> RemoveAsync(string id, CancellationToken cancellationToken);
}

/// <summary>An <see cref="IDeploymentStore"/> in memory, for tests and until the database one is registered.</summary>
public sealed class InMemoryDeploymentStore : IDeploymentStore
{
    private readonly ConcurrentDictionary<string, DeploymentRecord> _records = new(StringComparer.Ordinal);

    public Task<bool> AddAsync(DeploymentRecord record, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(record);
        return Task.FromResult(_records.TryAdd(record.Id, record));
    }

    public Task<IReadOnlyList<DeploymentRecord>> ListAsync(CancellationToken cancellationToken) =>
        Task.FromResult<IReadOnlyList<DeploymentRecord>>([.. _records.Values.OrderBy(r => r.CreatedAt).ThenBy(r => r.Id, StringComparer.Ordinal)]);

    public Task<DeploymentRecord?> GetAsync(string id, CancellationToken cancellationToken) =>
        Task.FromResult(_records.TryGetValue(id, out var record) ? record : null);

    public Task<bool> UpdateAsync(DeploymentRecord record, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(record);
        while (_records.TryGetValue(record.Id, out var current))
        {
            if (_records.TryUpdate(record.Id, record, current))
            {
                return Task.FromResult(true);
            }
        }

        return Task.FromResult(false);
    }

    public Task<bool> RemoveAsync(string id, CancellationToken cancellationToken) =>
        Task.FromResult(_records.TryRemove(id, out _));
}
