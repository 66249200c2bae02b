using System.Diagnostics;
using System.Threading.Channels;
using Emc.Coordinator.Observability;
using Emc.Core.Scheduling;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Emc.Coordinator.Scheduling;

/// <summary>
/// Hosts the <see cref="Scheduler"/> state machine. Every event — API requests, node messages,
/// timer ticks — goes through one bounded channel to one loop, which applies a batch, runs a
/// scheduling pass, writes the batch's changes in one transaction (group commit) and only then
/// delivers leases to nodes and answers requests. So a node never holds a lease the database does
/// not know, and an accepted submission survives a crash.
/// </summary>
public sealed partial class SchedulerService : BackgroundService
{
    private const int MaxBatch = 4096;
    private const int MaxSaveAttempts = 5;

    private readonly Channel<Command> _channel = Channel.CreateBounded<Command>(new BoundedChannelOptions(65_536)
    {
        FullMode = BoundedChannelFullMode.Wait,
        SingleReader = true,
    });

    private readonly Dictionary<string, string> _sessions = new(StringComparer.Ordinal);
    private readonly SchedulerOptions _options;
    private readonly ISchedulerStore _store;
    private readonly INodeCommandSink _sink;
    private readonly TimeProvider _time;
    private readonly ILogger<SchedulerService> _logger;
    private readonly TaskCompletionSource _restored = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private ITimer? _ticker;

    public SchedulerService(
        IOptions<SchedulerOptions> options,
        IPlacementPolicy policy,
        ISchedulerStore store,
        INodeCommandSink sink,
        TimeProvider time,
        ILogger<SchedulerService> logger)
    {
        _options = options.Value;
        _store = store;
        _sink = sink;
        _time = time;
        _logger = logger;
        Scheduler = new Scheduler(_options, policy, time);
    }

    /// <summary>The state machine. Only the service's loop may touch it.</summary>
    internal Scheduler Scheduler { get; }

    /// <summary>How often leases and gang deadlines are checked. Default 250 ms.</summary>
    public TimeSpan TickInterval { get; init; } = TimeSpan.FromMilliseconds(250);

    /// <summary>Called on the scheduler's loop with the duration of each placement decision (benchmarks and metrics). Set it before the service starts.</summary>
    public Action<TimeSpan>? PlacementObserved
    {
        get => Scheduler.PlacementObserved;
        set => Scheduler.PlacementObserved = value;
    }

    /// <summary>Completes when the state of the previous run is loaded.</summary>
    public Task Restored => _restored.Task;

    // ------------------------------------------------------------ requests (answered once durable)

    public async Task<JobView> SubmitAsync(JobSpec spec, CancellationToken cancellationToken)
    {
        // Memory knows the keys of the jobs it holds; a key of a job finished long ago is in the database.
        if (spec?.IdempotencyKey is { } key && _store is SchedulerStore store
            && await store.FindJobByIdempotencyKeyAsync(key, cancellationToken) is { } existing
            && !await RequestAsync(s => s.HasJob(existing.Id), cancellationToken))
        {
            return existing;
        }

        return await RequestAsync(s => s.Submit(spec!), cancellationToken);
    }

    public Task<bool> CancelAsync(string jobId, string reason, CancellationToken cancellationToken) =>
        RequestAsync(s => s.Cancel(jobId, reason), cancellationToken);

    /// <summary>Revokes a lease the node is failing and reissues its task elsewhere (<see cref="Scheduler.Evict"/>).</summary>
    public Task<bool> EvictAsync(string nodeId, string leaseId, string reason, CancellationToken cancellationToken) =>
        RequestAsync(s => s.Evict(nodeId, leaseId, reason), cancellationToken);

    /// <summary>Sets a node's reputation, which weighs in placement (<see cref="Scheduler.SetReputation"/>).</summary>
    public Task<bool> SetReputationAsync(string nodeId, double reputation, CancellationToken cancellationToken) =>
        RequestAsync(s =>
        {
            s.SetReputation(nodeId, reputation);
            return true;
        }, cancellationToken);

    /// <summary>The reputation the scheduler places the node with (<see cref="Scheduler.Reputation"/>).</summary>
    public Task<double> GetReputationAsync(string nodeId, CancellationToken cancellationToken) =>
        RequestAsync(s => s.Reputation(nodeId), cancellationToken);

    /// <summary>Sets many nodes' reputations in one request (the trust book's, put back after a restart).</summary>
    public Task<bool> SetReputationsAsync(IReadOnlyDictionary<string, double> reputations, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(reputations);
        return RequestAsync(s =>
        {
            foreach (var (node, reputation) in reputations)
            {
                s.SetReputation(node, reputation);
            }

            return true;
        }, cancellationToken);
    }

    public Task<double> SetAccountWeightAsync(string account, double weight, CancellationToken cancellationToken) =>
        RequestAsync(s =>
        {
            s.SetAccountWeight(account, weight);
            return weight;
        }, cancellationToken);

    public Task<double> GetAccountWeightAsync(string account, CancellationToken cancellationToken) =>
        RequestAsync(s => s.AccountWeight(account), cancellationToken);

    public async Task<JobView?> GetJobAsync(string jobId, CancellationToken cancellationToken) =>
        await RequestAsync(s => s.GetJob(jobId), cancellationToken) ?? await _store.GetJobAsync(jobId, cancellationToken);

    public async Task<TaskView?> GetTaskAsync(string taskId, CancellationToken cancellationToken) =>
        await RequestAsync(s => s.GetTask(taskId), cancellationToken) ?? await _store.GetTaskAsync(taskId, cancellationToken);

    /// <summary>Jobs held in memory (unfinished and recently finished) in submission order; older ones come from the database.</summary>
    public async Task<IReadOnlyList<JobView>> ListJobsAsync(JobState? state, string? account, int limit, CancellationToken cancellationToken)
    {
        // The database holds every job, and is at most one batch behind memory; memory's views carry
        // live wait reasons, so prefer them for the jobs it still holds.
        var stored = await _store.ListJobsAsync(state, account, limit, cancellationToken);
        var live = await RequestAsync(s => s.ListJobs(state, account, int.MaxValue), cancellationToken);
        var byId = live.ToDictionary(job => job.Id, StringComparer.Ordinal);
        var merged = stored.Select(job => byId.GetValueOrDefault(job.Id) ?? job).ToList();
        var known = merged.Select(job => job.Id).ToHashSet(StringComparer.Ordinal);
        merged.AddRange(live.Where(job => !known.Contains(job.Id)));
        return [.. merged.OrderBy(job => JobNumber(job.Id)).Take(limit)];
    }

    /// <summary>Tasks in id order, only of <paramref name="account"/>'s jobs when given; a job no longer in memory is read from the database.</summary>
    public async Task<IReadOnlyList<TaskView>> ListTasksAsync(string? jobId, TaskState? state, string? after, int limit, string? account, CancellationToken cancellationToken)
    {
        if (jobId is not null)
        {
            var held = await RequestAsync(s => s.HasJob(jobId), cancellationToken);
            return held
                ? await RequestAsync(s => s.ListTasks(jobId, state, after, limit), cancellationToken)
                : await _store.ListTasksAsync(jobId, state, after, limit, null, cancellationToken);
        }

        var stored = await _store.ListTasksAsync(null, state, after, limit, account, cancellationToken);
        var live = await RequestAsync(s => s.ListTasks(null, state, after, limit, account), cancellationToken);
        var byId = live.ToDictionary(task => task.Id, StringComparer.Ordinal);
        var merged = stored.Select(task => byId.GetValueOrDefault(task.Id) ?? task).ToList();
        var known = merged.Select(task => task.Id).ToHashSet(StringComparer.Ordinal);
        merged.AddRange(live.Where(task => !known.Contains(task.Id)));
        return [.. merged.OrderBy(task => TaskOrder(task.Id)).Take(limit)];
    }

    /// <summary>The connected, schedulable nodes that fit <paramref name="demand"/>.</summary>
    public Task<IReadOnlyList<FittingNode>> FittingNodesAsync(ResourceDemand demand, CancellationToken cancellationToken) =>
        RequestAsync(s => s.FittingNodes(demand), cancellationToken);

    /// <summary>
    /// Raised on the scheduler loop after each batch of changes is durable, before leases go out.
    /// Handlers must be quick and must not throw (hand the changes to your own queue).
    /// </summary>
    public event Action<SchedulerChanges>? Committed;

    public Task<SchedulerStats> StatsAsync(CancellationToken cancellationToken) =>
        RequestAsync(s => s.Stats(), cancellationToken);

    // ------------------------------------------------------------ node events (fire and forget)

    /// <summary>A node's session started (or it reconnected on a new session).</summary>
    public void NodeConnected(string sessionId, NodeCapacity capacity) => Post(new NodeEvent(s =>
    {
        _sessions[capacity.NodeId] = sessionId;
        s.UpsertNode(capacity);
    }));

    /// <summary>A node's session ended; ignored when the node has since connected on another session.</summary>
    public void NodeDisconnected(string nodeId, string sessionId, string reason) => Post(new NodeEvent(s =>
    {
        if (_sessions.TryGetValue(nodeId, out var current) && current == sessionId)
        {
            _sessions.Remove(nodeId);
            s.RemoveNode(nodeId, reason);
        }
    }));

    public void NodeDraining(string nodeId, string sessionId) => Post(new NodeEvent(s =>
    {
        if (_sessions.TryGetValue(nodeId, out var current) && current == sessionId)
        {
            s.SetDraining(nodeId);
        }
    }));

    public void Heartbeat(string nodeId, IReadOnlyCollection<string> leaseIds) => Post(new NodeEvent(s => s.Heartbeat(nodeId, leaseIds)));

    public void LeaseAccepted(string nodeId, string leaseId) => Post(new NodeEvent(s => s.Accept(nodeId, leaseId)));

    public void LeaseRejected(string nodeId, string leaseId, string reason) => Post(new NodeEvent(s => s.Reject(nodeId, leaseId, reason)));

    public void ResultReported(string nodeId, string leaseId, bool succeeded, string? output, string? error, bool retryable) =>
        Post(new NodeEvent(s => s.Complete(nodeId, leaseId, succeeded, output, error, retryable)));

    public void CacheUpdated(string nodeId, IReadOnlyCollection<string> keys) => Post(new NodeEvent(s => s.UpdateCacheKeys(nodeId, keys)));

    /// <summary>Waits until everything posted so far is applied and written.</summary>
    public Task FlushAsync(CancellationToken cancellationToken) => RequestAsync(_ => true, cancellationToken);

    // ------------------------------------------------------------ the loop

    public override async Task StartAsync(CancellationToken cancellationToken)
    {
        var snapshot = await _store.LoadAsync(_time.GetUtcNow() - _options.RetainFinishedJobs, cancellationToken);
        Scheduler.Restore(snapshot);
        var stats = Scheduler.Stats();
        Log.Restored(_logger, stats.Jobs, stats.Queued, stats.Leased + stats.Running);
        _restored.TrySetResult();
        _ticker = _time.CreateTimer(_ => _channel.Writer.TryWrite(Tick.Instance), null, TickInterval, TickInterval);
        await base.StartAsync(cancellationToken);
    }

    public override async Task StopAsync(CancellationToken cancellationToken)
    {
        if (_ticker is not null)
        {
            await _ticker.DisposeAsync();
        }

        _channel.Writer.TryComplete();
        await base.StopAsync(cancellationToken);
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var requests = new List<Command>();
        var reader = _channel.Reader;
        try
        {
            while (await reader.WaitToReadAsync(stoppingToken))
            {
                var count = 0;
                while (count < MaxBatch && reader.TryRead(out var command))
                {
                    count++;
                    try
                    {
                        command.Apply(Scheduler);
                    }
                    catch (Exception ex) when (command is NodeEvent && ex is not OutOfMemoryException)
                    {
                        // A node's message must never stop the scheduler.
                        Log.NodeEventFailed(_logger, ex);
                    }

                    if (command.IsRequest)
                    {
                        requests.Add(command);
                    }
                }

                Scheduler.Tick();
                var placed = Scheduler.Schedule();
                var changes = Scheduler.DrainChanges();
                await SaveAsync(changes, requests, stoppingToken);
                if (changes.Tasks.Count > 0)
                {
                    try
                    {
                        Committed?.Invoke(changes);
                    }
                    catch (Exception ex) when (ex is not OutOfMemoryException)
                    {
                        Log.NodeEventFailed(_logger, ex);
                    }
                }

                foreach (var message in changes.Commands)
                {
                    _sink.Deliver(message);
                }

                foreach (var request in requests)
                {
                    request.Complete();
                }

                requests.Clear();
                EmcMetrics.SchedulerPlacements.Inc(placed);
                EmcMetrics.SchedulerQueued.Set(Scheduler.QueuedItems);
                if (placed >= _options.MaxPlacementsPerPass)
                {
                    // More may fit: come back after the events that queued up meanwhile.
                    _channel.Writer.TryWrite(Tick.Instance);
                }
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }
        finally
        {
            foreach (var request in requests)
            {
                request.Fail(new OperationCanceledException("The coordinator is stopping."));
            }

            while (reader.TryRead(out var command))
            {
                command.Fail(new OperationCanceledException("The coordinator is stopping."));
            }
        }
    }

    private async Task SaveAsync(SchedulerChanges changes, List<Command> requests, CancellationToken stoppingToken)
    {
        if (changes.Jobs.Count == 0 && changes.Tasks.Count == 0 && changes.Results.Count == 0 && changes.AccountWeights.Count == 0)
        {
            return;
        }

        var started = Stopwatch.GetTimestamp();
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                await _store.SaveAsync(changes, stoppingToken);
                EmcMetrics.SchedulerCommitSeconds.Observe(Stopwatch.GetElapsedTime(started).TotalSeconds);
                return;
            }
            catch (Exception ex) when (ex is not OperationCanceledException && attempt < MaxSaveAttempts)
            {
                Log.SaveFailed(_logger, attempt, ex);
                await Task.Delay(TimeSpan.FromMilliseconds(100 * attempt * attempt), _time, stoppingToken);
            }
            catch (Exception ex) when (ex is not OperationCanceledException)
            {
                // Memory is now ahead of the database: stop rather than hand out work that is not durable.
                Log.SaveAbandoned(_logger, ex);
                foreach (var request in requests)
                {
                    request.Fail(new InvalidOperationException("The scheduler could not write its state.", ex));
                }

                requests.Clear();
                throw;
            }
        }
    }

    private async Task<T> RequestAsync<T>(Func<Scheduler, T> apply, CancellationToken cancellationToken)
    {
        var request = new Request<T>(apply);
        await _channel.Writer.WriteAsync(request, cancellationToken);
        return await request.Result.WaitAsync(cancellationToken);
    }

    private void Post(Command command)
    {
        if (!_channel.Writer.TryWrite(command))
        {
            // Full (tens of thousands of events behind) or stopping. Node events are safe to
            // drop: leases expire, results are re-sent, heartbeats repeat.
            EmcMetrics.SchedulerDroppedEvents.Inc();
        }
    }

    private static long JobNumber(string jobId) => TaskIds.JobNumber(jobId) ?? long.MaxValue;

    private static (long, int) TaskOrder(string taskId) =>
        TaskIds.TryParse(taskId, out var job, out var index) ? (job, index) : (long.MaxValue, 0);

    public override void Dispose()
    {
        _ticker?.Dispose();
        base.Dispose();
    }

    private abstract class Command
    {
        public virtual bool IsRequest => false;

        public abstract void Apply(Scheduler scheduler);

        public virtual void Complete()
        {
        }

        public virtual void Fail(Exception exception)
        {
        }
    }

    private sealed class Tick : Command
    {
        public static readonly Tick Instance = new();

        public override void Apply(Scheduler scheduler)
        {
        }
    }

    private sealed class NodeEvent(Action<Scheduler> apply) : Command
    {
        public override void Apply(Scheduler scheduler) => apply(scheduler);
    }

    private sealed class Request<T>(Func<Scheduler, T> apply) : Command
    {
        private readonly TaskCompletionSource<T> _result = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private T? _value;
        private Exception? _error;

        public Task<T> Result => _result.Task;

        public override bool IsRequest => true;

        public override void Apply(Scheduler scheduler)
        {
            try
            {
                _value = apply(scheduler);
            }
            catch (Exception ex) when (ex is SchedulingException or ArgumentException or InvalidOperationException)
            {
                _error = ex;
            }
        }

        public override void Complete()
        {
            if (_error is not null)
            {
                _result.TrySetException(_error);
            }
            else
            {
                _result.TrySetResult(_value!);
            }
        }

        public override void Fail(Exception exception) => _result.TrySetException(exception);
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 1200, Level = LogLevel.Information, Message = "Scheduler restored {Jobs} jobs: {Queued} queued items, {Leased} leases.")]
        public static partial void Restored(ILogger logger, int jobs, int queued, int leased);

        [LoggerMessage(EventId = 1201, Level = LogLevel.Warning, Message = "Applying a node's message failed; it was skipped.")]
        public static partial void NodeEventFailed(ILogger logger, Exception exception);

        [LoggerMessage(EventId = 1202, Level = LogLevel.Warning, Message = "Writing scheduler changes failed (attempt {Attempt}); retrying.")]
        public static partial void SaveFailed(ILogger logger, int attempt, Exception exception);

        [LoggerMessage(EventId = 1203, Level = LogLevel.Critical, Message = "Writing scheduler changes failed for good; the scheduler stops so it hands out no work that is not durable.")]
        public static partial void SaveAbandoned(ILogger logger, Exception exception);
    }
}
