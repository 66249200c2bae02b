using System.Collections.Concurrent;
using Emc.Coordinator.Persistence;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Emc.Coordinator.Registry;

/// <summary>
/// Writes nodes' live state to the database in batches. Heartbeats arrive at hundreds per second;
/// only the newest state of each node matters, so updates are coalesced per node and flushed in one
/// transaction every <see cref="RegistryOptions.FlushInterval"/>.
/// </summary>
public sealed partial class NodeStateWriter(
    NodeStore store,
    TimeProvider time,
    IOptions<RegistryOptions> options,
    ILogger<NodeStateWriter> logger) : BackgroundService
{
    private readonly ConcurrentDictionary<string, NodeStateUpdate> _pending = new(StringComparer.Ordinal);

    /// <summary>Queues the newest state of a node; an older queued state of the same node is replaced.</summary>
    public void Enqueue(NodeStateUpdate update) => _pending[update.Address] = update;

    /// <summary>Writes everything queued so far.</summary>
    public async Task FlushAsync(CancellationToken cancellationToken)
    {
        if (_pending.IsEmpty)
        {
            return;
        }

        var batch = new List<NodeStateUpdate>(_pending.Count);
        foreach (var key in _pending.Keys)
        {
            if (_pending.TryRemove(key, out var update))
            {
                batch.Add(update);
            }
        }

        try
        {
            await store.ApplyStateUpdatesAsync(batch, cancellationToken);
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            // Put them back unless something newer arrived meanwhile, and try at the next flush.
            foreach (var update in batch)
            {
                _pending.TryAdd(update.Address, update);
            }

            Log.FlushFailed(logger, batch.Count, ex);
        }
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(options.Value.FlushInterval, time);
        try
        {
            while (await timer.WaitForNextTickAsync(stoppingToken))
            {
                await FlushAsync(stoppingToken);
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }

        // Last flush on the way out, so a clean stop loses no state.
        await FlushAsync(CancellationToken.None);
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 1100, Level = LogLevel.Warning, Message = "Writing the state of {Count} nodes failed; retrying at the next flush.")]
        public static partial void FlushFailed(ILogger logger, int count, Exception exception);
    }
}
