using System.Collections.Concurrent;
using System.Globalization;
using System.Runtime.InteropServices;
using System.Text.Json;
using Emc.Compute;
using Emc.Coordinator.Blobs;
using Emc.Coordinator.Scheduling;
using Emc.Coordinator.Training;
using Emc.Core;
using Emc.Core.Hardware;
using Emc.Core.Scheduling;
using Emc.Core.Training;
using Emc.Core.Verification;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Emc.Coordinator.Verification;

/// <summary>
/// Verification of training work (docs/verification.md, "Training"). At round close it screens the
/// members' updates — copy detection against each other and the network's last outer step, and
/// loss-improvement scoring on a held-out sample — and flags suspects, which the round leaves out. After
/// the round is checkpointed it replays, in the background, every flagged update and a sample of the
/// accepted ones (at the node's audit rate in scope "training") on another member: the member uploads the
/// inner optimizer state it committed to ("train-state"), another node recomputes its share
/// ("train-replay"), and the two updates are compared; a mismatch goes to a third node as referee. Before a
/// node trains in a job, and at random rounds after, it gets a hardware challenge ("challenge") that is
/// timed against its claimed benchmark and checked with Freivalds' algorithm. Every verdict goes into the
/// <see cref="TrustBook"/> and raises <see cref="FaultProven"/> or <see cref="RoundVerified"/>.
/// </summary>
/// <remarks>
/// The training service calls <see cref="Admit"/>, <see cref="ScreenAsync"/>, <see cref="RecordOuterStepAsync"/>
/// and <see cref="RoundCommitted"/> from its loop; verdicts reach it through <see cref="Settled"/>. Checks in
/// flight live in memory only: a coordinator that restarts drops them (their node-rounds are neither paid
/// nor faulted); what a job must remember (bans, passed challenges, the last outer step) is in its progress.
/// </remarks>
public sealed partial class TrainingVerifier : BackgroundService
{
    private static readonly string[] VerificationKinds = [StateRequest.TaskKind, ReplayWork.TaskKind, ChallengeWork.TaskKind];

    private readonly SchedulerService _scheduler;
    private readonly BlobStore _blobs;
    private readonly TrainingStore _store;
    private readonly TrustBook _trust;
    private readonly TrainingVerifierOptions _options;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly Lock _lock = new();
    private readonly Random _random;
    private readonly Dictionary<string, JobChecks> _jobs = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, TaskWatch> _watches = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, int> _pins = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<Task, byte> _running = new();
    private readonly SemaphoreSlim _challengeSlots;
    private readonly TorchThread _torch = new("emc-scoring");
    private readonly CancellationTokenSource _stopping = new();
    private readonly HashSet<string> _released = new(StringComparer.Ordinal);
    private int _pendingReplays;

    public TrainingVerifier(
        SchedulerService scheduler,
        BlobStore blobs,
        TrainingStore store,
        TrustBook trust,
        TrainingVerifierOptions options,
        TimeProvider timeProvider,
        ILogger<TrainingVerifier> logger)
    {
        ArgumentNullException.ThrowIfNull(options);
        var errors = options.Validate();
        if (errors.Count > 0)
        {
            throw new ArgumentException(string.Join("; ", errors), nameof(options));
        }

        _scheduler = scheduler;
        _blobs = blobs;
        _store = store;
        _trust = trust;
        _options = options;
        _time = timeProvider;
        _logger = logger;
        _random = options.Seed is { } seed ? new Random(seed) : new Random();
        _challengeSlots = new SemaphoreSlim(options.ChallengeConcurrency, options.ChallengeConcurrency);
        _scheduler.Committed += OnSchedulerCommitted;
    }

    /// <summary>Raised for every proven fault (on a verifier thread; handlers must not block): the hook for slashing.</summary>
    public event Action<TrainingFault>? FaultProven;

    /// <summary>Raised for every verified node-round (on a verifier or training thread; handlers must not block): what the ledger pays.</summary>
    public event Action<VerifiedNodeRound>? RoundVerified;

    /// <summary>Raised for every timed hardware challenge (on a verifier thread): its timing against the claim, for metrics and tests.</summary>
    public event Action<ChallengeResult>? ChallengeJudged;

    /// <summary>Every verdict, for the training service to record in the job (contributions, bans).</summary>
    internal event Action<VerdictNotice>? Settled;

    /// <summary>
    /// Raised with a job's id when its last replay waiting or running has ended (on a verifier thread; handlers
    /// must not block). Every verdict of those replays — <see cref="RoundVerified"/>, <see cref="FaultProven"/>,
    /// <see cref="Settled"/> — was raised before, so what their handlers queued synchronously is ahead of what
    /// a handler of this queues: the training service refunds an ended job's escrow on it, after paying the
    /// node-rounds those replays cleared.
    /// </summary>
    internal event Action<string>? ReplaysSettled;

    /// <summary>Replays waiting or running now.</summary>
    public int PendingReplays => Volatile.Read(ref _pendingReplays);

    /// <summary>Replays of the job waiting or running now.</summary>
    internal int PendingReplaysOf(string jobId)
    {
        lock (_lock)
        {
            return _jobs.TryGetValue(jobId, out var checks) ? checks.Replays : 0;
        }
    }

    /// <summary>Whether <paramref name="hash"/> is a blob a check in flight still needs (the training service keeps it).</summary>
    internal bool IsPinned(string hash) => _pins.ContainsKey(hash);

    /// <summary>Waits until no check is in flight (for tests).</summary>
    public async Task IdleAsync(TimeSpan timeout, CancellationToken cancellationToken)
    {
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        deadline.CancelAfter(timeout);
        while (!_running.IsEmpty)
        {
            await Task.WhenAny(_running.Keys.ToList()).WaitAsync(deadline.Token);
        }
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        // The sweep: scorers of jobs that stopped scoring are disposed, watches of ended tasks forgotten.
        using var timer = new PeriodicTimer(TimeSpan.FromSeconds(30), _time);
        try
        {
            while (await timer.WaitForNextTickAsync(stoppingToken))
            {
                var now = _time.GetUtcNow();
                List<HeldOutScorer> idle = [];
                lock (_lock)
                {
                    foreach (var (id, checks) in _jobs.ToList())
                    {
                        if (checks.Scorer is { } scorer && now - checks.LastUsed > TimeSpan.FromMinutes(5))
                        {
                            idle.Add(scorer);
                            checks.Scorer = null;
                        }

                        if (checks.Replays == 0 && checks.Challenges.Values.All(c => c.Status != ChallengeStatus.Running) && now - checks.LastUsed > TimeSpan.FromHours(1))
                        {
                            _jobs.Remove(id);
                        }
                    }
                }

                foreach (var scorer in idle)
                {
                    await _torch.RunAsync(() => { scorer.Dispose(); return true; }, CancellationToken.None);
                }

                foreach (var (id, watch) in _watches)
                {
                    if (watch.Done.Task.IsCompleted && now - watch.Created > TimeSpan.FromMinutes(10))
                    {
                        _watches.TryRemove(id, out _);
                    }
                }
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }
    }

    public override async Task StopAsync(CancellationToken cancellationToken)
    {
        await _stopping.CancelAsync();
        await base.StopAsync(cancellationToken);
    }

    public override void Dispose()
    {
        _scheduler.Committed -= OnSchedulerCommitted;
        lock (_lock)
        {
            foreach (var checks in _jobs.Values)
            {
                checks.Scorer?.Dispose();
                checks.Scorer = null;
            }
        }

        _torch.Dispose();
        _stopping.Dispose();
        _challengeSlots.Dispose();
        base.Dispose();
    }

    // ------------------------------------------------------------------ verdicts

    private void Verify(JobInfo info, RoundPlan plan, string node, NodeRoundCheck how, DateTimeOffset at)
    {
        var candidate = plan.Members[node];
        var aggregated = how == NodeRoundCheck.Accepted || (!candidate.Rejected && !plan.Flagged(node));
        if (how == NodeRoundCheck.Replayed)
        {
            _trust.Record(node, TrainingVerdicts.Scope, VerifiedOutcome.Valid);
        }

        var verified = new VerifiedNodeRound(info.JobId, plan.Round, node, candidate.Manifest.Samples, candidate.Manifest.Steps, candidate.Manifest.TrainSeconds, how, aggregated && plan.Aggregated, at);
        Log.Verified(_logger, info.JobId, plan.Round, node, EmcJson.EnumText(how));
        RoundVerified?.Invoke(verified);
        Settled?.Invoke(new VerdictNotice(info.JobId, plan.Round, node, VerdictNoticeKind.Verified, null, verified, default));
    }

    private void ProveFault(JobInfo info, long round, string node, TrainingFaultKind kind, string evidence, IReadOnlyList<string> witnesses, RoundPlan? plan)
    {
        lock (_lock)
        {
            var checks = Checks(info.JobId);
            if (!checks.Banned.Add(node))
            {
                return; // one proven fault bans the node from the job; later checks of its work change nothing
            }
        }

        _trust.Record(node, kind is TrainingFaultKind.OverstatedHardware or TrainingFaultKind.WrongChallenge ? TrainingVerdicts.HardwareScope : TrainingVerdicts.Scope, VerifiedOutcome.Fault);
        var fault = new TrainingFault(info.JobId, round, node, kind, evidence, witnesses, info.RoundsClosed(), _time.GetUtcNow());
        Log.FaultProven(_logger, info.JobId, round, node, EmcJson.EnumText(kind), evidence);
        FaultProven?.Invoke(fault);

        // The node-round's contribution is voided where it was counted as accepted.
        var work = plan is not null && plan.Members.TryGetValue(node, out var candidate) && plan.Round == round
            ? new VoidedWork(plan.Aggregated && !candidate.Rejected && !plan.Flagged(node), candidate.Manifest.Samples, candidate.Manifest.TrainSeconds, candidate.Manifest.UpdateBytes)
            : default;
        Settled?.Invoke(new VerdictNotice(info.JobId, round, node, VerdictNoticeKind.Fault, fault, null, work));
    }

    private void Dispute(JobInfo info, ReplayCheck check, IReadOnlyList<string> nodes, string evidence)
    {
        foreach (var node in nodes)
        {
            _trust.Record(node, TrainingVerdicts.Scope, VerifiedOutcome.Disputed);
        }

        Log.Disputed(_logger, info.JobId, check.Plan.Round, check.Candidate.Node, string.Join(", ", nodes), evidence);
    }

    // ------------------------------------------------------------------ plumbing

    private async Task<(string JobId, TaskWatch Watch)> SubmitAsync(JobInfo info, string node, string kind, string input, bool shared, double minGflops, CancellationToken cancellationToken)
    {
        var view = await _scheduler.SubmitAsync(
            new JobSpec
            {
                Name = $"{info.JobId} {kind} on {node}",
                Account = info.Account,
                Priority = PriorityClass.High,
                Demand = info.Demand with { Nodes = [node], Shared = shared, MinGflops = minGflops, DeviceMemoryBytes = shared ? 0 : info.Demand.DeviceMemoryBytes },
                MaxRetries = 0,
                Tasks = [new TaskSpec { Kind = kind, Input = input }],
            },
            cancellationToken);
        return (view.Id, _watches.GetOrAdd(view.Id, _ => new TaskWatch(_time.GetUtcNow())));
    }

    private async Task<TaskRecord?> WaitAsync(Task<TaskRecord> task, TimeSpan timeout, CancellationToken cancellationToken)
    {
        try
        {
            return await task.WaitAsync(timeout, _time, cancellationToken);
        }
        catch (TimeoutException)
        {
            return null;
        }
    }

    private void OnSchedulerCommitted(SchedulerChanges changes)
    {
        foreach (var task in changes.Tasks)
        {
            if (Array.IndexOf(VerificationKinds, task.Kind) >= 0)
            {
                _watches.GetOrAdd(task.JobId, _ => new TaskWatch(_time.GetUtcNow())).Observe(task);
            }
        }
    }

    private void Track(Task work)
    {
        _running.TryAdd(work, 0);
        _ = work.ContinueWith(
            (done, state) =>
            {
                var self = (TrainingVerifier)state!;
                self._running.TryRemove(done, out _);
                if (done.Exception is { } error && error.InnerException is not OperationCanceledException)
                {
                    Log.CheckCrashed(self._logger, error.InnerException ?? error);
                }
            },
            this,
            CancellationToken.None,
            TaskContinuationOptions.ExecuteSynchronously,
            TaskScheduler.Default);
    }

    private void Pin(string hash) => _pins.AddOrUpdate(hash, 1, (_, count) => count + 1);

    private void Unpin(string hash)
    {
        if (_pins.AddOrUpdate(hash, 0, (_, count) => count - 1) <= 0)
        {
            _pins.TryRemove(new KeyValuePair<string, int>(hash, 0));
            lock (_lock)
            {
                _released.Add(hash);
            }
        }
    }

    /// <summary>Deletes the weights blobs whose last check ended, unless a job or model still refers to them.</summary>
    private async Task ReleaseUnreferencedAsync()
    {
        List<string> candidates;
        lock (_lock)
        {
            candidates = [.. _released.Where(h => !_pins.ContainsKey(h))];
            _released.Clear();
        }

        if (candidates.Count == 0)
        {
            return;
        }

        try
        {
            var referenced = await _store.ReferencedBlobsAsync(CancellationToken.None);
            foreach (var hash in candidates.Where(h => !referenced.Contains(h) && !_pins.ContainsKey(h)))
            {
                _blobs.Delete(hash);
            }
        }
        catch (Exception ex) when (ex is InvalidOperationException or IOException or ObjectDisposedException)
        {
            Log.CheckCrashed(_logger, ex);
        }
    }

    private static T? Read<T>(string? output)
        where T : class
    {
        if (output is null)
        {
            return null;
        }

        try
        {
            return JsonSerializer.Deserialize<T>(output, EmcJson.Options);
        }
        catch (JsonException)
        {
            return null;
        }
    }

    /// <summary>The verifier's memory of a job; call under the lock.</summary>
    private JobChecks Checks(string jobId)
    {
        if (!_jobs.TryGetValue(jobId, out var checks))
        {
            checks = new JobChecks { LastUsed = _time.GetUtcNow() };
            _jobs[jobId] = checks;
        }

        return checks;
    }

    private JobInfo Describe(ActiveJob job)
    {
        var id = job.Row.Id;
        return new JobInfo(
            id,
            job.Spec.Account,
            new ResourceDemand { Device = job.Spec.Device, DeviceMemoryBytes = job.Spec.DeviceMemoryBytes, CacheKeys = [job.ManifestHash] },
            [.. job.Progress.Verification.Banned.Keys],
            () =>
            {
                lock (_lock)
                {
                    return Checks(id).RoundsClosed;
                }
            });
    }

    private sealed record JobInfo(string JobId, string Account, ResourceDemand Demand, IReadOnlyCollection<string> Banned, Func<long> RoundsClosed);

    private sealed record ReplayCheck(JobInfo Info, RoundPlan Plan, ScreenCandidate Candidate, bool Flagged, ReplayWork Work, bool AcceptedUnflagged);

    /// <summary>What the screening of a round decided, until the round is committed.</summary>
    private sealed class RoundPlan(long round, string baseWeights)
    {
        public long Round { get; } = round;

        public string BaseWeights { get; } = baseWeights;

        public Dictionary<string, ScreenCandidate> Members { get; } = new(StringComparer.OrdinalIgnoreCase);

        public HashSet<string> Banned { get; } = new(StringComparer.OrdinalIgnoreCase);

        public List<(string Node, bool Flagged)> Replays { get; } = [];

        public List<string> Unchecked { get; } = [];

        /// <summary>Whether the round produced an aggregate (set when it is committed).</summary>
        public bool Aggregated { get; set; } = true;

        public bool Flagged(string node) => Replays.Any(r => r.Flagged && string.Equals(r.Node, node, StringComparison.OrdinalIgnoreCase));
    }

    private sealed class JobChecks
    {
        public Dictionary<string, ChallengeState> Challenges { get; } = new(StringComparer.OrdinalIgnoreCase);

        /// <summary>Nodes drawn to be challenged again before the next round.</summary>
        public HashSet<string> Due { get; } = new(StringComparer.OrdinalIgnoreCase);

        /// <summary>Nodes proven faulty (also in the job's progress once the training service recorded it).</summary>
        public HashSet<string> Banned { get; } = new(StringComparer.OrdinalIgnoreCase);

        public HashSet<string> LastMembers { get; set; } = new(StringComparer.OrdinalIgnoreCase);

        /// <summary>Replays each node was given, to spread them.</summary>
        public Dictionary<string, int> Replaying { get; } = new(StringComparer.OrdinalIgnoreCase);

        public int Replays { get; set; }

        public long RoundsClosed { get; set; }

        public float[]? OuterStep { get; set; }

        public string? OuterStepHash { get; set; }

        public HeldOutScorer? Scorer { get; set; }

        public bool ScorerFailed { get; set; }

        public RoundPlan? Plan { get; set; }

        public DateTimeOffset? WaitingSince { get; set; }

        public DateTimeOffset LastUsed { get; set; }
    }

    private enum ChallengeStatus
    {
        Running,
        Passed,
        Failed,
        Faulty,
    }

    private sealed class ChallengeState
    {
        public ChallengeStatus Status { get; init; }

        public DateTimeOffset RetryAt { get; init; }
    }

    /// <summary>What the scheduler has said about one verification task.</summary>
    private sealed class TaskWatch(DateTimeOffset created)
    {
        private readonly Lock _lock = new();

        public DateTimeOffset Created { get; } = created;

        public TaskCompletionSource<TaskRecord> Started { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public TaskCompletionSource<TaskRecord> Done { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public DateTimeOffset? LeasedAt { get; private set; }

        public DateTimeOffset? RunningAt { get; private set; }

        public void Observe(TaskRecord task)
        {
            lock (_lock)
            {
                if (task.State == TaskState.Leased)
                {
                    LeasedAt ??= task.UpdatedAt;
                }
                else if (task.State == TaskState.Running)
                {
                    RunningAt ??= task.UpdatedAt;
                }
            }

            if (task.State is TaskState.Running or TaskState.Completed or TaskState.Failed or TaskState.Cancelled)
            {
                Started.TrySetResult(task);
            }

            if (task.State is TaskState.Completed or TaskState.Failed or TaskState.Cancelled)
            {
                Done.TrySetResult(task);
            }
        }
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 1, Level = LogLevel.Information, Message = "Training {JobId} round {Round}: {Node} flagged: {Reason}")]
        public static partial void Flagged(ILogger logger, string jobId, long round, string node, string reason);

        [LoggerMessage(EventId = 2, Level = LogLevel.Warning, Message = "Training {JobId} round {Round}: {Node} proven faulty ({Kind}): {Evidence}")]
        public static partial void FaultProven(ILogger logger, string jobId, long round, string node, string kind, string evidence);

        [LoggerMessage(EventId = 3, Level = LogLevel.Debug, Message = "Training {JobId} round {Round}: {Node} verified ({Check})")]
        public static partial void Verified(ILogger logger, string jobId, long round, string node, string check);

        [LoggerMessage(EventId = 4, Level = LogLevel.Information, Message = "Training {JobId} round {Round}: replay of {Node} on {Replayer}: relative distance {Distance:G3}, agree {Agree}")]
        public static partial void Compared(ILogger logger, string jobId, long round, string node, string replayer, double distance, bool agree);

        [LoggerMessage(EventId = 5, Level = LogLevel.Warning, Message = "Training {JobId} round {Round}: the replay of {Node} was skipped: {Reason}")]
        public static partial void ReplaySkipped(ILogger logger, string jobId, long round, string node, string reason);

        [LoggerMessage(EventId = 6, Level = LogLevel.Warning, Message = "Training {JobId} round {Round}: the replays of {Node} disagree and nothing settles it ({Nodes}): {Evidence}")]
        public static partial void Disputed(ILogger logger, string jobId, long round, string node, string nodes, string evidence);

        [LoggerMessage(EventId = 7, Level = LogLevel.Information, Message = "Training {JobId}: {Node} passed its hardware challenge: {Evidence}")]
        public static partial void ChallengePassed(ILogger logger, string jobId, string node, string evidence);

        [LoggerMessage(EventId = 8, Level = LogLevel.Information, Message = "Training {JobId}: the hardware challenge of {Node} did not complete ({Reason}); it is tried again later")]
        public static partial void ChallengeSkipped(ILogger logger, string jobId, string node, string reason);

        [LoggerMessage(EventId = 9, Level = LogLevel.Debug, Message = "Training {JobId}: the challenge result of {Node} passed Freivalds' check")]
        public static partial void ChallengeChecked(ILogger logger, string jobId, string node);

        [LoggerMessage(EventId = 10, Level = LogLevel.Debug, Message = "Training {JobId}: scored {Updates} updates on {Examples} held-out examples (base loss {Loss:G4}) in {Milliseconds:0} ms")]
        public static partial void Scored(ILogger logger, string jobId, int updates, int examples, double loss, double milliseconds);

        [LoggerMessage(EventId = 11, Level = LogLevel.Warning, Message = "Training {JobId}: held-out scoring is unavailable for the job")]
        public static partial void ScoringUnavailable(ILogger logger, string jobId, Exception exception);

        [LoggerMessage(EventId = 12, Level = LogLevel.Warning, Message = "Training {JobId}: a check of {Node} failed")]
        public static partial void CheckFailed(ILogger logger, string jobId, string node, Exception exception);

        [LoggerMessage(EventId = 13, Level = LogLevel.Error, Message = "A training check crashed")]
        public static partial void CheckCrashed(ILogger logger, Exception exception);
    }
}

/// <summary>How a node's hardware challenge went.</summary>
/// <param name="JobId">The training job it was challenged for.</param>
/// <param name="Node">The node.</param>
/// <param name="Work">The challenge.</param>
/// <param name="ClaimedGflops">The speed it claimed at admission.</param>
/// <param name="Seconds">The time measured (or waited in vain).</param>
/// <param name="Passed">Whether the time was within the limit (the result's correctness is checked after).</param>
/// <param name="Evidence">The timing in words.</param>
public sealed record ChallengeResult(string JobId, string Node, ChallengeWork Work, double ClaimedGflops, double Seconds, bool Passed, string Evidence);

/// <summary>The nodes a round may be planned on, or why the planner should wait.</summary>
/// <param name="Nodes">Admitted nodes, in the order given.</param>
/// <param name="WaitReason">Set when the planner should wait for checks in flight.</param>
internal sealed record Admission(IReadOnlyList<FittingNode> Nodes, string? WaitReason);

/// <summary>A member's update as the screening sees it.</summary>
/// <param name="Node">The member.</param>
/// <param name="Manifest">Its signed manifest.</param>
/// <param name="Delta">Its decoded update.</param>
/// <param name="Share">Its share of the round.</param>
/// <param name="Inner">The job's resolved inner optimizer (as the round gave it).</param>
/// <param name="TotalSteps">The round's total-steps figure (the schedule's horizon).</param>
/// <param name="RejectedReason">Why the round's statistical checks rejected it; null when they accepted it.</param>
internal sealed record ScreenCandidate(string Node, RoundManifest Manifest, float[] Delta, MemberWork Share, InnerOptimizerSpec Inner, long TotalSteps, string? RejectedReason)
{
    public bool Rejected => RejectedReason is not null;
}

internal enum VerdictNoticeKind
{
    Fault,
    Verified,
    ChallengePassed,
}

/// <summary>The part of a faulty node-round that was counted as accepted and is taken back out.</summary>
/// <param name="Aggregated">Whether it was counted as accepted at all.</param>
/// <param name="Samples">Its samples.</param>
/// <param name="Seconds">Its training seconds.</param>
/// <param name="Bytes">Its update's bytes.</param>
internal readonly record struct VoidedWork(bool Aggregated, long Samples, double Seconds, long Bytes);

/// <summary>A verdict for the training service to record in the job.</summary>
internal sealed record VerdictNotice(string JobId, long Round, string Node, VerdictNoticeKind Kind, TrainingFault? Fault, VerifiedNodeRound? Verified, VoidedWork Voided);
