using System.Data.Common;
using Emc.Core.Verification;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Emc.Coordinator.Verification;

/// <summary>
/// Keeps the <see cref="TrustBook"/> across coordinator restarts (docs/verification.md). The book is read
/// from the database while the host is starting (<see cref="IHostedLifecycleService.StartingAsync"/>, before
/// any hosted service starts, so before the first audit or replay), and every record and reputation that a
/// verdict changes is written behind: the keys that changed are collected, and every
/// <see cref="TrustPersistenceOptions.FlushInterval"/> their newest values are written in one transaction;
/// once more after every other service has stopped. A crash loses at most the last interval's verified
/// results: the nodes concerned come back with shorter clean records and are audited more, not less. A fault
/// or a dispute (which resets a record) is written at once rather than at the next interval, since losing
/// one would leave the node audited less than it should be.
/// </summary>
public sealed partial class TrustPersistence : IHostedLifecycleService, IDisposable
{
    private readonly TrustBook _trust;
    private readonly TrustStore _store;
    private readonly TrustPersistenceOptions _options;
    private readonly TimeProvider _time;
    private readonly ILogger<TrustPersistence> _logger;
    private readonly Lock _lock = new();
    private readonly CancellationTokenSource _stopping = new();
    private readonly SemaphoreSlim _flushing = new(1, 1);
    private readonly SemaphoreSlim _wake = new(0, 1);
    private HashSet<(string Node, string Scope)> _changed = [];
    private Task _flusher = Task.CompletedTask;

    public TrustPersistence(TrustBook trust, TrustStore store, TrustPersistenceOptions options, TimeProvider time, ILogger<TrustPersistence> logger)
    {
        ArgumentNullException.ThrowIfNull(options);
        var errors = options.Validate();
        if (errors.Count > 0)
        {
            throw new ArgumentException(string.Join("; ", errors), nameof(options));
        }

        _trust = trust;
        _store = store;
        _options = options;
        _time = time;
        _logger = logger;
    }

    /// <summary>Reads the book from the database, replacing what it holds, and starts following its changes.</summary>
    public async Task StartingAsync(CancellationToken cancellationToken)
    {
        var snapshot = await _store.LoadAsync(cancellationToken);
        _trust.Restore(snapshot);
        _trust.Recorded += OnRecorded;
        Log.Loaded(_logger, snapshot.Records.Count, snapshot.Reputations.Count);
    }

    public Task StartAsync(CancellationToken cancellationToken)
    {
        _flusher = RunAsync(_stopping.Token);
        return Task.CompletedTask;
    }

    public Task StartedAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StoppingAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        await _stopping.CancelAsync();
        await _flusher.WaitAsync(cancellationToken);
    }

    /// <summary>The last write, after every other service stopped: verdicts of checks cut short by the stop are kept too.</summary>
    public async Task StoppedAsync(CancellationToken cancellationToken)
    {
        _trust.Recorded -= OnRecorded;
        await FlushAsync(cancellationToken);
    }

    /// <summary>Writes every record and reputation changed so far; on failure they stay queued for the next write.</summary>
    public async Task FlushAsync(CancellationToken cancellationToken)
    {
        // One write at a time, so that an older batch never lands after a newer one.
        await _flushing.WaitAsync(cancellationToken);
        try
        {
            HashSet<(string Node, string Scope)> batch;
            lock (_lock)
            {
                if (_changed.Count == 0)
                {
                    return;
                }

                batch = _changed;
                _changed = [];
            }

            // The newest values, read now: an event that arrived out of order cannot leave an older one stored.
            var records = batch.Select(key => _trust.Get(key.Node, key.Scope)).ToList();
            var reputations = batch.Select(key => key.Node).Distinct(StringComparer.Ordinal).ToDictionary(node => node, _trust.Reputation, StringComparer.Ordinal);
            try
            {
                await _store.SaveAsync(records, reputations, cancellationToken);
            }
            catch (Exception ex) when (ex is DbException or DbUpdateException or InvalidOperationException or OperationCanceledException)
            {
                lock (_lock)
                {
                    _changed.UnionWith(batch);
                }

                if (ex is OperationCanceledException)
                {
                    throw;
                }

                Log.FlushFailed(_logger, batch.Count, ex);
            }
        }
        finally
        {
            _flushing.Release();
        }
    }

    public void Dispose()
    {
        _trust.Recorded -= OnRecorded;
        _stopping.Dispose();
        _flushing.Dispose();
        _wake.Dispose();
    }

    private void OnRecorded(TrustRecord record, double reputation)
    {
        if (record.Node.Length > TrustStore.MaxNodeLength || record.Scope.Length > TrustStore.MaxScopeLength)
        {
            // Not a node id or scope this coordinator makes; it stays in memory only.
            Log.NotKept(_logger, record.Node, record.Scope);
            return;
        }

        lock (_lock)
        {
            _changed.Add((record.Node, record.Scope));
        }

        if (record.Consecutive == 0)
        {
            WakeFlusher();
        }
    }

    private void WakeFlusher()
    {
        try
        {
            _wake.Release();
        }
        catch (SemaphoreFullException)
        {
            // Already woken: the next write takes this change too.
        }
        catch (ObjectDisposedException)
        {
            // Stopped: the last write has been made.
        }
    }

    private async Task RunAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(_options.FlushInterval, _time);
        try
        {
            var tick = timer.WaitForNextTickAsync(stoppingToken).AsTask();
            var wake = _wake.WaitAsync(stoppingToken);
            while (true)
            {
                if (await Task.WhenAny(tick, wake) == tick)
                {
                    if (!await tick)
                    {
                        break;
                    }

                    tick = timer.WaitForNextTickAsync(stoppingToken).AsTask();
                }
                else
                {
                    await wake;
                    wake = _wake.WaitAsync(stoppingToken);
                }

                await FlushAsync(stoppingToken);
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 1, Level = LogLevel.Information, Message = "Trust book loaded: {Records} records, {Nodes} reputations")]
        public static partial void Loaded(ILogger logger, int records, int nodes);

        [LoggerMessage(EventId = 2, Level = LogLevel.Warning, Message = "Writing {Count} trust records failed; retrying at the next flush")]
        public static partial void FlushFailed(ILogger logger, int count, Exception exception);

        [LoggerMessage(EventId = 3, Level = LogLevel.Warning, Message = "The trust record of node {Node} in scope {Scope} is too long to store; it is kept in memory only")]
        public static partial void NotKept(ILogger logger, string node, string scope);
    }
}
