using System.Runtime.CompilerServices;
using Microsoft.Extensions.Logging;

namespace Emc.Coordinator.Inference;

/// <summary>
/// Routes one deployment's requests over its live replicas, as Ray Serve's router does: power of two
/// choices on requests in flight per replica, a strict per-replica cap, a bounded FIFO queue when
/// every replica is full, retries on another replica when a transport fails, and an absolute
/// deadline. Replicas come and go at any time. Every call ends in exactly one
/// <see cref="RouteOutcome"/>, and a request holds a replica's slot only while its send runs.
/// </summary>
/// <remarks>
/// Picking a replica is lock-free while nobody waits: two replicas drawn at random, the one with
/// fewer requests in flight claims a slot by compare-and-swap. Waiting, membership changes and
/// handing freed slots to waiters go through one lock, so a freed slot always reaches the oldest
/// waiter that can use it and no wake-up is lost.
/// </remarks>
/// <typeparam name="TRequest">The inference request.</typeparam>
/// <typeparam name="TResponse">The replica's answer.</typeparam>
public sealed class ReplicaRouter<TRequest, TResponse>
{
    // Draws of two before scanning every replica for one with room (Ray Serve draws two more when both are full).
    private const int SampleRounds = 2;
    private const int ScanRounds = 4;

    // A CancellationTokenSource timer cannot run longer than this; a later deadline is no deadline.
    private static readonly TimeSpan MaxTimer = TimeSpan.FromMilliseconds(uint.MaxValue - 1);

    private readonly ReplicaRouterOptions _options;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly bool _seeded;
    private readonly Lock _lock = new();
    private readonly LinkedList<Waiter> _waiters = new();
    private readonly long[] _outcomes = new long[Enum.GetValues<RouteOutcome>().Length];
    private ReplicaState[] _replicas = [];
    private long _rngState;
    private int _queued;
    private int _inFlight;
    private long _requests;
    private long _routed;
    private long _retried;

    /// <param name="deployment">The deployment's name, for logs and stats.</param>
    /// <param name="options">Settings; checked here.</param>
    /// <param name="timeProvider">The clock of deadlines and cool-downs.</param>
    /// <param name="logger">Where replica failures are logged.</param>
    /// <param name="seed">Seeds the replica draws for reproducible tests; null uses <see cref="Random.Shared"/>.</param>
    public ReplicaRouter(string deployment, ReplicaRouterOptions options, TimeProvider timeProvider, ILogger logger, int? seed = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(deployment);
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(timeProvider);
        ArgumentNullException.ThrowIfNull(logger);
        var errors = options.Validate();
        if (errors.Count > 0)
        {
            throw new ArgumentException(string.Join("; ", errors), nameof(options));
        }

        Deployment = deployment;
        _options = options;
        _time = timeProvider;
        _logger = logger;
        _seeded = seed is not null;
        _rngState = seed ?? 0;
    }

    [Flags]
    private enum Filter
    {
        Any = 0,
        Healthy = 1,
        Untried = 2,
    }

    public string Deployment { get; }

    /// <summary>
    /// Called once for a replica whose answers came back malformed
    /// <see cref="ReplicaRouterOptions.EvictAfterMalformedReplies"/> times in a row, with its id, its
    /// node and the last problem; the owner evicts it. Runs on the request's thread: keep it short.
    /// </summary>
    public Action<string, string, string>? ReplicaMisbehaving { get; set; }

    /// <summary>Replicas in the set now.</summary>
    public int ReplicaCount => Volatile.Read(ref _replicas).Length;

    /// <summary>Requests waiting for a slot or a replica (the autoscaler's queue depth).</summary>
    public int Queued => Math.Max(0, Volatile.Read(ref _queued));

    /// <summary>Requests in flight on replicas, removed ones included until their sends end.</summary>
    public int Outstanding => Volatile.Read(ref _inFlight);

    // ------------------------------------------------------------ membership

    /// <summary>Adds a replica, or replaces the one with the same id (a node that reconnected). Waiting requests may use it at once.</summary>
    public void AddReplica(IReplica<TRequest, TResponse> replica)
    {
        ArgumentNullException.ThrowIfNull(replica);
        ArgumentException.ThrowIfNullOrEmpty(replica.ReplicaId);
        ArgumentException.ThrowIfNullOrEmpty(replica.NodeId);
        var state = new ReplicaState(replica);
        if (state.Cap < 1)
        {
            throw new ArgumentException($"Replica {replica.ReplicaId} has MaxOngoingRequests {state.Cap}; it must be at least 1.", nameof(replica));
        }

        lock (_lock)
        {
            var set = _replicas;
            var index = IndexOf(set, state.Id);
            ReplicaState[] next;
            if (index >= 0)
            {
                set[index].Removed = true;
                next = (ReplicaState[])set.Clone();
                next[index] = state;
            }
            else
            {
                next = [.. set, state];
            }

            Publish(next);
        }

        InferenceLog.ReplicaAdded(_logger, Deployment, state.Id, state.NodeId, state.Cap);
    }

    /// <summary>
    /// Removes a replica. Requests in flight on it are not touched: its transport ends them with
    /// <see cref="ReplicaUnavailableException"/> and they are retried elsewhere.
    /// </summary>
    /// <returns>False when no replica has that id.</returns>
    public bool RemoveReplica(string replicaId)
    {
        ReplicaState removed;
        lock (_lock)
        {
            var set = _replicas;
            var index = IndexOf(set, replicaId);
            if (index < 0)
            {
                return false;
            }

            removed = set[index];
            removed.Removed = true;
            Publish([.. set.AsSpan(0, index), .. set.AsSpan(index + 1)]);
        }

        InferenceLog.ReplicaRemoved(_logger, Deployment, removed.Id, removed.NodeId);
        return true;
    }

    /// <summary>Removes every replica on a node (the node's session ended).</summary>
    /// <returns>How many were removed.</returns>
    public int RemoveNode(string nodeId)
    {
        List<ReplicaState> removed = [];
        lock (_lock)
        {
            var kept = new List<ReplicaState>(_replicas.Length);
            foreach (var replica in _replicas)
            {
                if (string.Equals(replica.NodeId, nodeId, StringComparison.Ordinal))
                {
                    replica.Removed = true;
                    removed.Add(replica);
                }
                else
                {
                    kept.Add(replica);
                }
            }

            if (removed.Count > 0)
            {
                Publish([.. kept]);
            }
        }

        foreach (var replica in removed)
        {
            InferenceLog.ReplicaRemoved(_logger, Deployment, replica.Id, replica.NodeId);
        }

        return removed.Count;
    }

    // ------------------------------------------------------------ stats

    /// <summary>Requests in flight on the replica with this id, or null when it is not in the set.</summary>
    public int? GetOutstanding(string replicaId)
    {
        var set = Volatile.Read(ref _replicas);
        var index = IndexOf(set, replicaId);
        return index < 0 ? null : Volatile.Read(ref set[index].Outstanding);
    }

    /// <summary>Every replica's load now.</summary>
    public IReadOnlyList<ReplicaLoad> GetReplicaLoads()
    {
        var set = Volatile.Read(ref _replicas);
        var now = Now();
        var loads = new ReplicaLoad[set.Length];
        for (var i = 0; i < set.Length; i++)
        {
            var replica = set[i];
            loads[i] = new ReplicaLoad(replica.Id, replica.NodeId, Volatile.Read(ref replica.Outstanding), replica.Cap, replica.IsHealthy(now), Interlocked.Read(ref replica.Served));
        }

        return loads;
    }

    public RouterStats GetStats() => new()
    {
        Deployment = Deployment,
        Replicas = ReplicaCount,
        Queued = Queued,
        Outstanding = Outstanding,
        Requests = Interlocked.Read(ref _requests),
        Routed = Interlocked.Read(ref _routed),
        Retried = Interlocked.Read(ref _retried),
        Succeeded = Interlocked.Read(ref _outcomes[(int)RouteOutcome.Success]),
        Rejected = Interlocked.Read(ref _outcomes[(int)RouteOutcome.Rejected]),
        Overloaded = Interlocked.Read(ref _outcomes[(int)RouteOutcome.Overloaded]),
        DeadlineExceeded = Interlocked.Read(ref _outcomes[(int)RouteOutcome.DeadlineExceeded]),
        NoReplicas = Interlocked.Read(ref _outcomes[(int)RouteOutcome.NoReplicas]),
        Unavailable = Interlocked.Read(ref _outcomes[(int)RouteOutcome.Unavailable]),
        Canceled = Interlocked.Read(ref _outcomes[(int)RouteOutcome.Canceled]),
        Faulted = Interlocked.Read(ref _outcomes[(int)RouteOutcome.Faulted]),
    };

    /// <summary>The load now, for the <see cref="Autoscaler"/>.</summary>
    public LoadSample Sample() => new(_time.GetUtcNow(), Queued, Outstanding, ReplicaCount);

    // ------------------------------------------------------------ routing

    /// <summary>
    /// Sends <paramref name="request"/> to a replica and returns how it ended; it throws only for a
    /// bug of the router's own. The send is cancelled at <paramref name="deadline"/> (on the router's
    /// clock; <see cref="DateTimeOffset.MaxValue"/> for none) or when
    /// <paramref name="cancellationToken"/> fires.
    /// </summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    public async ValueTask<RouteResult<TResponse>> RouteAsync(TRequest request, DateTimeOffset deadline, CancellationToken cancellationToken = default)
    {
        Interlocked.Increment(ref _requests);
        if (cancellationToken.IsCancellationRequested)
        {
            return Finish(RouteOutcome.Canceled, 0);
        }

        var remaining = deadline - _time.GetUtcNow();
        if (remaining <= TimeSpan.Zero)
        {
            return Finish(RouteOutcome.DeadlineExceeded, 0);
        }

        if (remaining >= MaxTimer)
        {
            return await RouteCoreAsync(request, cancellationToken, cancellationToken);
        }

        // One token for both ends of the request: it fires at the deadline or when the caller cancels.
        using var deadlineSource = new CancellationTokenSource(remaining, _time);
        using var link = cancellationToken.UnsafeRegister(static state => ((CancellationTokenSource)state!).Cancel(), deadlineSource);
        return await RouteCoreAsync(request, deadlineSource.Token, cancellationToken);
    }

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    private async ValueTask<RouteResult<TResponse>> RouteCoreAsync(TRequest request, CancellationToken token, CancellationToken callerToken)
    {
        // Replicas this request has failed on; allocated at the first failure only.
        ReplicaState[]? tried = null;
        var triedCount = 0;
        var attempts = 0;
        while (true)
        {
            var replica = Volatile.Read(ref _queued) == 0 ? TryAcquire(tried, triedCount) : null;
            if (replica is null)
            {
                var (acquired, waiter) = Enqueue(tried, triedCount);
                if (acquired is not null)
                {
                    replica = acquired;
                }
                else if (waiter is null)
                {
                    InferenceLog.Overloaded(_logger, Deployment, Queued);
                    return Finish(RouteOutcome.Overloaded, attempts);
                }
                else
                {
                    using (token.UnsafeRegister(static state => ((Waiter)state!).Cancel(), waiter))
                    {
                        replica = await waiter.Task;
                    }

                    if (replica is null)
                    {
                        return Finish(Stopped(waitingForReplica: ReplicaCount == 0, callerToken), attempts);
                    }
                }
            }

            if (token.IsCancellationRequested)
            {
                Release(replica);
                return Finish(Stopped(waitingForReplica: false, callerToken), attempts);
            }

            attempts++;
            Interlocked.Increment(ref _routed);
            try
            {
                var response = await replica.Replica.SendAsync(request, token);
                replica.Answered();
                return Finish(RouteOutcome.Success, attempts, response, replica: replica);
            }
            catch (ReplicaRejectedException rejection)
            {
                // The model answered: the replica is alive, and the answer is the caller's to see.
                replica.Answered();
                return Finish(RouteOutcome.Rejected, attempts, error: rejection, replica: replica);
            }
            catch (ReplicaUnavailableException failure) when (!token.IsCancellationRequested)
            {
                replica.MarkUnhealthy(Now() + _options.UnhealthyCooldown.Ticks);
                if (failure.Malformed && replica.CountMalformed(_options.EvictAfterMalformedReplies))
                {
                    ReplicaMisbehaving?.Invoke(replica.Id, replica.NodeId, failure.Message);
                }

                InferenceLog.ReplicaUnavailable(_logger, Deployment, replica.Id, replica.NodeId, attempts, failure);
                if (attempts >= _options.MaxAttempts)
                {
                    return Finish(RouteOutcome.Unavailable, attempts, error: failure, replica: replica);
                }

                (tried ??= new ReplicaState[_options.MaxAttempts])[triedCount++] = replica;
                Interlocked.Increment(ref _retried);
            }
            catch (Exception) when (token.IsCancellationRequested)
            {
                return Finish(Stopped(waitingForReplica: false, callerToken), attempts, replica: replica);
            }
            catch (Exception fault)
            {
                InferenceLog.ReplicaFaulted(_logger, Deployment, replica.Id, replica.NodeId, fault);
                return Finish(RouteOutcome.Faulted, attempts, error: fault, replica: replica);
            }
            finally
            {
                Release(replica);
            }

            // Retrying at once suits another replica; going back to one already tried needs a pause.
            if (!HasUntried(tried, triedCount))
            {
                try
                {
                    await Task.Delay(Backoff(triedCount), _time, token);
                }
                catch (OperationCanceledException)
                {
                    return Finish(Stopped(waitingForReplica: false, callerToken), attempts);
                }
            }
        }
    }

    /// <summary>The node that replica <paramref name="replicaId"/> runs on, or null when the router does not hold it.</summary>
    public string? NodeOf(string replicaId)
    {
        foreach (var replica in Volatile.Read(ref _replicas))
        {
            if (string.Equals(replica.Id, replicaId, StringComparison.Ordinal))
            {
                return replica.NodeId;
            }
        }

        return null;
    }

    /// <summary>
    /// Sends <paramref name="request"/> once to the least loaded healthy replica that runs on none of
    /// <paramref name="excludedNodes"/> and has a free slot: for a check that must run somewhere other than
    /// where the first answer came from. It neither queues nor retries, so it never delays callers of
    /// <see cref="RouteAsync"/>: it ends <see cref="RouteOutcome.NoReplicas"/> when no replica runs on
    /// another node, <see cref="RouteOutcome.Overloaded"/> when those are all unhealthy or at their cap.
    /// Its sends do not count in <see cref="GetStats"/>.
    /// </summary>
    public async ValueTask<RouteResult<TResponse>> SendElsewhereAsync(TRequest request, IReadOnlyCollection<string> excludedNodes, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(excludedNodes);
        var now = Now();
        var any = false;
        ReplicaState? best = null;
        var bestLoad = int.MaxValue;
        foreach (var replica in Volatile.Read(ref _replicas))
        {
            if (replica.Removed || excludedNodes.Contains(replica.NodeId))
            {
                continue;
            }

            any = true;
            var load = Volatile.Read(ref replica.Outstanding);
            if (replica.IsHealthy(now) && load < replica.Cap && load < bestLoad)
            {
                best = replica;
                bestLoad = load;
            }
        }

        if (best is null || !best.TryAcquire())
        {
            return new RouteResult<TResponse>(any ? RouteOutcome.Overloaded : RouteOutcome.NoReplicas, default, null, null, 0);
        }

        Interlocked.Increment(ref _inFlight);
        try
        {
            var response = await best.Replica.SendAsync(request, cancellationToken);
            best.Answered();
            return new RouteResult<TResponse>(RouteOutcome.Success, response, null, best.Id, 1, best.NodeId);
        }
        catch (ReplicaRejectedException rejection)
        {
            best.Answered();
            return new RouteResult<TResponse>(RouteOutcome.Rejected, default, rejection, best.Id, 1, best.NodeId);
        }
        catch (ReplicaUnavailableException failure) when (!cancellationToken.IsCancellationRequested)
        {
            best.MarkUnhealthy(Now() + _options.UnhealthyCooldown.Ticks);
            if (failure.Malformed && best.CountMalformed(_options.EvictAfterMalformedReplies))
            {
                ReplicaMisbehaving?.Invoke(best.Id, best.NodeId, failure.Message);
            }

            return new RouteResult<TResponse>(RouteOutcome.Unavailable, default, failure, best.Id, 1, best.NodeId);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            return new RouteResult<TResponse>(RouteOutcome.Canceled, default, null, best.Id, 1, best.NodeId);
        }
        finally
        {
            Release(best);
        }
    }

    private static RouteOutcome Stopped(bool waitingForReplica, CancellationToken callerToken) =>
        callerToken.IsCancellationRequested ? RouteOutcome.Canceled
        : waitingForReplica ? RouteOutcome.NoReplicas
        : RouteOutcome.DeadlineExceeded;

    private RouteResult<TResponse> Finish(RouteOutcome outcome, int attempts, TResponse? response = default, Exception? error = null, ReplicaState? replica = null)
    {
        Interlocked.Increment(ref _outcomes[(int)outcome]);
        return new RouteResult<TResponse>(outcome, response, error, replica?.Id, attempts);
    }

    private TimeSpan Backoff(int retry)
    {
        var ceiling = _options.RetryBackoff * Math.Pow(2, Math.Min(retry - 1, 20));
        if (ceiling > _options.MaxRetryBackoff)
        {
            ceiling = _options.MaxRetryBackoff;
        }

        // Equal jitter: at least half the backoff, so concurrent retries spread but never bunch at zero.
        return ceiling / 2 + ceiling / 2 * (NextInt(1024) / 1024.0);
    }

    private bool HasUntried(ReplicaState[]? tried, int triedCount)
    {
        foreach (var replica in Volatile.Read(ref _replicas))
        {
            if (!Contains(tried, triedCount, replica))
            {
                return true;
            }
        }

        return false;
    }

    // ------------------------------------------------------------ slots

    /// <summary>
    /// Claims a slot on a replica by power of two choices, or returns null when the replicas this request
    /// may use are all at their cap (or there are none). It prefers, in turn: healthy replicas the request
    /// has not tried; untried ones even if unhealthy; healthy ones it has tried; any. It falls to the next
    /// only when the previous has no replica at all, so a request waits for a full healthy replica rather
    /// than use one that just failed.
    /// </summary>
    private ReplicaState? TryAcquire(ReplicaState[]? tried, int triedCount)
    {
        var set = Volatile.Read(ref _replicas);
        if (set.Length == 0)
        {
            return null;
        }

        var now = Now();
        var filter = triedCount > 0 ? Filter.Healthy | Filter.Untried : Filter.Healthy;
        while (true)
        {
            var chosen = Choose(set, filter, tried, triedCount, now, out var anyMatched);
            if (chosen is not null)
            {
                Interlocked.Increment(ref _inFlight);
                return chosen;
            }

            if (anyMatched || filter == Filter.Any)
            {
                return null;
            }

            filter = filter switch
            {
                Filter.Healthy | Filter.Untried => Filter.Untried,
                Filter.Untried => Filter.Healthy,
                _ => Filter.Any,
            };
        }
    }

    private ReplicaState? Choose(ReplicaState[] set, Filter filter, ReplicaState[]? tried, int triedCount, long now, out bool anyMatched)
    {
        anyMatched = false;
        var n = set.Length;
        if (n >= 2)
        {
            for (var round = 0; round < SampleRounds; round++)
            {
                var i = NextInt(n);
                var j = NextInt(n - 1);
                if (j >= i)
                {
                    j++;
                }

                var a = set[i];
                var b = set[j];
                var matchA = Matches(a, filter, tried, triedCount, now);
                var matchB = Matches(b, filter, tried, triedCount, now);
                anyMatched |= matchA | matchB;
                var loadA = matchA ? Volatile.Read(ref a.Outstanding) : int.MaxValue;
                var loadB = matchB ? Volatile.Read(ref b.Outstanding) : int.MaxValue;
                var roomA = matchA && loadA < a.Cap;
                var roomB = matchB && loadB < b.Cap;
                var pick = roomA && roomB ? (loadB < loadA ? b : a) : roomA ? a : roomB ? b : null;
                if (pick is not null && pick.TryAcquire())
                {
                    return pick;
                }
            }
        }

        // Both draws came up full: the least loaded replica with room, scanning from a random start so ties spread.
        for (var round = 0; round < ScanRounds; round++)
        {
            ReplicaState? best = null;
            var bestLoad = int.MaxValue;
            var start = n == 1 ? 0 : NextInt(n);
            for (var k = 0; k < n; k++)
            {
                var replica = set[(start + k) % n];
                if (!Matches(replica, filter, tried, triedCount, now))
                {
                    continue;
                }

                anyMatched = true;
                var load = Volatile.Read(ref replica.Outstanding);
                if (load < replica.Cap && load < bestLoad)
                {
                    best = replica;
                    bestLoad = load;
                }
            }

            if (best is null)
            {
                return null;
            }

            if (best.TryAcquire())
            {
                return best;
            }
        }

        return null;
    }

    private static bool Matches(ReplicaState replica, Filter filter, ReplicaState[]? tried, int triedCount, long now) =>
        !replica.Removed
        && ((filter & Filter.Healthy) == 0 || replica.IsHealthy(now))
        && ((filter & Filter.Untried) == 0 || !Contains(tried, triedCount, replica));

    private static bool Contains(ReplicaState[]? tried, int triedCount, ReplicaState replica)
    {
        for (var i = 0; i < triedCount; i++)
        {
            if (ReferenceEquals(tried![i], replica))
            {
                return true;
            }
        }

        return false;
    }

    private void Release(ReplicaState replica)
    {
        Interlocked.Decrement(ref replica.Outstanding);
        Interlocked.Decrement(ref _inFlight);

        // The decrement comes first: a request that announced itself in _queued before its own last look
        // at the replicas is either seen here or saw this slot free.
        if (Volatile.Read(ref _queued) != 0)
        {
            lock (_lock)
            {
                Drain();
            }
        }
    }

    /// <summary>Takes a slot at once if nobody waits ahead, else queues a waiter; neither when the queue is full.</summary>
    private (ReplicaState? Acquired, Waiter? Waiter) Enqueue(ReplicaState[]? tried, int triedCount)
    {
        Interlocked.Increment(ref _queued);
        lock (_lock)
        {
            Drain();
            if (_waiters.Count == 0 && TryAcquire(tried, triedCount) is { } replica)
            {
                Interlocked.Decrement(ref _queued);
                return (replica, null);
            }

            if (_waiters.Count >= _options.MaxQueuedRequests)
            {
                Interlocked.Decrement(ref _queued);
                return (null, null);
            }

            var waiter = new Waiter(this, tried, triedCount);
            _waiters.AddLast(waiter.Node);

            // Waiters ahead that had tried the replica with room could not take it; this one may.
            Drain();
            return (null, waiter);
        }
    }

    /// <summary>Hands free slots to waiters, oldest first. Caller holds the lock.</summary>
    private void Drain()
    {
        var node = _waiters.First;
        while (node is not null)
        {
            var next = node.Next;
            var waiter = node.Value;
            if (TryAcquire(waiter.Tried, waiter.TriedCount) is { } replica)
            {
                _waiters.Remove(node);
                Interlocked.Decrement(ref _queued);
                waiter.TrySetResult(replica);
            }
            else if (waiter.TriedCount == 0)
            {
                // A waiter that may use any replica found none with room, so none has room for anyone after it.
                return;
            }

            node = next;
        }
    }

    private void CancelWaiter(Waiter waiter)
    {
        lock (_lock)
        {
            if (waiter.Node.List is null)
            {
                return;
            }

            _waiters.Remove(waiter.Node);
            Interlocked.Decrement(ref _queued);
        }

        waiter.TrySetResult(null);
    }

    /// <summary>Publishes a new replica set. Caller holds the lock.</summary>
    private void Publish(ReplicaState[] next)
    {
        // A changed set is a fresh start: a replica that failed may have been the only thing wrong.
        foreach (var replica in next)
        {
            replica.MarkHealthy();
        }

        Volatile.Write(ref _replicas, next);
        Drain();
    }

    private static int IndexOf(ReplicaState[] set, string replicaId)
    {
        for (var i = 0; i < set.Length; i++)
        {
            if (string.Equals(set[i].Id, replicaId, StringComparison.Ordinal))
            {
                return i;
            }
        }

        return -1;
    }

    private long Now() => _time.GetUtcNow().UtcTicks;

    private int NextInt(int maxExclusive)
    {
        if (!_seeded)
        {
            return Random.Shared.Next(maxExclusive);
        }

        // SplitMix64 over an atomically advanced counter: reproducible from the seed, safe from any thread.
        unchecked
        {
            var z = (ulong)Interlocked.Add(ref _rngState, (long)0x9E3779B97F4A7C15UL);
            z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
            z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
            z ^= z >> 31;
            return (int)(((z >> 32) * (ulong)maxExclusive) >> 32);
        }
    }

    private sealed class ReplicaState(IReplica<TRequest, TResponse> replica)
    {
        public readonly IReplica<TRequest, TResponse> Replica = replica;
        public readonly string Id = replica.ReplicaId;
        public readonly string NodeId = replica.NodeId;
        public readonly int Cap = replica.MaxOngoingRequests;
        public int Outstanding;
        public long Served;
        public volatile bool Removed;
        private long _unhealthyUntil;
        private int _malformedInARow;
        private int _misbehaving;

        public bool IsHealthy(long now) => Volatile.Read(ref _unhealthyUntil) <= now;

        public void MarkUnhealthy(long until) => Volatile.Write(ref _unhealthyUntil, until);

        /// <summary>The replica answered (a success or the model's own rejection).</summary>
        public void Answered()
        {
            Interlocked.Increment(ref Served);
            if (Volatile.Read(ref _malformedInARow) != 0)
            {
                Volatile.Write(ref _malformedInARow, 0);
            }

            MarkHealthy();
        }

        /// <summary>Counts a malformed reply; true exactly once, when the count in a row reaches <paramref name="limit"/>.</summary>
        public bool CountMalformed(int limit) =>
            Interlocked.Increment(ref _malformedInARow) >= limit && Interlocked.Exchange(ref _misbehaving, 1) == 0;

        public void MarkHealthy()
        {
            if (Volatile.Read(ref _unhealthyUntil) != 0)
            {
                Volatile.Write(ref _unhealthyUntil, 0);
            }
        }

        public bool TryAcquire()
        {
            var current = Volatile.Read(ref Outstanding);
            while (current < Cap && !Removed)
            {
                var seen = Interlocked.CompareExchange(ref Outstanding, current + 1, current);
                if (seen == current)
                {
                    return true;
                }

                current = seen;
            }

            return false;
        }
    }

    /// <summary>A request waiting for a slot: completed, by whoever takes it out of the queue under the lock, with a claimed replica or null when it gave up.</summary>
    private sealed class Waiter : TaskCompletionSource<ReplicaState?>
    {
        private readonly ReplicaRouter<TRequest, TResponse> _router;

        public Waiter(ReplicaRouter<TRequest, TResponse> router, ReplicaState[]? tried, int triedCount)
            : base(TaskCreationOptions.RunContinuationsAsynchronously)
        {
            _router = router;
            Tried = tried;
            TriedCount = triedCount;
            Node = new LinkedListNode<Waiter>(this);
        }

        public ReplicaState[]? Tried { get; }

        public int TriedCount { get; }

        public LinkedListNode<Waiter> Node { get; }

        public void Cancel() => _router.CancelWaiter(this);
    }
}
