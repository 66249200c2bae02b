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

    /// <summary>Replays waiting or running now.</summary>
    public int PendingReplays => Volatile.Read(ref _pendingReplays);

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

    // ------------------------------------------------------------------ planning: bans and challenges

    /// <summary>
    /// The fitting nodes a job may plan its next round on: not banned from the job, and with a passed hardware
    /// challenge in it. Starts the challenges that are due. <see cref="Admission.WaitReason"/> is set when the
    /// planner should wait: the job's first nodes, or last round's members, are being challenged.
    /// </summary>
    internal Admission Admit(ActiveJob job, IReadOnlyList<FittingNode> fitting)
    {
        var state = job.Progress.Verification;
        var now = _time.GetUtcNow();
        var admitted = new List<FittingNode>(fitting.Count);
        var start = new List<FittingNode>();
        string? wait = null;
        lock (_lock)
        {
            var checks = Checks(job.Row.Id);
            checks.RoundsClosed = job.Row.Round;
            foreach (var node in fitting)
            {
                if (state.Banned.ContainsKey(node.NodeId) || checks.Banned.Contains(node.NodeId))
                {
                    continue;
                }

                if (!_options.Enabled || !_options.Challenges)
                {
                    admitted.Add(node);
                    continue;
                }

                var challenge = checks.Challenges.GetValueOrDefault(node.NodeId);
                var due = checks.Due.Contains(node.NodeId);
                var passed = challenge?.Status == ChallengeStatus.Passed || (challenge is null && state.Challenged.ContainsKey(node.NodeId));
                if (passed && !due)
                {
                    admitted.Add(node);
                    continue;
                }

                // The job's first nodes, and last round's members, are waited for; newcomers join when they pass.
                var blocking = job.Row.Round == 0 || checks.LastMembers.Contains(node.NodeId);
                if (challenge?.Status == ChallengeStatus.Running)
                {
                    wait ??= blocking ? "checking the nodes' hardware" : null;
                    continue;
                }

                if (challenge?.Status == ChallengeStatus.Failed && now < challenge.RetryAt)
                {
                    continue;
                }

                if (due && checks.Replays > 0)
                {
                    // A challenge is timed: it waits until the job's replays are done with the nodes.
                    wait ??= "waiting for replays to finish before a hardware challenge";
                    continue;
                }

                if (node.Gflops <= 0)
                {
                    // Nothing claimed, nothing to overstate.
                    checks.Challenges[node.NodeId] = new ChallengeState { Status = ChallengeStatus.Passed };
                    admitted.Add(node);
                    continue;
                }

                checks.Due.Remove(node.NodeId);
                checks.Challenges[node.NodeId] = new ChallengeState { Status = ChallengeStatus.Running };
                start.Add(node);
                wait ??= blocking ? "checking the nodes' hardware" : null;
            }

            if (wait is null)
            {
                checks.WaitingSince = null;
            }
            else
            {
                checks.WaitingSince ??= now;
                if (now - checks.WaitingSince > _options.ChallengeWait)
                {
                    wait = null; // plan without the nodes still being checked
                }
            }
        }

        if (start.Count > 0)
        {
            var info = Describe(job);
            foreach (var node in start)
            {
                Track(ChallengeAsync(info, node.NodeId, node.Gflops, _stopping.Token));
            }
        }

        return new Admission(admitted, wait);
    }

    private async Task ChallengeAsync(JobInfo info, string node, double claimedGflops, CancellationToken cancellationToken)
    {
        var (status, evidence) = (ChallengeStatus.Failed, "the challenge did not run");
        await _challengeSlots.WaitAsync(cancellationToken);
        try
        {
            // A machine can be slow for a moment; an overstatement is slow every time. Only
            // ChallengeAttempts too-slow results in a row prove it.
            var slow = new List<string>();
            for (var attempt = 1; attempt <= _options.ChallengeAttempts; attempt++)
            {
                (status, evidence) = await RunChallengeAsync(info, node, claimedGflops, cancellationToken);
                if (status != ChallengeStatus.Faulty)
                {
                    break;
                }

                slow.Add(evidence);
            }

            if (status == ChallengeStatus.Faulty)
            {
                evidence = string.Join("; then ", slow);
                ProveFault(info, info.RoundsClosed(), node, TrainingFaultKind.OverstatedHardware, evidence, [TrainingVerdicts.Coordinator], null);
            }
        }
        catch (Exception ex) when (ex is SchedulingException or InvalidOperationException)
        {
            Log.CheckFailed(_logger, info.JobId, node, ex);
        }
        finally
        {
            _challengeSlots.Release();
            lock (_lock)
            {
                var checks = Checks(info.JobId);
                checks.Challenges[node] = new ChallengeState { Status = status, RetryAt = _time.GetUtcNow() + TimeSpan.FromSeconds(30) };
            }
        }

        if (status == ChallengeStatus.Passed)
        {
            Log.ChallengePassed(_logger, info.JobId, node, evidence);
            _trust.Record(node, TrainingVerdicts.HardwareScope, VerifiedOutcome.Valid);
            Settled?.Invoke(new VerdictNotice(info.JobId, 0, node, VerdictNoticeKind.ChallengePassed, null, null, default));
        }
        else if (status == ChallengeStatus.Failed)
        {
            Log.ChallengeSkipped(_logger, info.JobId, node, evidence);
        }
    }

    /// <summary>One challenge: timed from the lease's acceptance to the answer, then the uploaded result is checked.</summary>
    private async Task<(ChallengeStatus Status, string Evidence)> RunChallengeAsync(JobInfo info, string node, double claimedGflops, CancellationToken cancellationToken)
    {
        long seed;
        lock (_lock)
        {
            seed = _random.NextInt64();
        }

        var work = MatmulChallenge.Size(claimedGflops, _options.ChallengeSeconds, seed);
        var (jobId, watch) = await SubmitAsync(info, node, ChallengeWork.TaskKind, JsonSerializer.Serialize(work, EmcJson.Options), shared: false, minGflops: claimedGflops, cancellationToken);
        try
        {
            var started = await WaitAsync(watch.Started.Task, _options.ChallengeTimeout, cancellationToken);
            if (started is null || (started.State != TaskState.Running && started.State != TaskState.Completed))
            {
                await _scheduler.CancelAsync(jobId, "the node did not take the hardware challenge", CancellationToken.None);
                return (ChallengeStatus.Failed, started?.Reason ?? "the node did not take the challenge in time");
            }

            var expected = MatmulChallenge.SecondsAt(work, claimedGflops);
            var limit = TimeSpan.FromSeconds((_options.ChallengeTolerance * expected) + _options.ChallengeGrace.TotalSeconds);
            var from = watch.RunningAt ?? watch.LeasedAt;
            var remaining = from is { } t ? t + limit + TimeSpan.FromSeconds(1) - _time.GetUtcNow() : limit;
            var done = await WaitAsync(watch.Done.Task, remaining > TimeSpan.Zero ? remaining : TimeSpan.Zero, cancellationToken);
            if (done is null)
            {
                await _scheduler.CancelAsync(jobId, "the hardware challenge ran out of time", CancellationToken.None);
                var waited = from is { } f ? (_time.GetUtcNow() - f).TotalSeconds : limit.TotalSeconds;
                var (_, words) = MatmulChallenge.JudgeTime(work, claimedGflops, waited, _options.ChallengeTolerance, _options.ChallengeGrace.TotalSeconds, answered: false);
                ChallengeJudged?.Invoke(new ChallengeResult(info.JobId, node, work, claimedGflops, waited, Passed: false, words));
                return (ChallengeStatus.Faulty, words);
            }

            if (done.State != TaskState.Completed || watch.RunningAt is not { } running)
            {
                return (ChallengeStatus.Failed, done.Reason ?? "the challenge was not timed");
            }

            var seconds = (done.UpdatedAt - running).TotalSeconds;
            var (tooSlow, evidence) = MatmulChallenge.JudgeTime(work, claimedGflops, seconds, _options.ChallengeTolerance, _options.ChallengeGrace.TotalSeconds);
            ChallengeJudged?.Invoke(new ChallengeResult(info.JobId, node, work, claimedGflops, seconds, !tooSlow, evidence));
            if (tooSlow)
            {
                return (ChallengeStatus.Faulty, evidence);
            }

            // The time passed: the node may train. Its result is checked as it arrives.
            var report = Read<ChallengeReport>(done.Output);
            Track(CheckChallengeResultAsync(info, node, work, report?.Result, evidence, cancellationToken));
            return (ChallengeStatus.Passed, evidence);
        }
        finally
        {
            _watches.TryRemove(jobId, out _);
        }
    }

    private async Task CheckChallengeResultAsync(JobInfo info, string node, ChallengeWork work, string? hash, string timing, CancellationToken cancellationToken)
    {
        string? problem = null;
        if (hash is null || !BlobStore.IsHash(hash))
        {
            problem = "its answer names no result";
        }
        else
        {
            var deadline = _time.GetUtcNow() + _options.ChallengeTimeout + TimeSpan.FromSeconds(work.Size * (double)work.Size * 4 / 1e6);
            while (!_blobs.Exists(hash) && _time.GetUtcNow() < deadline)
            {
                await Task.Delay(TimeSpan.FromMilliseconds(200), _time, cancellationToken);
            }

            var bytes = _blobs.Length(hash) is { } size && size <= WeightsCodec.EncodedSize((long)work.Size * work.Size) ? await _blobs.ReadAsync(hash, cancellationToken) : null;
            if (bytes is null)
            {
                problem = _blobs.Exists(hash) ? "its result is larger than the product" : "its result was never uploaded";
                _blobs.Delete(hash);
            }
            else
            {
                _blobs.Delete(hash);
                problem = await Task.Run(
                    () =>
                    {
                        try
                        {
                            var c = WeightsCodec.Decode(bytes, (long)work.Size * work.Size);
                            Random random;
                            lock (_lock)
                            {
                                random = new Random(_random.Next());
                            }

                            var error = MatmulChallenge.Check(work, c, random);
                            return error <= 1e-2 ? null : string.Create(CultureInfo.InvariantCulture, $"its result fails Freivalds' check (relative error {error:G3})");
                        }
                        catch (InvalidDataException ex)
                        {
                            return $"its result is malformed: {ex.Message}";
                        }
                    },
                    cancellationToken);
            }
        }

        if (problem is null)
        {
            Log.ChallengeChecked(_logger, info.JobId, node);
            return;
        }

        lock (_lock)
        {
            Checks(info.JobId).Challenges[node] = new ChallengeState { Status = ChallengeStatus.Faulty };
        }

        ProveFault(info, info.RoundsClosed(), node, TrainingFaultKind.WrongChallenge, $"{problem} ({timing})", [TrainingVerdicts.Coordinator], null);
    }

    // ------------------------------------------------------------------ round close: screening

    /// <summary>
    /// Screens a round's updates before aggregation: members banned from the job are left out; copies and
    /// updates the held-out scoring flags are left out and replayed; updates the statistical checks rejected
    /// (<see cref="ScreenCandidate.Rejected"/>) are replayed; of the rest, a sample at each node's audit rate
    /// is replayed. Returns the flags (node → reason) for the accepted candidates. Call
    /// <see cref="RoundCommitted"/> once the round is checkpointed (or ended empty) to start the replays.
    /// </summary>
    internal async Task<IReadOnlyDictionary<string, string>> ScreenAsync(ActiveJob job, RoundState round, IReadOnlyList<ScreenCandidate> candidates, float[] weights, CancellationToken cancellationToken)
    {
        var flags = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        var info = Describe(job);
        var plan = new RoundPlan(round.Number, job.Row.WeightsHash!);
        var accepted = new List<ScreenCandidate>();
        lock (_lock)
        {
            var checks = Checks(job.Row.Id);
            checks.Plan = null;
            foreach (var candidate in candidates)
            {
                plan.Members[candidate.Node] = candidate;
                if (job.Progress.Verification.Banned.ContainsKey(candidate.Node) || checks.Banned.Contains(candidate.Node))
                {
                    flags[candidate.Node] = "the node was proven faulty in this job";
                    plan.Banned.Add(candidate.Node);
                }
                else if (!candidate.Rejected)
                {
                    accepted.Add(candidate);
                }
            }
        }

        // A sync round is one gradient step per member: its held-out effect is noise, and it legitimately
        // points where the last step did. Such rounds rely on the update checks and the replays.
        if (_options.Enabled && accepted.Count > 0 && job.Spec.Algorithm == TrainingAlgorithm.Diloco)
        {
            foreach (var flag in CopyDetection.Find([.. accepted.Select(c => (c.Node, c.Delta))], await OuterStepAsync(job, weights.Length, cancellationToken), _options.CopyThreshold))
            {
                flags[flag.Node] = flag.Reason;
            }

            foreach (var verdict in await ScoreAsync(job, accepted, weights, cancellationToken))
            {
                if (verdict.Flagged && !flags.ContainsKey(verdict.Node))
                {
                    flags[verdict.Node] = verdict.Reason!;
                }
            }
        }

        lock (_lock)
        {
            foreach (var candidate in candidates.Where(c => !plan.Banned.Contains(c.Node)))
            {
                var flagged = candidate.Rejected || flags.ContainsKey(candidate.Node);
                if (!_options.Enabled)
                {
                    if (!flagged)
                    {
                        plan.Unchecked.Add(candidate.Node);
                    }

                    continue;
                }

                if (flagged)
                {
                    plan.Replays.Add((candidate.Node, Flagged: true));
                }
                else if (_random.NextDouble() < _trust.AuditRate(candidate.Node, TrainingVerdicts.Scope, _options.Policy))
                {
                    plan.Replays.Add((candidate.Node, Flagged: false));
                }
                else
                {
                    plan.Unchecked.Add(candidate.Node);
                }
            }

            var checks = Checks(job.Row.Id);
            checks.Plan = plan;
            checks.LastUsed = _time.GetUtcNow();
            if (plan.Replays.Count > 0)
            {
                Pin(plan.BaseWeights);
            }
        }

        foreach (var (node, reason) in flags)
        {
            Log.Flagged(_logger, info.JobId, round.Number, node, reason);
        }

        return flags;
    }

    /// <summary>Keeps the network's last outer step (weights before − after the round), for copy detection in the next round.</summary>
    internal async Task RecordOuterStepAsync(ActiveJob job, float[] before, float[] after, CancellationToken cancellationToken)
    {
        if (!_options.Enabled)
        {
            return;
        }

        var step = new float[after.Length];
        System.Numerics.Tensors.TensorPrimitives.Subtract(before, after, step);
        var hash = await _blobs.PutAsync(WeightsCodec.Encode(step), cancellationToken);
        var previous = job.Progress.Verification.LastOuterStep;
        job.Progress.Verification.LastOuterStep = hash;
        lock (_lock)
        {
            var checks = Checks(job.Row.Id);
            checks.OuterStep = step;
            checks.OuterStepHash = hash;
        }

        if (previous is not null && previous != hash)
        {
            _blobs.Delete(previous);
        }
    }

    /// <summary>
    /// The round is checkpointed (<paramref name="aggregated"/>) or ended without an aggregate: emits the
    /// verified outcome of every accepted update that is not replayed, starts the replays, and draws which
    /// members are challenged again before the next round.
    /// </summary>
    internal void RoundCommitted(ActiveJob job, long round, bool aggregated)
    {
        RoundPlan? plan;
        var info = Describe(job);
        lock (_lock)
        {
            var checks = Checks(job.Row.Id);
            plan = checks.Plan;
            checks.Plan = null;
            checks.RoundsClosed = job.Row.Round;
            if (plan is null || plan.Round != round)
            {
                return;
            }

            plan.Aggregated = aggregated;

            checks.LastMembers = [.. plan.Members.Keys];
            foreach (var node in plan.Members.Keys)
            {
                if (_options.Challenges && _random.NextDouble() < _options.RechallengeProbability)
                {
                    checks.Due.Add(node);
                }
            }
        }

        var now = _time.GetUtcNow();
        if (aggregated)
        {
            foreach (var node in plan.Unchecked)
            {
                Verify(info, plan, node, NodeRoundCheck.Accepted, now);
            }
        }

        var started = false;
        foreach (var (node, flagged) in plan.Replays)
        {
            if (!flagged && Volatile.Read(ref _pendingReplays) >= _options.MaxPendingReplays)
            {
                // Too many checks in flight: a sampled update that passed everything goes unchecked.
                if (aggregated)
                {
                    Verify(info, plan, node, NodeRoundCheck.Accepted, now);
                }

                continue;
            }

            var candidate = plan.Members[node];
            var check = new ReplayCheck(info, plan, candidate, flagged, ReplayInput(job, plan, candidate), aggregated && !flagged);
            Interlocked.Increment(ref _pendingReplays);
            lock (_lock)
            {
                Checks(info.JobId).Replays++;
                Pin(plan.BaseWeights);
            }

            started = true;
            Track(ReplayAsync(check, _stopping.Token));
        }

        lock (_lock)
        {
            if (plan.Replays.Count > 0)
            {
                Unpin(plan.BaseWeights); // the pin of the screening; each replay holds its own
            }
        }

        if (!started)
        {
            _ = ReleaseUnreferencedAsync();
        }
    }

    private async Task<float[]?> OuterStepAsync(ActiveJob job, int length, CancellationToken cancellationToken)
    {
        var hash = job.Progress.Verification.LastOuterStep;
        lock (_lock)
        {
            var checks = Checks(job.Row.Id);
            if (hash is null || (checks.OuterStepHash == hash && checks.OuterStep is not null))
            {
                return hash is null ? null : checks.OuterStep;
            }
        }

        // After a restart the step is read back from its blob.
        var bytes = await _blobs.ReadAsync(hash, cancellationToken);
        if (bytes is null)
        {
            return null;
        }

        try
        {
            var step = WeightsCodec.Decode(bytes, length);
            lock (_lock)
            {
                var checks = Checks(job.Row.Id);
                checks.OuterStep = step;
                checks.OuterStepHash = hash;
            }

            return step;
        }
        catch (InvalidDataException)
        {
            return null;
        }
    }

    private async Task<IReadOnlyList<ScoreVerdict>> ScoreAsync(ActiveJob job, List<ScreenCandidate> accepted, float[] weights, CancellationToken cancellationToken)
    {
        if (_options.ScoringExamples <= 0)
        {
            return [];
        }

        HeldOutScorer? scorer;
        bool failed;
        lock (_lock)
        {
            var checks = Checks(job.Row.Id);
            scorer = checks.Scorer;
            failed = checks.ScorerFailed;
            checks.LastUsed = _time.GetUtcNow();
        }

        if (failed)
        {
            return [];
        }

        var subject = new ScoringSubject(job.Spec.Model, job.Spec.Seed, job.Manifest, job.EvalSplit, job.EvalFirst, job.EvalCount, job.IsText, weights.Length);
        var deltas = accepted.Select(c => c.Delta).ToList();
        var threads = _options.ScoringThreads;
        var examples = _options.ScoringExamples;
        try
        {
            var started = _time.GetTimestamp();
            var (built, baseLoss, losses) = await _torch.RunAsync(
                () =>
                {
                    TorchRuntime.EnsureInitialized();
                    if (threads > 0)
                    {
                        TorchSharp.torch.set_num_threads(threads);
                    }

                    var s = scorer ?? HeldOutScorer.Create(subject, _blobs, examples);
                    if (s is null)
                    {
                        return (s, double.NaN, Array.Empty<double>());
                    }

                    var (b, l) = s.Score(weights, deltas);
                    return (s, b, l);
                },
                cancellationToken);
            lock (_lock)
            {
                var checks = Checks(job.Row.Id);
                checks.Scorer = built;
                checks.ScorerFailed = built is null;
            }

            if (built is null)
            {
                return [];
            }

            Log.Scored(_logger, job.Row.Id, accepted.Count, built.Examples, baseLoss, _time.GetElapsedTime(started).TotalMilliseconds);
            var scored = accepted.Select((c, i) => new ScoredUpdate(c.Node, losses[i], c.Manifest.Samples)).ToList();
            return ImprovementScoring.Judge(baseLoss, scored, _options.Scoring);
        }
        catch (Exception ex) when (ex is InvalidDataException or ArgumentException or IOException or ExternalException)
        {
            Log.ScoringUnavailable(_logger, job.Row.Id, ex);
            lock (_lock)
            {
                Checks(job.Row.Id).ScorerFailed = true;
            }

            return [];
        }
    }

    // ------------------------------------------------------------------ replays

    private async Task ReplayAsync(ReplayCheck check, CancellationToken cancellationToken)
    {
        var info = check.Info;
        var subject = check.Candidate.Node;
        var cleanup = new List<string>();
        try
        {
            if (check.Work.State is { } state)
            {
                var problem = await FetchStateAsync(check, state, cancellationToken);
                if (problem is not null)
                {
                    ProveFault(info, check.Plan.Round, subject, TrainingFaultKind.StateWithheld, problem, [TrainingVerdicts.Coordinator], check.Plan);
                    return;
                }

                cleanup.Add(state);
            }

            var excluded = new HashSet<string>(StringComparer.OrdinalIgnoreCase) { subject };
            var first = await ReplayElsewhereAsync(check, excluded, cancellationToken);
            if (first is null)
            {
                Log.ReplaySkipped(_logger, info.JobId, check.Plan.Round, subject, "no other node could replay it");
                if (check.AcceptedUnflagged)
                {
                    Verify(info, check.Plan, subject, NodeRoundCheck.Accepted, _time.GetUtcNow());
                }

                return;
            }

            var (replayer, replayed) = first.Value;
            var match = ReplayComparison.Compare(check.Candidate.Delta, replayed, _options.ReplayTolerance);
            Log.Compared(_logger, info.JobId, check.Plan.Round, subject, replayer, match.Distance, match.Agree);
            if (match.Agree)
            {
                _trust.Record(replayer, TrainingVerdicts.Scope, VerifiedOutcome.Valid);
                Verify(info, check.Plan, subject, NodeRoundCheck.Replayed, _time.GetUtcNow());
                return;
            }

            // A disagreement: a third node referees, so that a faulty replayer cannot convict an honest member.
            excluded.Add(replayer);
            var third = await ReplayElsewhereAsync(check, excluded, cancellationToken);
            if (third is null)
            {
                if (check.Flagged)
                {
                    // The round's own checks flagged it and a replay contradicts it: two independent witnesses.
                    _trust.Record(replayer, TrainingVerdicts.Scope, VerifiedOutcome.Valid);
                    ProveFault(info, check.Plan.Round, subject, TrainingFaultKind.WrongUpdate, $"{match.Evidence} against {replayer}'s replay; the round flagged it ({FlagReason(check)})", [replayer, TrainingVerdicts.Coordinator], check.Plan);
                }
                else
                {
                    Dispute(info, check, [subject, replayer], match.Evidence);
                }

                return;
            }

            var (referee, refereed) = third.Value;
            var memberAgrees = ReplayComparison.Compare(check.Candidate.Delta, refereed, _options.ReplayTolerance);
            var replayerAgrees = ReplayComparison.Compare(replayed, refereed, _options.ReplayTolerance);
            Log.Compared(_logger, info.JobId, check.Plan.Round, subject, referee, memberAgrees.Distance, memberAgrees.Agree);
            if (memberAgrees.Agree)
            {
                _trust.Record(referee, TrainingVerdicts.Scope, VerifiedOutcome.Valid);
                Verify(info, check.Plan, subject, NodeRoundCheck.Replayed, _time.GetUtcNow());
                if (!replayerAgrees.Agree)
                {
                    ProveFault(info, check.Plan.Round, replayer, TrainingFaultKind.WrongReplay, $"its replay of {subject}'s update is at {match.Evidence}; {referee}'s replay agrees with {subject} ({memberAgrees.Evidence})", [subject, referee], check.Plan);
                }
            }
            else if (replayerAgrees.Agree)
            {
                _trust.Record(replayer, TrainingVerdicts.Scope, VerifiedOutcome.Valid);
                _trust.Record(referee, TrainingVerdicts.Scope, VerifiedOutcome.Valid);
                ProveFault(info, check.Plan.Round, subject, TrainingFaultKind.WrongUpdate, $"{match.Evidence} against {replayer}'s replay and {memberAgrees.Evidence} against {referee}'s, which agree", [replayer, referee], check.Plan);
            }
            else
            {
                Dispute(info, check, [subject, replayer, referee], $"{match.Evidence}; {memberAgrees.Evidence}; {replayerAgrees.Evidence}");
            }
        }
        catch (Exception ex) when (ex is SchedulingException or InvalidOperationException or IOException)
        {
            Log.CheckFailed(_logger, info.JobId, subject, ex);
        }
        finally
        {
            foreach (var hash in cleanup)
            {
                _blobs.Delete(hash);
            }

            Interlocked.Decrement(ref _pendingReplays);
            lock (_lock)
            {
                Checks(info.JobId).Replays--;
                Unpin(check.Plan.BaseWeights);
            }

            await ReleaseUnreferencedAsync();
        }
    }

    /// <summary>Asks the member for the state it committed to; null when it delivered, else why not (a fault).</summary>
    private async Task<string?> FetchStateAsync(ReplayCheck check, string state, CancellationToken cancellationToken)
    {
        var request = new StateRequest { JobId = check.Info.JobId, Round = check.Plan.Round, State = state };
        var (jobId, watch) = await SubmitAsync(check.Info, check.Candidate.Node, StateRequest.TaskKind, JsonSerializer.Serialize(request, EmcJson.Options), shared: true, minGflops: 0, cancellationToken);
        try
        {
            var done = await WaitAsync(watch.Done.Task, _options.StateTimeout, cancellationToken);
            if (done is null)
            {
                await _scheduler.CancelAsync(jobId, "the committed state did not arrive in time", CancellationToken.None);
                return string.Create(CultureInfo.InvariantCulture, $"it did not upload its committed inner optimizer state {state} within {_options.StateTimeout.TotalSeconds:0} s");
            }

            if (done.State != TaskState.Completed)
            {
                return $"it did not upload its committed inner optimizer state {state}: {done.Reason ?? "its task failed"}";
            }

            // A state holds at most three moments per weight (and a header per parameter); anything larger is not one.
            var limit = 64 + (check.Work.VectorLength * (17 + (InnerStateCodec.MaxMoments * sizeof(float))));
            if (_blobs.Length(state) is > 0 and var length && length > limit)
            {
                return string.Create(CultureInfo.InvariantCulture, $"its committed inner optimizer state is {length} bytes, more than a state of this model can be");
            }

            var bytes = await _blobs.ReadAsync(state, cancellationToken);
            if (bytes is null)
            {
                return $"it answered, but its committed inner optimizer state {state} was never uploaded";
            }

            try
            {
                InnerStateCodec.Decode(bytes, check.Work.VectorLength);
                return null;
            }
            catch (InvalidDataException ex)
            {
                return $"its committed inner optimizer state is malformed: {ex.Message}";
            }
        }
        finally
        {
            _watches.TryRemove(jobId, out _);
        }
    }

    /// <summary>Replays the member's work on another node (at most two tries); null when no node could.</summary>
    private async Task<(string Node, float[] Delta)?> ReplayElsewhereAsync(ReplayCheck check, HashSet<string> excluded, CancellationToken cancellationToken)
    {
        for (var attempt = 0; attempt < 2; attempt++)
        {
            var node = await PickReplayerAsync(check.Info, excluded, cancellationToken);
            if (node is null)
            {
                return null;
            }

            excluded.Add(node);
            var (jobId, watch) = await SubmitAsync(check.Info, node, ReplayWork.TaskKind, JsonSerializer.Serialize(check.Work, EmcJson.Options), shared: true, minGflops: 0, cancellationToken);
            try
            {
                var done = await WaitAsync(watch.Done.Task, _options.ReplayTimeout, cancellationToken);
                if (done is null)
                {
                    await _scheduler.CancelAsync(jobId, "the replay took too long", CancellationToken.None);
                    Log.ReplaySkipped(_logger, check.Info.JobId, check.Plan.Round, check.Candidate.Node, $"{node} did not replay it in time");
                    continue;
                }

                var report = done.State == TaskState.Completed ? Read<ReplayReport>(done.Output) : null;
                if (report is null || !BlobStore.IsHash(report.Update))
                {
                    Log.ReplaySkipped(_logger, check.Info.JobId, check.Plan.Round, check.Candidate.Node, $"{node} failed: {done.Reason ?? "no report"}");
                    continue;
                }

                var expected = Math.Max(UpdateCodec.EncodedSize(check.Work.VectorLength, UpdatePrecision.Int8), UpdateCodec.EncodedSize(check.Work.VectorLength, UpdatePrecision.Fp32));
                var bytes = _blobs.Length(report.Update) is { } size && size <= expected ? await _blobs.ReadAsync(report.Update, cancellationToken) : null;
                if (bytes is null)
                {
                    Log.ReplaySkipped(_logger, check.Info.JobId, check.Plan.Round, check.Candidate.Node, $"{node}'s replay was never uploaded, or is larger than an update");
                    if (report.Update != check.Candidate.Manifest.Update)
                    {
                        _blobs.Delete(report.Update);
                    }

                    continue;
                }

                if (report.Update != check.Candidate.Manifest.Update)
                {
                    _blobs.Delete(report.Update);
                }

                try
                {
                    return (node, UpdateCodec.Decode(bytes, check.Work.VectorLength));
                }
                catch (InvalidDataException ex)
                {
                    Log.ReplaySkipped(_logger, check.Info.JobId, check.Plan.Round, check.Candidate.Node, $"{node}'s replay is malformed: {ex.Message}");
                }
            }
            finally
            {
                _watches.TryRemove(jobId, out _);
            }
        }

        return null;
    }

    /// <summary>A fitting node for a replay: not the member, not one already asked, not banned; the one with the fewest replays in hand.</summary>
    private async Task<string?> PickReplayerAsync(JobInfo info, HashSet<string> excluded, CancellationToken cancellationToken)
    {
        var fitting = await _scheduler.FittingNodesAsync(info.Demand, cancellationToken);
        lock (_lock)
        {
            var checks = Checks(info.JobId);
            var candidates = fitting
                .Where(n => !excluded.Contains(n.NodeId) && !checks.Banned.Contains(n.NodeId) && !info.Banned.Contains(n.NodeId))
                .Select(n => n.NodeId)
                .ToList();
            if (candidates.Count == 0)
            {
                return null;
            }

            var fewest = candidates.Min(n => checks.Replaying.GetValueOrDefault(n));
            var least = candidates.Where(n => checks.Replaying.GetValueOrDefault(n) == fewest).ToList();
            var chosen = least[_random.Next(least.Count)];
            checks.Replaying[chosen] = checks.Replaying.GetValueOrDefault(chosen) + 1;
            return chosen;
        }
    }

    private static ReplayWork ReplayInput(ActiveJob job, RoundPlan plan, ScreenCandidate candidate) => new()
    {
        JobId = job.Row.Id,
        Round = plan.Round,
        Node = candidate.Node,
        Algorithm = job.Spec.Algorithm,
        Model = job.Spec.Model,
        DatasetManifest = job.ManifestHash,
        TrainSplit = "train",
        TrainExamples = job.TrainExamples,
        Weights = plan.BaseWeights,
        VectorLength = candidate.Manifest.VectorLength,
        State = candidate.Manifest.InnerState,
        Seed = job.Spec.Seed,
        Shuffle = job.Spec.Shuffle,
        BatchSize = job.Spec.BatchSize,
        MicroBatch = job.Spec.MicroBatch,
        Inner = candidate.Inner,
        TotalSteps = candidate.TotalSteps,
        Precision = candidate.Manifest.Precision,
        StreamStart = candidate.Manifest.StreamStart,
        Steps = candidate.Manifest.Steps,
        StepOffset = candidate.Share.StepOffset,
    };

    private static string FlagReason(ReplayCheck check) => check.Candidate.RejectedReason ?? "flagged at round close";

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
