using Emc.Contracts.Node.V1;
using Emc.Core.Hardware;
using Emc.Node.Connection;
using Microsoft.Extensions.Logging;

namespace Emc.Node.Work;

/// <summary>
/// The node's side of leases. It accepts or rejects each offer, runs accepted work on its executor
/// (a gang member once its gang starts), cancels revoked work, and keeps each result until the
/// coordinator acknowledges it, sending it again on every new session. One runner lives for the
/// whole agent process, across reconnects; the current session is attached as its way out.
/// </summary>
/// <remarks>
/// State changes happen under one lock; messages are sent outside it. A lease is held (and listed in
/// heartbeats) from its accept until its result is acknowledged, it is revoked, or, for a gang member
/// that has not started, the node drains.
/// </remarks>
public sealed partial class LeaseRunner : IAsyncDisposable
{
    /// <summary>The longest output a result may carry (the protocol's limit).</summary>
    public const int MaxOutputChars = 65_536;

    /// <summary>The longest error text sent; longer ones are cut (the coordinator keeps no more).</summary>
    public const int MaxErrorChars = 1_000;

    private const int MaxQuotedChars = 64;
    private const string DrainingReason = "the node is draining";

    private readonly TaskExecutors _executors;
    private readonly HashSet<string> _devices;
    private readonly ILogger _logger;
    private readonly Lock _gate = new();
    private readonly Dictionary<string, Lease> _leases = new(StringComparer.Ordinal);
    private readonly HashSet<Lease> _stopping = [];
    private readonly CancellationTokenSource _disposing = new();
    private INodeOutbox? _outbox;
    private TaskCompletionSource? _idle;
    private bool _draining;
    private bool _disposed;

    /// <summary>A runner for a node offering <paramref name="devices"/> ("cpu", "cuda:0", ...).</summary>
    public LeaseRunner(TaskExecutors executors, IEnumerable<string> devices, ILogger logger)
    {
        ArgumentNullException.ThrowIfNull(executors);
        ArgumentNullException.ThrowIfNull(devices);
        ArgumentNullException.ThrowIfNull(logger);
        _executors = executors;
        _devices = devices.Select(DeviceName.Normalize).ToHashSet(StringComparer.Ordinal);
        _logger = logger;
    }

    private enum LeaseState
    {
        /// <summary>Accepted; starts as soon as the accept is queued.</summary>
        Accepted,

        /// <summary>A gang member, accepted, waiting for GangStart.</summary>
        WaitingForGang,

        /// <summary>Its executor runs.</summary>
        Running,

        /// <summary>The executor ended; the result waits for its acknowledgement.</summary>
        ResultPending,

        /// <summary>The executor ended without a result (revoked, or the runner stopped).</summary>
        Finished,
    }

    /// <summary>Whether the node has begun draining: it rejects every new offer.</summary>
    public bool IsDraining
    {
        get
        {
            lock (_gate)
            {
                return _draining;
            }
        }
    }

    /// <summary>Whether the node holds no lease and no revoked execution is still winding down.</summary>
    public bool IsIdle
    {
        get
        {
            lock (_gate)
            {
                return IsIdleLocked;
            }
        }
    }

    /// <summary>The leases the node holds, in ordinal order: running, waiting for their gang, or with a result not yet acknowledged.</summary>
    public IReadOnlyList<string> HeldLeaseIds
    {
        get
        {
            lock (_gate)
            {
                return _leases.Keys.Order(StringComparer.Ordinal).ToList();
            }
        }
    }

    /// <summary>The leases whose work runs now (or is about to start).</summary>
    public int RunningCount
    {
        get
        {
            lock (_gate)
            {
                return RunningCountLocked;
            }
        }
    }

    private bool IsIdleLocked => _leases.Count == 0 && _stopping.Count == 0;

    private int RunningCountLocked => _leases.Values.Count(lease => lease.State is LeaseState.Accepted or LeaseState.Running);

    /// <summary>
    /// Makes <paramref name="outbox"/> (a new session) the way out, and sends it every result not
    /// yet acknowledged, since the previous session may have lost them.
    /// </summary>
    public async ValueTask AttachAsync(INodeOutbox outbox, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(outbox);
        List<TaskResult> pending;
        lock (_gate)
        {
            _outbox = outbox;
            pending = _leases.Values
                .Where(lease => lease.State == LeaseState.ResultPending)
                .OrderBy(lease => lease.Id, StringComparer.Ordinal)
                .Select(lease => lease.Result!.Clone())
                .ToList();
        }

        if (pending.Count > 0)
        {
            Log.ResendingResults(_logger, pending.Count);
        }

        foreach (var result in pending)
        {
            await outbox.SendAsync(new NodeMessage { TaskResult = result }, cancellationToken);
        }
    }

    /// <summary>The session of <paramref name="outbox"/> ended: results wait for the next one.</summary>
    public void Detach(INodeOutbox outbox)
    {
        lock (_gate)
        {
            if (ReferenceEquals(_outbox, outbox))
            {
                _outbox = null;
            }
        }
    }

    /// <summary>Handles the lease messages of the protocol (offer, revoke, gang start, result ack); ignores others.</summary>
    public ValueTask HandleAsync(CoordinatorMessage message, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(message);
        switch (message.BodyCase)
        {
            case CoordinatorMessage.BodyOneofCase.LeaseOffer:
                return OfferAsync(message.LeaseOffer, cancellationToken);
            case CoordinatorMessage.BodyOneofCase.LeaseRevoke:
                Revoke(message.LeaseRevoke);
                break;
            case CoordinatorMessage.BodyOneofCase.GangStart:
                StartGang(message.GangStart);
                break;
            case CoordinatorMessage.BodyOneofCase.ResultAck:
                Acknowledge(message.ResultAck);
                break;
        }

        return ValueTask.CompletedTask;
    }

    /// <summary>
    /// Answers an offer: a reject (draining, a lease already held, no executor for the kind, a device
    /// this node does not offer) or an accept. An accepted lease starts at once, a gang member on
    /// its <see cref="GangStart"/>.
    /// </summary>
    public async ValueTask OfferAsync(LeaseOffer offer, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(offer);
        Lease? lease = null;
        string? reason;
        INodeOutbox? outbox;
        lock (_gate)
        {
            outbox = _outbox;
            reason = CheckOfferLocked(offer, out var executor, out var device);
            if (reason is null)
            {
                lease = new Lease(offer, executor!, device!, offer.GangId.Length > 0 ? LeaseState.WaitingForGang : LeaseState.Accepted);
                _leases.Add(lease.Id, lease);
            }
        }

        if (lease is null)
        {
            Log.OfferRejected(_logger, offer.LeaseId, reason!);
            await SendAsync(outbox, new NodeMessage { LeaseReject = new LeaseReject { LeaseId = offer.LeaseId, Reason = reason } }, cancellationToken);
            return;
        }

        Log.OfferAccepted(_logger, lease.Id, offer.Kind, lease.Device, offer.GangId);
        try
        {
            // Queued before the work starts, so the accept goes out ahead of the result however fast the work is.
            await SendAsync(outbox, new NodeMessage { LeaseAccept = new LeaseAccept { LeaseId = lease.Id } }, cancellationToken);
        }
        finally
        {
            // Run the lease even if the accept could not be queued: heartbeats list it, and the
            // coordinator extends or revokes it from there.
            if (offer.GangId.Length == 0)
            {
                lock (_gate)
                {
                    if (lease.State == LeaseState.Accepted && IsHeldLocked(lease))
                    {
                        StartLocked(lease);
                    }
                }
            }
        }
    }

    /// <summary>Starts a gang member that waits for its gang; ignores a start for any other lease.</summary>
    public void StartGang(GangStart start)
    {
        ArgumentNullException.ThrowIfNull(start);
        lock (_gate)
        {
            if (!_leases.TryGetValue(start.LeaseId, out var lease) || lease.State != LeaseState.WaitingForGang
                || (start.GangId.Length > 0 && start.GangId != lease.Offer.GangId))
            {
                Log.GangStartIgnored(_logger, start.LeaseId, start.GangId);
                return;
            }

            StartLocked(lease);
        }

        Log.GangStarted(_logger, start.LeaseId, start.GangId);
    }

    /// <summary>
    /// Stops a lease: cancels its execution, or forgets it when it has not started or already has a
    /// result. No result is sent for it.
    /// </summary>
    public void Revoke(LeaseRevoke revoke)
    {
        ArgumentNullException.ThrowIfNull(revoke);
        CancellationTokenSource? cancel = null;
        lock (_gate)
        {
            if (!_leases.Remove(revoke.LeaseId, out var lease))
            {
                Log.RevokeIgnored(_logger, revoke.LeaseId);
                return;
            }

            if (lease.State == LeaseState.Running)
            {
                // Kept as "stopping" until the executor returns, so that a drain waits for the device to be free.
                _stopping.Add(lease);
                cancel = lease.Cancellation;
            }
            else
            {
                lease.State = LeaseState.Finished;
            }

            SignalIfIdleLocked();
        }

        Log.Revoked(_logger, revoke.LeaseId, revoke.Reason);

        // Outside the lock: cancellation callbacks run inline and may finish the execution on this thread.
        cancel?.Cancel();
    }

    /// <summary>The coordinator has the result of a lease (whatever it made of it): the node forgets the lease.</summary>
    public void Acknowledge(ResultAck ack)
    {
        ArgumentNullException.ThrowIfNull(ack);
        lock (_gate)
        {
            if (!_leases.TryGetValue(ack.LeaseId, out var lease) || lease.State != LeaseState.ResultPending)
            {
                Log.AckIgnored(_logger, ack.LeaseId);
                return;
            }

            _leases.Remove(ack.LeaseId);
            lease.State = LeaseState.Finished;
            SignalIfIdleLocked();
        }

        if (ack.Disposition == ResultDisposition.Rejected)
        {
            Log.ResultRejected(_logger, ack.LeaseId, ack.Message);
        }
        else
        {
            Log.ResultAcknowledged(_logger, ack.LeaseId, ack.Disposition.ToString());
        }
    }

    /// <summary>Sets <see cref="Heartbeat.RunningTasks"/> and lists every held lease in <see cref="Heartbeat.LeaseIds"/>.</summary>
    public void FillHeartbeat(Heartbeat heartbeat)
    {
        ArgumentNullException.ThrowIfNull(heartbeat);
        lock (_gate)
        {
            heartbeat.RunningTasks = RunningCountLocked;
            heartbeat.LeaseIds.Clear();
            heartbeat.LeaseIds.AddRange(_leases.Keys.Order(StringComparer.Ordinal));
        }
    }

    /// <summary>
    /// Starts draining: every later offer is rejected, and gang members that have not started are
    /// rejected now (a gang may never start, and a draining node should not hold one back). Running
    /// work goes on; see <see cref="WhenIdleAsync"/>.
    /// </summary>
    public async ValueTask BeginDrainAsync(CancellationToken cancellationToken)
    {
        List<string> released;
        INodeOutbox? outbox;
        lock (_gate)
        {
            _draining = true;
            outbox = _outbox;
            released = _leases.Values.Where(lease => lease.State == LeaseState.WaitingForGang).Select(lease => lease.Id).Order(StringComparer.Ordinal).ToList();
            foreach (var id in released)
            {
                _leases.Remove(id, out var lease);
                lease!.State = LeaseState.Finished;
            }

            SignalIfIdleLocked();
        }

        foreach (var id in released)
        {
            Log.GangMemberReleased(_logger, id);
            await SendAsync(outbox, new NodeMessage { LeaseReject = new LeaseReject { LeaseId = id, Reason = DrainingReason } }, cancellationToken);
        }
    }

    /// <summary>Completes when <see cref="IsIdle"/>: every lease ended and its result, if any, was acknowledged.</summary>
    public Task WhenIdleAsync(CancellationToken cancellationToken)
    {
        lock (_gate)
        {
            if (IsIdleLocked)
            {
                return Task.CompletedTask;
            }

            _idle ??= new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            return _idle.Task.WaitAsync(cancellationToken);
        }
    }

    /// <summary>Cancels every running execution and waits for them to end. Results not yet acknowledged are lost.</summary>
    public async ValueTask DisposeAsync()
    {
        List<Lease> running;
        lock (_gate)
        {
            if (_disposed)
            {
                return;
            }

            _disposed = true;
            _draining = true;
            running = _leases.Values.Where(lease => lease.State == LeaseState.Running).Concat(_stopping).ToList();
        }

        await _disposing.CancelAsync();
        foreach (var lease in running)
        {
            await lease.Cancellation.CancelAsync();
        }

        await Task.WhenAll(running.Select(lease => lease.Execution!));
        _disposing.Dispose();
    }

    private string? CheckOfferLocked(LeaseOffer offer, out ITaskExecutor? executor, out string? device)
    {
        executor = null;
        device = null;
        if (offer.LeaseId.Length == 0)
        {
            return "the offer has no lease id";
        }

        if (_draining)
        {
            return DrainingReason;
        }

        if (_leases.ContainsKey(offer.LeaseId))
        {
            return $"lease {Quote(offer.LeaseId)} is already held by this node";
        }

        if (!_executors.TryGet(offer.Kind, out executor))
        {
            return $"this node has no executor for kind {Quote(offer.Kind)} (it runs {string.Join(", ", _executors.Kinds)})";
        }

        if (!DeviceName.TryParse(offer.Device, out _, out _) || !_devices.Contains(DeviceName.Normalize(offer.Device)))
        {
            executor = null;
            return $"device {Quote(offer.Device)} is not offered by this node (it offers {string.Join(", ", _devices.Order(StringComparer.Ordinal))})";
        }

        device = DeviceName.Normalize(offer.Device);
        return null;
    }

    private bool IsHeldLocked(Lease lease) => _leases.TryGetValue(lease.Id, out var held) && ReferenceEquals(held, lease);

    private void StartLocked(Lease lease)
    {
        if (_disposed)
        {
            // The process is leaving: work that has not started stays unstarted.
            _leases.Remove(lease.Id);
            lease.State = LeaseState.Finished;
            SignalIfIdleLocked();
            return;
        }

        lease.State = LeaseState.Running;
        lease.Execution = Task.Run(() => ExecuteAsync(lease), CancellationToken.None);
    }

    private async Task ExecuteAsync(Lease lease)
    {
        var offer = lease.Offer;
        var context = new TaskContext(offer.LeaseId, offer.TaskId, offer.JobId, offer.Input, lease.Device);
        TaskResult? result;
        try
        {
            var output = await lease.Executor.RunAsync(context, lease.Cancellation.Token) ?? "";
            result = output.Length <= MaxOutputChars
                ? new TaskResult { LeaseId = lease.Id, Succeeded = true, Output = output }
                : Failure(lease.Id, $"the output has {output.Length} characters; at most {MaxOutputChars} are allowed", retryable: false);
        }
        catch (OperationCanceledException) when (lease.Cancellation.IsCancellationRequested)
        {
            result = null;
        }
        catch (TaskFailedException ex)
        {
            result = Failure(lease.Id, ex.Message, ex.Retryable);
        }
        catch (Exception ex)
        {
            // An executor bug or an environment fault (out of memory on the device, a lost file): another attempt may do better.
            Log.ExecutorCrashed(_logger, ex, lease.Id, offer.Kind);
            result = Failure(lease.Id, ex.Message, retryable: true);
        }

        await FinishAsync(lease, result);
    }

    private async Task FinishAsync(Lease lease, TaskResult? result)
    {
        INodeOutbox? outbox;
        lock (_gate)
        {
            if (_stopping.Remove(lease))
            {
                // Revoked: it was forgotten already, and its result would not count.
                lease.State = LeaseState.Finished;
                SignalIfIdleLocked();
                return;
            }

            if (!IsHeldLocked(lease))
            {
                return;
            }

            if (result is null)
            {
                // Cancelled by disposal: the process is leaving.
                _leases.Remove(lease.Id);
                lease.State = LeaseState.Finished;
                SignalIfIdleLocked();
                return;
            }

            lease.State = LeaseState.ResultPending;
            lease.Result = result;
            outbox = _outbox;
        }

        Log.Finished(_logger, lease.Id, result.Succeeded, result.Error);
        try
        {
            await SendAsync(outbox, new NodeMessage { TaskResult = result.Clone() }, _disposing.Token);
        }
        catch (OperationCanceledException)
        {
            // The runner is stopping; the result is lost with the process.
        }
    }

    private void SignalIfIdleLocked()
    {
        if (_idle is not null && IsIdleLocked)
        {
            _idle.TrySetResult();
            _idle = null;
        }
    }

    private static async ValueTask SendAsync(INodeOutbox? outbox, NodeMessage message, CancellationToken cancellationToken)
    {
        // Without a session an accept or reject has nowhere to go; the coordinator learns from the
        // next heartbeat instead. Results are kept and sent when the next session attaches.
        if (outbox is not null)
        {
            await outbox.SendAsync(message, cancellationToken);
        }
    }

    private static TaskResult Failure(string leaseId, string? error, bool retryable)
    {
        error = string.IsNullOrEmpty(error) ? "the executor failed without a reason" : error;
        return new TaskResult
        {
            LeaseId = leaseId,
            Succeeded = false,
            Error = error.Length <= MaxErrorChars ? error : error[..MaxErrorChars],
            Retryable = retryable,
        };
    }

    private static string Quote(string text) =>
        text.Length <= MaxQuotedChars ? $"'{text}'" : $"'{text[..MaxQuotedChars]}...'";

    private sealed class Lease(LeaseOffer offer, ITaskExecutor executor, string device, LeaseState state)
    {
        public string Id { get; } = offer.LeaseId;

        public LeaseOffer Offer { get; } = offer;

        public ITaskExecutor Executor { get; } = executor;

        public string Device { get; } = device;

        public LeaseState State { get; set; } = state;

        // Never disposed: without a timer or linked tokens it holds nothing to release, and a revoke
        // cancels it outside the lock, where it must not race a dispose.
        public CancellationTokenSource Cancellation { get; } = new();

        public Task? Execution { get; set; }

        public TaskResult? Result { get; set; }
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 2100, Level = LogLevel.Information, Message = "Accepted lease {LeaseId}: {Kind} on {Device} (gang '{GangId}').")]
        public static partial void OfferAccepted(ILogger logger, string leaseId, string kind, string device, string gangId);

        [LoggerMessage(EventId = 2101, Level = LogLevel.Information, Message = "Rejected lease {LeaseId}: {Reason}.")]
        public static partial void OfferRejected(ILogger logger, string leaseId, string reason);

        [LoggerMessage(EventId = 2102, Level = LogLevel.Information, Message = "Gang {GangId} started; running lease {LeaseId}.")]
        public static partial void GangStarted(ILogger logger, string leaseId, string gangId);

        [LoggerMessage(EventId = 2103, Level = LogLevel.Warning, Message = "Ignored a gang start for lease {LeaseId} (gang '{GangId}'): no such lease waits for its gang.")]
        public static partial void GangStartIgnored(ILogger logger, string leaseId, string gangId);

        [LoggerMessage(EventId = 2104, Level = LogLevel.Information, Message = "Lease {LeaseId} revoked: {Reason}.")]
        public static partial void Revoked(ILogger logger, string leaseId, string reason);

        [LoggerMessage(EventId = 2105, Level = LogLevel.Debug, Message = "Ignored a revoke of lease {LeaseId}: not held.")]
        public static partial void RevokeIgnored(ILogger logger, string leaseId);

        [LoggerMessage(EventId = 2106, Level = LogLevel.Information, Message = "Lease {LeaseId} finished: succeeded {Succeeded}. {Error}")]
        public static partial void Finished(ILogger logger, string leaseId, bool succeeded, string error);

        [LoggerMessage(EventId = 2107, Level = LogLevel.Warning, Message = "The {Kind} executor of lease {LeaseId} failed unexpectedly.")]
        public static partial void ExecutorCrashed(ILogger logger, Exception exception, string leaseId, string kind);

        [LoggerMessage(EventId = 2108, Level = LogLevel.Debug, Message = "Result of lease {LeaseId} acknowledged: {Disposition}.")]
        public static partial void ResultAcknowledged(ILogger logger, string leaseId, string disposition);

        [LoggerMessage(EventId = 2109, Level = LogLevel.Warning, Message = "The coordinator rejected the result of lease {LeaseId}: {Message}")]
        public static partial void ResultRejected(ILogger logger, string leaseId, string message);

        [LoggerMessage(EventId = 2110, Level = LogLevel.Debug, Message = "Ignored a result ack for lease {LeaseId}: no result of it is pending.")]
        public static partial void AckIgnored(ILogger logger, string leaseId);

        [LoggerMessage(EventId = 2111, Level = LogLevel.Information, Message = "Sending {Count} unacknowledged results again on the new session.")]
        public static partial void ResendingResults(ILogger logger, int count);

        [LoggerMessage(EventId = 2112, Level = LogLevel.Information, Message = "Draining: released gang lease {LeaseId}, which had not started.")]
        public static partial void GangMemberReleased(ILogger logger, string leaseId);
    }
}
