using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Threading.Channels;
using Emc.Coordinator.Blobs;
using Emc.Coordinator.Ledger;
using Emc.Coordinator.Persistence;
using Emc.Coordinator.Scheduling;
using Emc.Coordinator.Verification;
using Emc.Core;
using Emc.Core.Hardware;
using Emc.Core.Identity;
using Emc.Core.Pricing;
using Emc.Core.Scheduling;
using Emc.Core.Training;
using Emc.Ledger;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Emc.Coordinator.Training;

/// <summary>
/// Drives training jobs round by round (DESIGN §3). Each round is planned for the fitting nodes
/// (each member's inner steps sized to its measured speed), submitted to the scheduler as an elastic
/// gang pinned to those nodes, and closed when every member reported, enough samples arrived or the
/// adaptive deadline passed. Members' signed manifests and pseudo-gradients are checked, combined by
/// the job's robust aggregator and applied to the master weights by the outer optimizer; then the
/// round is checkpointed (weights, momentum, stream position, totals) in one transaction, so a
/// restarted coordinator resumes from the last closed round. One loop owns all job state.
/// </summary>
public sealed partial class TrainingService : BackgroundService
{
    private readonly TrainingStore _store;
    private readonly BlobStore _blobs;
    private readonly LedgerService _ledger;
    private readonly SchedulerService _scheduler;
    private readonly TimeProvider _time;
    private readonly TrainingOptions _options;
    private readonly TrainingVerifier _verifier;
    private readonly ILogger<TrainingService> _logger;
    private readonly Channel<Func<Task>> _inbox = Channel.CreateUnbounded<Func<Task>>(new UnboundedChannelOptions { SingleReader = true });
    private readonly Dictionary<string, ActiveJob> _jobs = new(StringComparer.Ordinal);

    // Jobs that ended and whose escrow is not refunded yet: replays of their work may still pay from it.
    private readonly Dictionary<string, EndedJob> _ended = new(StringComparer.Ordinal);

    // Scheduler job id → training job id; read on the scheduler's thread to filter its changes.
    private readonly System.Collections.Concurrent.ConcurrentDictionary<string, string> _roundJobs = new(StringComparer.Ordinal);

    public TrainingService(TrainingStore store, BlobStore blobs, SchedulerService scheduler, LedgerService ledger, TimeProvider time, TrainingOptions options, TrainingVerifier verifier, ILogger<TrainingService> logger)
    {
        _ledger = ledger;
        _store = store;
        _blobs = blobs;
        _scheduler = scheduler;
        _time = time;
        _options = options;
        _verifier = verifier;
        _logger = logger;
        _scheduler.Committed += OnSchedulerCommitted;
        _verifier.Settled += OnVerdict;
        _verifier.ReplaysSettled += OnReplaysSettled;
    }

    /// <summary>Starts a job; the spec must have passed <see cref="TrainingSubmission"/>'s checks.</summary>
    internal Task<TrainingJobRow> StartAsync(TrainingJobRow row, ActiveJobFactory factory, CancellationToken cancellationToken) =>
        CallAsync(async () =>
        {
            await _store.InsertJobAsync(row, cancellationToken);
            _jobs[row.Id] = factory(row);
            return row;
        }, cancellationToken);

    /// <summary>Cancels a job; false when it is not running.</summary>
    public Task<bool> CancelAsync(string id, CancellationToken cancellationToken) =>
        CallAsync(async () =>
        {
            if (!_jobs.TryGetValue(id, out var job))
            {
                return false;
            }

            await AbandonRoundAsync(job, "the training job was cancelled", CancellationToken.None);
            await FinishAsync(job, TrainingJobState.Cancelled, "cancelled by request", CancellationToken.None);
            return true;
        }, cancellationToken);

    /// <summary>The scheduler job of the round in flight, for tests and views.</summary>
    public Task<string?> CurrentRoundJobAsync(string id, CancellationToken cancellationToken) =>
        CallAsync(() => Task.FromResult(_jobs.TryGetValue(id, out var job) ? job.Round?.SchedulerJobId : null), cancellationToken);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        await _scheduler.Restored.WaitAsync(stoppingToken);
        await RestoreAsync(stoppingToken);
        using var timer = new PeriodicTimer(_options.TickInterval, _time);
        var tick = timer.WaitForNextTickAsync(stoppingToken).AsTask();
        var reader = _inbox.Reader;
        try
        {
            while (!stoppingToken.IsCancellationRequested)
            {
                var read = reader.WaitToReadAsync(stoppingToken).AsTask();
                var done = await Task.WhenAny(read, tick);
                while (reader.TryRead(out var work))
                {
                    await work();
                }

                if (done == tick)
                {
                    if (!await tick)
                    {
                        break;
                    }

                    tick = timer.WaitForNextTickAsync(stoppingToken).AsTask();
                }

                foreach (var job in _jobs.Values.ToList())
                {
                    try
                    {
                        await StepAsync(job, stoppingToken);
                    }
                    catch (Exception ex) when (ex is not OperationCanceledException && ex is not OutOfMemoryException)
                    {
                        Log.JobStepFailed(_logger, job.Row.Id, ex);
                        job.NextPlanAt = _time.GetUtcNow() + TimeSpan.FromSeconds(2);
                    }
                }

                var now = _time.GetUtcNow();
                foreach (var (id, _) in _ended.Where(e => now >= e.Value.RefundBy).ToList())
                {
                    await SettleEndedAsync(id, stoppingToken);
                }
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }
    }

    public override void Dispose()
    {
        _scheduler.Committed -= OnSchedulerCommitted;
        _verifier.Settled -= OnVerdict;
        _verifier.ReplaysSettled -= OnReplaysSettled;
        base.Dispose();
    }

    private async Task<T> CallAsync<T>(Func<Task<T>> work, CancellationToken cancellationToken)
    {
        var result = new TaskCompletionSource<T>(TaskCreationOptions.RunContinuationsAsynchronously);
        await _inbox.Writer.WriteAsync(
            async () =>
            {
                try
                {
                    result.TrySetResult(await work());
                }
                catch (Exception ex)
                {
                    result.TrySetException(ex);
                }
            },
            cancellationToken);
        return await result.Task.WaitAsync(cancellationToken);
    }

    private void OnSchedulerCommitted(SchedulerChanges changes)
    {
        List<TaskRecord>? mine = null;
        foreach (var task in changes.Tasks)
        {
            if (_roundJobs.TryGetValue(task.JobId, out _) && task.State is TaskState.Running or TaskState.Completed or TaskState.Failed or TaskState.Cancelled)
            {
                (mine ??= []).Add(task);
            }
        }

        if (mine is not null)
        {
            _inbox.Writer.TryWrite(() => OnTasksAsync(mine));
        }
    }

    private async Task RestoreAsync(CancellationToken cancellationToken)
    {
        await _ledger.Opened.WaitAsync(cancellationToken);
        await RefundEndedJobsAsync(cancellationToken);
        foreach (var row in await _store.ListUnfinishedJobsAsync(cancellationToken))
        {
            try
            {
                var dataset = await _store.GetDatasetAsync(TrainingJson.ReadSpec(row.SpecJson).Dataset, cancellationToken);
                if (dataset is null)
                {
                    row.State = EmcJson.EnumText(TrainingJobState.Failed);
                    row.Reason = "its dataset was removed";
                    await _store.SaveJobAsync(row, null, cancellationToken);
                    continue;
                }

                var job = TrainingSubmission.Activate(row, dataset);
                if (row.RoundJobId is { } stale)
                {
                    // The round in flight when the coordinator stopped is redone from the checkpoint.
                    await _scheduler.CancelAsync(stale, "the coordinator restarted; the round is planned again", cancellationToken);
                    row.RoundJobId = null;
                    await _store.SaveJobAsync(row, null, cancellationToken);
                }

                _jobs[row.Id] = job;
                Log.JobResumed(_logger, row.Id, row.Round);
                if (job.Spec.Budget is not null && await _store.LastRoundAsync(row.Id, cancellationToken) is { } last)
                {
                    // The last checkpointed round may have closed just before the coordinator stopped, before
                    // its members were paid: paying it again changes nothing if they were.
                    await PayRoundAsync(job, TrainingJson.ReadRound(last.SummaryJson), cancellationToken);
                }
            }
            catch (Exception ex) when (ex is JsonException or InvalidDataException)
            {
                Log.JobStepFailed(_logger, row.Id, ex);
            }
        }
    }

    private async Task StepAsync(ActiveJob job, CancellationToken cancellationToken)
    {
        var now = _time.GetUtcNow();
        if (job.Round is { } round)
        {
            if (round.StartedAt is null && now - round.SubmittedAt > _options.RoundStartTimeout)
            {
                await AbandonRoundAsync(job, $"its nodes did not all start within {_options.RoundStartTimeout.TotalSeconds:0} s", cancellationToken);
                job.NextPlanAt = now;
                return;
            }

            var planned = round.Work.Members.Count;
            var allIn = round.Outcomes.Count >= planned;
            var enough = job.Spec.CloseFraction < 1 && round.PlannedSamples > 0 && round.ReceivedSamples >= job.Spec.CloseFraction * round.PlannedSamples;
            // The deadline cuts off stragglers; when nobody has reported by then the estimate was
            // wrong for this round (a loaded machine, a bigger evaluation), so wait up to three times as long.
            var usable = round.Outcomes.Values.Any(o => o.Rejected is null && o.Manifest is not null);
            var late = round.Deadline is { } deadline && round.StartedAt is { } started
                && (usable ? now >= deadline : now >= started + (3 * (deadline - started)));
            if (allIn || enough || late)
            {
                await CloseRoundAsync(job, round, late && !allIn ? "missed the round's deadline" : "the round closed without it", cancellationToken);
            }

            return;
        }

        if (now < job.NextPlanAt)
        {
            return;
        }

        await PlanRoundAsync(job, final: job.TrainingDone || await BudgetSpentAsync(job, cancellationToken), cancellationToken);
    }

    private async Task PlanRoundAsync(ActiveJob job, bool final, CancellationToken cancellationToken)
    {
        var spec = job.Spec;
        var demand = new ResourceDemand { Device = spec.Device, DeviceMemoryBytes = spec.DeviceMemoryBytes };
        var fitting = await _scheduler.FittingNodesAsync(demand, cancellationToken);
        var admission = _verifier.Admit(job, fitting);
        if (admission.WaitReason is { } checking)
        {
            await WaitForChecksAsync(job, checking, cancellationToken);
            return;
        }

        fitting = admission.Nodes;
        var now = _time.GetUtcNow();
        var staked = "";
        if (spec.Budget is not null)
        {
            // Paid work goes only to nodes with the minimum stake: a proven fault must have something to slash.
            var eligible = new List<FittingNode>(fitting.Count);
            foreach (var node in fitting)
            {
                if (EthAddress.TryParse(node.NodeId, out var address) && (await _ledger.StakeOfAsync(address.Value, cancellationToken)).Eligible)
                {
                    eligible.Add(node);
                }
            }

            staked = eligible.Count < fitting.Count ? $", {fitting.Count - eligible.Count} without the stake paid work needs" : "";
            fitting = eligible;
        }

        foreach (var node in fitting)
        {
            job.NodeClasses[node.NodeId.ToLowerInvariant()] = PriceTable.BenchmarkClass(spec.Device == DeviceKind.Cuda ? "cuda" : "cpu", node.Gflops);
        }

        if (fitting.Count < spec.Nodes.Min)
        {
            var reason = $"waiting for {spec.Nodes.Min} fitting node{(spec.Nodes.Min == 1 ? "" : "s")} ({demand}); {fitting.Count} connected{staked}";
            if (job.Row.Reason != reason || job.Row.State != EmcJson.EnumText(TrainingJobState.Waiting))
            {
                job.Row.State = EmcJson.EnumText(TrainingJobState.Waiting);
                job.Row.Reason = reason;
                await SaveAsync(job, null, cancellationToken);
            }

            job.NextPlanAt = now + TimeSpan.FromSeconds(1);
            return;
        }

        // Fastest first (measured speed where known, else benchmark), so a capped round keeps the best.
        var speeds = fitting.ToDictionary(n => n.NodeId, n => job.Progress.Nodes.TryGetValue(n.NodeId, out var c) && c.SamplesPerSecond > 0 ? c.SamplesPerSecond : (double?)null, StringComparer.Ordinal);
        var members = fitting
            .OrderByDescending(n => speeds[n.NodeId] ?? 0)
            .ThenByDescending(n => n.Gflops)
            .ThenBy(n => n.NodeId, StringComparer.Ordinal)
            .Take(spec.Nodes.Max)
            .ToList();
        var known = members.Select(m => speeds[m.NodeId]).OfType<double>().Order().ToList();
        var median = known.Count > 0 ? known[known.Count / 2] : 0;

        var number = job.Row.Round + 1;
        var baseSteps = final ? 0 : spec.InnerSteps ?? 1;
        var evaluate = final || (number - 1) % spec.Evaluation.Every == 0;
        var evalCount = final || spec.Evaluation.MaxExamples == 0 ? job.EvalCount : Math.Min(job.EvalCount, spec.Evaluation.MaxExamples);
        if (!evaluate)
        {
            evalCount = 0;
        }

        var work = new Dictionary<string, MemberWork>(StringComparer.Ordinal);
        var position = job.Row.StreamPosition;
        long planned = 0;
        for (var i = 0; i < members.Count; i++)
        {
            var node = members[i].NodeId;
            var steps = baseSteps;
            if (spec.Algorithm == TrainingAlgorithm.Diloco && baseSteps > 0 && median > 0 && speeds[node] is { } speed)
            {
                var scale = Math.Clamp(speed / median, 1 / _options.MaxInnerStepScale, _options.MaxInnerStepScale);
                steps = Math.Max(1, (int)Math.Round(baseSteps * scale));
            }

            var evalStart = evalCount * i / members.Count;
            var evalEnd = evalCount * (i + 1) / members.Count;
            work[node] = new MemberWork
            {
                Steps = steps,
                StreamStart = position,
                StepOffset = job.Row.StepCount,
                EvalStart = evalStart,
                EvalCount = (int)(evalEnd - evalStart),
                // One member uploads the W(0) it built (the others report its hash, which must agree);
                // after a first round that produced nothing, all of them do.
                UploadInitialWeights = job.Row.WeightsHash is null && (i == 0 || job.Progress.EmptyRounds > 0),
            };
            position += (long)steps * spec.BatchSize;
            planned += (long)steps * spec.BatchSize;
        }

        var deadline = DeadlineFor(job, final);
        var roundWork = new RoundWork
        {
            JobId = job.Row.Id,
            Round = number,
            Algorithm = spec.Algorithm,
            Model = spec.Model,
            DatasetManifest = job.ManifestHash,
            TrainSplit = "train",
            TrainExamples = job.TrainExamples,
            EvalSplit = evalCount > 0 ? job.EvalSplit : null,
            EvalFirst = job.EvalFirst,
            Weights = job.Row.WeightsHash,
            VectorLength = job.Row.VectorLength,
            Seed = spec.Seed,
            Shuffle = spec.Shuffle,
            BatchSize = spec.BatchSize,
            MicroBatch = spec.MicroBatch,
            Inner = spec.Inner,
            TotalSteps = TotalSteps(job),
            Precision = spec.Precision,
            TimeBudgetSeconds = Math.Max(1, deadline.TotalSeconds * 0.8),
            Members = work,
        };
        var input = JsonSerializer.Serialize(roundWork, EmcJson.Options);
        if (input.Length > JobSpecValidator.MaxInputChars)
        {
            await FinishAsync(job, TrainingJobState.Failed, $"a round's work description is {input.Length} characters, over the {JobSpecValidator.MaxInputChars} allowed; use fewer nodes", cancellationToken);
            return;
        }

        var cacheKeys = new List<string> { job.ManifestHash };
        if (job.Row.WeightsHash is { } weights)
        {
            cacheKeys.Add(weights);
        }

        var view = await _scheduler.SubmitAsync(
            new JobSpec
            {
                Name = $"{job.Row.Id} round {number.ToString(CultureInfo.InvariantCulture)}{(final ? " (final evaluation)" : "")}",
                Account = spec.Account,
                Demand = demand with { Nodes = members.Select(m => m.NodeId).ToList(), CacheKeys = cacheKeys },
                Gang = true,
                Elastic = true,
                MaxRetries = 0,
                LeaseDuration = _options.MemberLease,
                GangTimeout = _options.RoundStartTimeout,
                Tasks = members.Select(_ => new TaskSpec { Kind = RoundWork.TaskKind, Input = input }).ToList(),
            },
            cancellationToken);

        job.Round = new RoundState
        {
            Number = number,
            FinalEvaluation = final,
            SchedulerJobId = view.Id,
            Work = roundWork,
            SubmittedAt = now,
            PlannedSamples = planned,
            NextStreamPosition = position,
        };
        _roundJobs[view.Id] = job.Row.Id;
        job.Row.RoundJobId = view.Id;
        job.Row.State = EmcJson.EnumText(TrainingJobState.Running);
        job.Row.Reason = null;
        await SaveAsync(job, null, cancellationToken);
        Log.RoundPlanned(_logger, job.Row.Id, number, members.Count, planned, view.Id);
    }

    private static TimeSpan DeadlineFor(ActiveJob job, bool final)
    {
        var initial = TimeSpan.FromSeconds(job.Spec.InitialDeadlineSeconds);
        if (final)
        {
            return initial;
        }

        var recent = job.Progress.Nodes.Values.SelectMany(c => c.RecentSeconds).ToList();
        return AdaptiveDeadline.Next(recent, new AdaptiveDeadlineOptions { Initial = initial });
    }

    private static long TotalSteps(ActiveJob job)
    {
        var perRound = (long)(job.Spec.InnerSteps ?? 1);
        if (job.Spec.Rounds is { } rounds)
        {
            return rounds * perRound;
        }

        if (job.TargetSamples is { } target)
        {
            var nodes = Math.Max(1, job.Spec.Nodes.Min);
            return Math.Max(perRound, target / Math.Max(1, (long)job.Spec.BatchSize * nodes));
        }

        return perRound;
    }

    private async Task OnTasksAsync(List<TaskRecord> tasks)
    {
        foreach (var task in tasks)
        {
            if (!_roundJobs.TryGetValue(task.JobId, out var jobId) || !_jobs.TryGetValue(jobId, out var job) || job.Round is not { } round || round.SchedulerJobId != task.JobId)
            {
                continue;
            }

            var node = task.LeaseNodes.Count > 0
                ? task.LeaseNodes[Math.Clamp((task.WinningAttempt ?? task.Attempt) - 1, 0, task.LeaseNodes.Count - 1)]
                : null;
            if (node is null)
            {
                continue;
            }

            var now = _time.GetUtcNow();
            if (task.State == TaskState.Running)
            {
                if (round.StartedAt is null)
                {
                    round.StartedAt = now;
                    round.Deadline = now + DeadlineFor(job, round.FinalEvaluation);
                }

                continue;
            }

            if (round.Outcomes.ContainsKey(node))
            {
                continue;
            }

            var seconds = (now - (round.StartedAt ?? round.SubmittedAt)).TotalSeconds;
            round.Outcomes[node] = task.State == TaskState.Completed
                ? await ReadOutcomeAsync(job, round, node, task.Output, seconds)
                : new MemberOutcome { Rejected = task.Reason ?? "its task ended without a result", Seconds = seconds };
        }
    }

    private async Task<MemberOutcome> ReadOutcomeAsync(ActiveJob job, RoundState round, string node, string? output, double seconds)
    {
        string? Problem(RoundManifest m, MemberWork planned)
        {
            if (m.JobId != job.Row.Id || m.Round != round.Number)
            {
                return "its manifest names another job or round";
            }

            if (!string.Equals(m.Node, node, StringComparison.OrdinalIgnoreCase))
            {
                return "its manifest names another node";
            }

            if (job.Row.WeightsHash is { } weights && m.BaseWeights != weights)
            {
                return "it started from other weights than the round's";
            }

            if (job.Row.VectorLength > 0 && m.VectorLength != job.Row.VectorLength)
            {
                return $"its weights have {m.VectorLength} values, not {job.Row.VectorLength}";
            }

            if (m.Steps < 0 || m.Steps > planned.Steps || m.Samples != (long)m.Steps * job.Spec.BatchSize || m.StreamStart != planned.StreamStart)
            {
                return "its steps or samples do not match its share of the round";
            }

            if (m.Losses.Count != m.Steps || m.Losses.Any(l => !float.IsFinite(l)) || !double.IsFinite(m.TrainSeconds) || m.TrainSeconds < 0)
            {
                return "its loss trace is malformed";
            }

            if (m.Eval is { } eval && (eval.Count < 0 || eval.Correct < 0 || eval.Correct > eval.Count || !double.IsFinite(eval.LossSum) || eval.LossSum < 0
                || eval.Count > (job.IsText ? (long)planned.EvalCount * (job.Spec.Model.Context ?? 128) : planned.EvalCount)))
            {
                return "its evaluation counts are impossible";
            }

            if (m.Steps > 0 && m.Update is null)
            {
                return "it trained but sent no update";
            }

            if (m.InnerState is { } state && !BlobStore.IsHash(state))
            {
                return "its inner optimizer state commitment is not a sha256";
            }

            return null;
        }

        RoundReport? report;
        RoundManifest? manifest;
        try
        {
            report = output is null ? null : JsonSerializer.Deserialize<RoundReport>(output, EmcJson.Options);
            manifest = report is null ? null : JsonSerializer.Deserialize<RoundManifest>(report.Manifest, EmcJson.Options);
        }
        catch (JsonException)
        {
            return new MemberOutcome { Rejected = "its result is not a round report", Seconds = seconds };
        }

        if (report is null || manifest is null)
        {
            return new MemberOutcome { Rejected = "its result is not a round report", Seconds = seconds };
        }

        if (!VerifySignature(report, node))
        {
            return new MemberOutcome { Rejected = "its manifest is not signed by the node", Seconds = seconds };
        }

        if (!round.Work.Members.TryGetValue(node, out var share) && !round.Work.Members.TryGetValue(node.ToLowerInvariant(), out share))
        {
            return new MemberOutcome { Rejected = "it was not planned into the round", Seconds = seconds };
        }

        if (Problem(manifest, share) is { } problem)
        {
            return new MemberOutcome { Manifest = null, Rejected = problem, Seconds = seconds };
        }

        float[]? delta = null;
        if (manifest.Update is { } update)
        {
            var bytes = BlobStore.IsHash(update) ? await _blobs.ReadAsync(update, CancellationToken.None) : null;
            if (bytes is null)
            {
                return new MemberOutcome { Manifest = manifest, Rejected = "its update blob was never uploaded", Seconds = seconds };
            }

            try
            {
                delta = UpdateCodec.Decode(bytes, manifest.VectorLength);
            }
            catch (InvalidDataException ex)
            {
                return new MemberOutcome { Manifest = manifest, Rejected = $"its update is malformed: {ex.Message}", Seconds = seconds };
            }
            finally
            {
                _blobs.Delete(update);
            }
        }

        return new MemberOutcome { Manifest = manifest, Delta = delta, Seconds = seconds };
    }

    private static bool VerifySignature(RoundReport report, string node)
    {
        try
        {
            var signature = Convert.FromHexString(report.Signature.StartsWith("0x", StringComparison.Ordinal) ? report.Signature[2..] : report.Signature);
            var digest = Signatures.PersonalMessageDigest(Encoding.UTF8.GetBytes(report.Manifest));
            return Signatures.TryRecoverAddress(digest, signature, out var address, out _)
                && string.Equals(address.ToString(), node, StringComparison.OrdinalIgnoreCase);
        }
        catch (FormatException)
        {
            return false;
        }
    }

    private async Task CloseRoundAsync(ActiveJob job, RoundState round, string missingReason, CancellationToken cancellationToken)
    {
        await _scheduler.CancelAsync(round.SchedulerJobId, "the training round closed", cancellationToken);
        _roundJobs.TryRemove(round.SchedulerJobId, out _);
        job.Round = null;
        job.Row.RoundJobId = null;
        var now = _time.GetUtcNow();
        var leftOut = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var node in round.Work.Members.Keys)
        {
            if (!round.Outcomes.ContainsKey(node))
            {
                round.Outcomes[node] = new MemberOutcome { Rejected = missingReason, Seconds = (now - (round.StartedAt ?? round.SubmittedAt)).TotalSeconds };
            }
        }

        // The first round's members built the initial weights themselves: the majority's build is W(0).
        if (job.Row.WeightsHash is null)
        {
            if (!await AdoptInitialWeightsAsync(job, round))
            {
                await EmptyRoundAsync(job, round, "no member's initial weights could be adopted", cancellationToken);
                return;
            }
        }

        await EnsureMasterAsync(job, cancellationToken);
        var master = job.Master!;
        var candidates = round.Outcomes
            .Where(pair => pair.Value.Rejected is null && pair.Value.Manifest is { Steps: > 0 } && pair.Value.Delta is not null)
            .Select(pair => (Node: pair.Key, Outcome: pair.Value))
            .ToList();
        foreach (var (node, outcome) in candidates.Where(c => c.Outcome.Delta!.Length != master.Length))
        {
            outcome.Rejected = "its update has the wrong length";
        }

        candidates.RemoveAll(c => c.Outcome.Rejected is not null);
        var screened = candidates.ToList();
        if (candidates.Count > 0)
        {
            var verdicts = UpdateChecks.Check(candidates.Select(c => new NodeUpdate(c.Node, c.Outcome.Delta!, c.Outcome.Manifest!.Samples)).ToList());
            foreach (var verdict in verdicts.Where(v => !v.Accepted))
            {
                round.Outcomes[verdict.NodeId].Rejected = verdict.Reason ?? "it failed the update checks";
            }

            candidates.RemoveAll(c => c.Outcome.Rejected is not null);
        }

        // Verification (copy detection, held-out scoring, replays): flagged updates are left out at once.
        await ScreenAsync(job, round, screened, master, cancellationToken);
        candidates.RemoveAll(c => c.Outcome.Rejected is not null);
        var summary = Summarize(job, round, candidates.Select(c => c.Outcome).ToList(), now, leftOut) with { Aggregated = [.. candidates.Select(c => c.Node)] };
        UpdateContributions(job, round);
        if (round.FinalEvaluation)
        {
            job.Progress.Final = summary;
            await CompleteAsync(job, summary, cancellationToken);
            return;
        }

        if (candidates.Count == 0)
        {
            await EmptyRoundAsync(job, round, "no member's update was accepted", cancellationToken);
            _verifier.RoundCommitted(job, round.Number, aggregated: false);
            return;
        }

        var aggregate = Aggregator.Aggregate(
            candidates.Select(c => (c.Outcome.Delta!, (double)c.Outcome.Manifest!.Samples)).ToList(),
            job.Spec.Aggregator,
            job.Spec.TrimFraction);
        var before = (float[])master.Clone();
        job.Outer!.Step(master, aggregate);
        if (master.Any(v => !float.IsFinite(v)))
        {
            await FinishAsync(job, TrainingJobState.Failed, $"the weights diverged in round {round.Number} (non-finite values); lower the learning rates", cancellationToken);
            _verifier.RoundCommitted(job, round.Number, aggregated: false);
            return;
        }

        await _verifier.RecordOuterStepAsync(job, before, master, cancellationToken);
        var previousWeights = job.Row.WeightsHash;
        var previousMomentum = job.Row.MomentumHash;
        job.Row.WeightsHash = await _blobs.PutAsync(WeightsCodec.Encode(master), cancellationToken);
        job.Row.MomentumHash = await _blobs.PutAsync(WeightsCodec.Encode(job.Outer.MomentumBuffer), cancellationToken);
        job.Row.Round = round.Number;
        job.Row.StreamPosition = round.NextStreamPosition;
        job.Row.StepCount += job.Spec.InnerSteps ?? 1;
        job.Progress.Samples += summary.Samples;
        job.Progress.BytesReceived += summary.BytesReceived;
        job.Progress.EmptyRounds = 0;
        job.NextPlanAt = now;
        await SaveAsync(job, new TrainingRoundRow { JobId = job.Row.Id, Round = round.Number, SummaryJson = TrainingJson.Write(summary), CreatedAtUnixMs = now.ToUnixTimeMilliseconds() }, cancellationToken);
        await PayRoundAsync(job, summary, cancellationToken);
        _verifier.RoundCommitted(job, round.Number, aggregated: true);
        await DeleteUnreferencedAsync([previousWeights, previousMomentum], cancellationToken);
        Log.RoundClosed(_logger, job.Row.Id, round.Number, candidates.Count, round.Work.Members.Count, summary.Samples, summary.TrainLoss ?? double.NaN, summary.EvalAccuracy ?? double.NaN);
    }

    private async Task<bool> AdoptInitialWeightsAsync(ActiveJob job, RoundState round)
    {
        var votes = round.Outcomes.Values
            .Where(o => o.Rejected is null && o.Manifest is not null)
            .GroupBy(o => (o.Manifest!.BaseWeights, o.Manifest.VectorLength))
            .OrderByDescending(g => g.Count())
            .ToList();
        foreach (var group in votes)
        {
            var (hash, length) = group.Key;
            var bytes = await _blobs.ReadAsync(hash, CancellationToken.None);
            if (bytes is null || length <= 0)
            {
                continue;
            }

            try
            {
                job.Master = WeightsCodec.Decode(bytes, length);
            }
            catch (InvalidDataException)
            {
                continue;
            }

            job.Outer = NewOuter(job, momentum: null);
            job.Row.WeightsHash = hash;
            job.Row.VectorLength = length;
            foreach (var other in round.Outcomes.Values.Where(o => o.Rejected is null && o.Manifest is not null && o.Manifest.BaseWeights != hash))
            {
                other.Rejected = "it built different initial weights than the other members";
            }

            return true;
        }

        return false;
    }

    private async Task EnsureMasterAsync(ActiveJob job, CancellationToken cancellationToken)
    {
        if (job.Master is not null && job.Outer is not null)
        {
            return;
        }

        var weights = await _blobs.ReadAsync(job.Row.WeightsHash!, cancellationToken)
            ?? throw new InvalidDataException($"the checkpoint's weights blob {job.Row.WeightsHash} is missing");
        job.Master = WeightsCodec.Decode(weights, job.Row.VectorLength);
        float[]? momentum = null;
        if (job.Row.MomentumHash is { } momentumHash && await _blobs.ReadAsync(momentumHash, cancellationToken) is { } momentumBytes)
        {
            momentum = WeightsCodec.Decode(momentumBytes, job.Row.VectorLength);
        }

        job.Outer = NewOuter(job, momentum);
    }

    private static OuterOptimizer NewOuter(ActiveJob job, float[]? momentum)
    {
        var options = new OuterOptimizerOptions
        {
            LearningRate = job.Spec.Outer.LearningRate ?? 0.7,
            Momentum = job.Spec.Outer.Momentum ?? 0.9,
            Nesterov = job.Spec.Outer.Nesterov ?? true,
        };
        return momentum is null ? new OuterOptimizer(options, job.Master!.Length) : new OuterOptimizer(options, momentum);
    }

    private static RoundSummary Summarize(ActiveJob job, RoundState round, List<MemberOutcome> accepted, DateTimeOffset now, Dictionary<string, string> leftOut)
    {
        foreach (var (node, outcome) in round.Outcomes)
        {
            if (outcome.Rejected is { } reason)
            {
                leftOut[node] = reason;
            }
        }

        var samples = accepted.Sum(o => o.Manifest!.Samples);
        double? trainLoss = samples > 0
            ? accepted.Sum(o => o.Manifest!.Losses.Count == 0 ? 0 : o.Manifest.Losses.Average(l => (double)l) * o.Manifest.Samples) / samples
            : null;

        // Evaluation comes from every member whose report passed the checks (final rounds have no updates).
        var evals = round.Outcomes.Values.Where(o => o.Rejected is null && o.Manifest?.Eval is { Count: > 0 }).Select(o => o.Manifest!.Eval!).ToList();
        var evalCount = evals.Sum(e => e.Count);
        double? evalLoss = evalCount > 0 ? evals.Sum(e => e.LossSum) / evalCount : null;
        double? evalAccuracy = evalCount > 0 ? (double)evals.Sum(e => e.Correct) / evalCount : null;
        var seconds = (now - (round.StartedAt ?? round.SubmittedAt)).TotalSeconds;
        return new RoundSummary
        {
            Round = round.Number,
            Nodes = round.Work.Members.Count,
            Accepted = accepted.Count,
            Samples = samples,
            TrainLoss = trainLoss,
            EvalLoss = evalLoss,
            EvalAccuracy = evalAccuracy,
            EvalPerplexity = job.IsText && evalLoss is { } loss ? Math.Exp(loss) : null,
            EvalExamples = evalCount,
            Seconds = seconds,
            SamplesPerSecond = seconds > 0 ? samples / seconds : 0,
            BytesReceived = accepted.Sum(o => o.Manifest!.UpdateBytes),
            LeftOut = leftOut,
            AcceptedSamples = accepted.Where(o => o.Manifest!.Samples > 0).ToDictionary(o => o.Manifest!.Node.ToLowerInvariant(), o => o.Manifest!.Samples, StringComparer.Ordinal),
            AcceptedClasses = accepted.Where(o => o.Manifest!.Samples > 0 && job.NodeClasses.ContainsKey(o.Manifest!.Node.ToLowerInvariant()))
                .ToDictionary(o => o.Manifest!.Node.ToLowerInvariant(), o => job.NodeClasses[o.Manifest!.Node.ToLowerInvariant()], StringComparer.Ordinal),
            At = now,
        };
    }

    private void UpdateContributions(ActiveJob job, RoundState round)
    {
        foreach (var (node, outcome) in round.Outcomes)
        {
            if (!job.Progress.Nodes.TryGetValue(node, out var contribution))
            {
                contribution = new NodeContribution();
                job.Progress.Nodes[node] = contribution;
            }

            contribution.Rounds++;
            if (outcome.Manifest is { } manifest && outcome.Rejected is null)
            {
                contribution.Accepted++;
                contribution.Samples += manifest.Samples;
                contribution.Seconds += manifest.TrainSeconds;
                contribution.BytesSent += manifest.UpdateBytes;
                if (manifest.Samples > 0 && manifest.TrainSeconds > 0)
                {
                    var speed = manifest.Samples / manifest.TrainSeconds;
                    contribution.SamplesPerSecond = contribution.SamplesPerSecond > 0 ? (0.5 * contribution.SamplesPerSecond) + (0.5 * speed) : speed;
                }

                if (!round.FinalEvaluation)
                {
                    contribution.RecentSeconds.Add(Math.Round(outcome.Seconds, 3));
                    if (contribution.RecentSeconds.Count > _options.DeadlineHistory)
                    {
                        contribution.RecentSeconds.RemoveAt(0);
                    }
                }
            }
            else if (outcome.Manifest is null && outcome.Delta is null && outcome.Rejected is not null && !outcome.Rejected.StartsWith("its", StringComparison.Ordinal) && !outcome.Rejected.StartsWith("it ", StringComparison.Ordinal))
            {
                contribution.Dropped++;
            }
            else
            {
                contribution.Rejected++;
            }
        }
    }

    private async Task EmptyRoundAsync(ActiveJob job, RoundState round, string reason, CancellationToken cancellationToken)
    {
        var why = round.Outcomes.Where(o => o.Value.Rejected is not null).Select(o => $"{o.Key}: {o.Value.Rejected}").Distinct().Take(4).ToList();
        if (why.Count > 0)
        {
            reason = $"{reason} ({string.Join("; ", why)})";
        }

        job.Progress.EmptyRounds++;
        job.Row.StreamPosition = round.NextStreamPosition;
        if (job.Progress.EmptyRounds >= _options.MaxEmptyRounds)
        {
            await FinishAsync(job, TrainingJobState.Failed, $"{job.Progress.EmptyRounds} rounds in a row produced nothing usable; last: {reason}", cancellationToken);
            return;
        }

        job.Row.Reason = $"round {round.Number} is planned again: {reason}";
        job.NextPlanAt = _time.GetUtcNow() + TimeSpan.FromSeconds(1);
        await SaveAsync(job, null, cancellationToken);
        Log.RoundEmpty(_logger, job.Row.Id, round.Number, reason);
    }

    private async Task AbandonRoundAsync(ActiveJob job, string reason, CancellationToken cancellationToken)
    {
        if (job.Round is not { } round)
        {
            return;
        }

        await _scheduler.CancelAsync(round.SchedulerJobId, reason, cancellationToken);
        _roundJobs.TryRemove(round.SchedulerJobId, out _);
        foreach (var outcome in round.Outcomes.Values)
        {
            if (outcome.Manifest?.Update is { } update)
            {
                _blobs.Delete(update);
            }
        }

        job.Round = null;
        job.Row.RoundJobId = null;
        job.Row.Reason = $"round {round.Number} is planned again: {reason}";
        await SaveAsync(job, null, cancellationToken);
    }

    private async Task CompleteAsync(ActiveJob job, RoundSummary final, CancellationToken cancellationToken)
    {
        var now = _time.GetUtcNow();
        var name = job.Spec.Output ?? (ModelNames.IsValid(job.Spec.Name) ? job.Spec.Name : job.Row.Id);
        var split = job.Manifest.Splits["train"];
        var descriptor = new ModelDescriptor
        {
            Name = name,
            Format = job.Spec.Model.Script is null ? "emc-zoo" : "torchscript",
            Model = job.Spec.Model,
            SampleShape = split.SampleShape,
            ElementType = split.ElementType,
            Classes = split.Classes,
            IsText = job.IsText,
            Weights = job.Row.WeightsHash!,
            VectorLength = job.Row.VectorLength,
            Bytes = _blobs.Length(job.Row.WeightsHash!) ?? 0,
            SourceJob = job.Row.Id,
            Metrics = final,
            CreatedAt = now,
        };
        job.Row.State = EmcJson.EnumText(TrainingJobState.Completed);
        job.Row.Reason = null;
        job.Row.ProgressJson = TrainingJson.Write(job.Progress);
        job.Row.UpdatedAtUnixMs = now.ToUnixTimeMilliseconds();
        job.Row.FinishedAtUnixMs = now.ToUnixTimeMilliseconds();
        var row = new ModelRow
        {
            Name = name,
            Format = descriptor.Format,
            DescriptorJson = "{}",
            WeightsHash = descriptor.Weights,
            Bytes = descriptor.Bytes,
            SourceJob = job.Row.Id,
            CreatedAtUnixMs = now.ToUnixTimeMilliseconds(),
            Owner = job.Row.Account,
        };
        row.DescriptorJson = TrainingJson.Write(descriptor);
        var version = await _store.RegisterModelAsync(row, job.Row, cancellationToken);
        if (version is null && name != job.Row.Id)
        {
            // Another account took the name while the job ran (submission checked it was free): the
            // model is kept under the job's id rather than lost.
            Log.OutputRenamed(_logger, job.Row.Id, name);
            name = job.Row.Id;
            row.Name = name;
            row.DescriptorJson = TrainingJson.Write(descriptor with { Name = name });
            version = await _store.RegisterModelAsync(row, job.Row, cancellationToken);
        }

        if (version is null)
        {
            await FinishAsync(job, TrainingJobState.Failed, $"the model names '{descriptor.Name}' and '{job.Row.Id}' are taken by other accounts; the trained weights could not be registered", cancellationToken);
            return;
        }

        Ended(job);
        Log.JobCompleted(_logger, job.Row.Id, name, version.Value, final.EvalAccuracy ?? double.NaN, final.EvalLoss ?? double.NaN);
    }

    /// <summary>
    /// Pays a node-round that a replay verified but that was left out of its round's aggregate (its update
    /// was flagged at round close): the work was done and checked, so it is paid like an accepted one. A job
    /// that ended still pays until its escrow is refunded, which waits for its replays (<see cref="TrainingOptions.RefundWait"/>).
    /// Returns false when the job's escrow was refunded (or the job is unknown: a restart refunds every ended
    /// job's escrow and drops the replays in flight), or it has no budget.
    /// </summary>
    /// <remarks>
    /// The payment is queued on the service's loop before the returned task is first awaited: a verdict's
    /// handler that calls this before its first await of anything else is paid ahead of the refund that the
    /// verifier's <see cref="TrainingVerifier.ReplaysSettled"/> (raised after that verdict) leads to.
    /// </remarks>
    public Task<bool> PayClearedAsync(string jobId, long round, string node, long samples, CancellationToken cancellationToken) =>
        CallAsync(
            async () =>
            {
                var job = _jobs.GetValueOrDefault(jobId) ?? _ended.GetValueOrDefault(jobId)?.Job;
                if (job is null || job.Spec.Budget is null || samples <= 0)
                {
                    return false;
                }

                var key = node.ToLowerInvariant();
                await PayRoundAsync(
                    job,
                    new RoundSummary
                    {
                        Round = round,
                        AcceptedSamples = new Dictionary<string, long>(StringComparer.Ordinal) { [key] = samples },
                        AcceptedClasses = job.NodeClasses.TryGetValue(key, out var cls)
                            ? new Dictionary<string, string>(StringComparer.Ordinal) { [key] = cls }
                            : new Dictionary<string, string>(StringComparer.Ordinal),
                    },
                    cancellationToken);
                return true;
            },
            cancellationToken);

    /// <summary>
    /// Pays each member whose update went into the round, from the job's escrow into the audit window
    /// (<c>held:node</c>): samples × the model's training FLOPs, at the price of the node's benchmark class,
    /// less the protocol fee. The keys name the job, round and node, so paying a round again (after a
    /// restart) changes nothing. A job without a budget pays nothing.
    /// </summary>
    private async Task PayRoundAsync(ActiveJob job, RoundSummary summary, CancellationToken cancellationToken)
    {
        if (job.Spec.Budget is null || summary.AcceptedSamples.Count == 0)
        {
            return;
        }

        var prices = _ledger.Prices;
        var flops = job.FlopsPerSample ??= FlopsPerSample(job);
        var escrow = EscrowId.Job(job.Row.Id);
        long charged = 0;
        foreach (var (node, samples) in summary.AcceptedSamples.OrderBy(p => p.Key, StringComparer.Ordinal))
        {
            var charge = prices.TrainingCharge(samples, flops, summary.AcceptedClasses.GetValueOrDefault(node));
            if (charge <= 0 || !EthAddress.TryParse(node, out var address))
            {
                continue;
            }

            try
            {
                var payment = await _ledger.Ledger.PayAsync(
                    LedgerService.TrainingPaymentKey(job.Row.Id, summary.Round, node),
                    escrow,
                    address.Value,
                    charge,
                    prices.FeeBasisPoints,
                    new TransactionReferences { JobId = job.Row.Id, Round = summary.Round },
                    cancellationToken);
                charged += payment.Gross;
            }
            catch (InsufficientBalanceException)
            {
                // The escrow is empty: the rest of this round is unpaid, and the job ends with its final evaluation.
                break;
            }
            catch (IdempotencyConflictException ex)
            {
                Log.PaymentConflict(_logger, job.Row.Id, summary.Round, node, ex.Message);
            }
        }

        job.LastRoundCharge = Math.Max(job.LastRoundCharge, charged);
    }

    /// <summary>Refunds the escrow of every job that ended (a coordinator may have stopped between the end and the refund).</summary>
    private async Task RefundEndedJobsAsync(CancellationToken cancellationToken)
    {
        foreach (var (account, balance) in await _ledger.Ledger.GetBalancesAsync(cancellationToken))
        {
            if (account.Escrow is { Kind: EscrowKind.Job } escrow && balance > 0
                && await _store.GetJobAsync(escrow.Id, cancellationToken) is { FinishedAtUnixMs: not null } row)
            {
                await RefundAsync(row.Id, TrainingJson.ReadSpec(row.SpecJson), cancellationToken);
            }
        }
    }

    /// <summary>Whether the job's escrow can no longer pay for a round like the last one.</summary>
    private async Task<bool> BudgetSpentAsync(ActiveJob job, CancellationToken cancellationToken)
    {
        if (job.Spec.Budget is null || job.TrainingDone)
        {
            return false;
        }

        var left = await _ledger.Ledger.GetBalanceAsync(AccountId.ForEscrow(EscrowId.Job(job.Row.Id)), cancellationToken);
        return left <= 0 || left < job.LastRoundCharge;
    }

    /// <summary>
    /// Takes an ended job out of the running ones. Its escrow is refunded once the verifier has no replay of its
    /// work left (or after <see cref="TrainingOptions.RefundWait"/>), so that a flagged node-round a replay
    /// clears after the end is still paid (<see cref="PayClearedAsync"/>). The first look is queued, not made
    /// here: the round that ended the job may still start replays (<see cref="TrainingVerifier.RoundCommitted"/>
    /// runs after), and the payments of verdicts raised so far are already queued ahead of it.
    /// </summary>
    private void Ended(ActiveJob job)
    {
        var id = job.Row.Id;
        _jobs.Remove(id);
        if (job.Spec.Budget is null)
        {
            return;
        }

        // Only what pricing a payment needs is kept while the replays run.
        job.Master = null;
        job.Outer = null;
        _ended[id] = new EndedJob(job, _time.GetUtcNow() + _options.RefundWait);
        _inbox.Writer.TryWrite(() => SettleEndedAsync(id, CancellationToken.None));
    }

    private void OnReplaysSettled(string jobId) => _inbox.Writer.TryWrite(() => SettleEndedAsync(jobId, CancellationToken.None));

    /// <summary>Refunds an ended job's escrow when no replay of its work is left, or its wait is over.</summary>
    private async Task SettleEndedAsync(string jobId, CancellationToken cancellationToken)
    {
        if (!_ended.TryGetValue(jobId, out var ended))
        {
            return;
        }

        var pending = _verifier.PendingReplaysOf(jobId);
        var now = _time.GetUtcNow();
        if (pending > 0 && now < ended.RefundBy)
        {
            return;
        }

        try
        {
            await RefundAsync(jobId, ended.Job.Spec, cancellationToken);
            _ended.Remove(jobId);
            if (pending > 0)
            {
                // Their verdicts still settle held payments (release, void to the owner); a cleared flag pays nothing now.
                Log.RefundedWithReplaysPending(_logger, jobId, pending, _options.RefundWait.TotalSeconds);
            }
        }
        catch (Exception ex) when (ex is not OperationCanceledException && ex is not OutOfMemoryException)
        {
            // Run from the loop, which nothing may stop: tried again at a later tick; a restart refunds it too (RefundEndedJobsAsync).
            ended.RefundBy = now + TimeSpan.FromSeconds(2);
            Log.RefundFailed(_logger, jobId, ex);
        }
    }

    private async Task RefundAsync(string jobId, TrainingJobSpec spec, CancellationToken cancellationToken)
    {
        if (spec.Budget is not null)
        {
            await _ledger.Ledger.RefundAsync($"refund:{jobId}", EscrowId.Job(jobId), new TransactionReferences { JobId = jobId }, cancellationToken);
        }
    }

    /// <summary>The training FLOPs per sample of the job's model (forward and backward), as the zoo computes them.</summary>
    private static long FlopsPerSample(ActiveJob job)
    {
        var split = job.Manifest.Splits["train"];
        if (job.Spec.Model.Script is null)
        {
            using var model = Compute.Training.TrainableModel.Create(job.Spec.Model, split.SampleShape, split.Classes, job.IsText, "cpu", job.Spec.Seed);
            return model.FlopsPerSample;
        }

        // A TorchScript module's graph is not measured here: 6 FLOPs per parameter per sample, the usual
        // estimate of a forward and backward pass of dense layers.
        return 6 * Math.Max(1, job.Row.VectorLength);
    }

    private async Task FinishAsync(ActiveJob job, TrainingJobState state, string reason, CancellationToken cancellationToken)
    {
        var now = _time.GetUtcNow();
        job.Row.State = EmcJson.EnumText(state);
        job.Row.Reason = reason;
        job.Row.RoundJobId = null;
        job.Row.FinishedAtUnixMs = now.ToUnixTimeMilliseconds();
        await SaveAsync(job, null, cancellationToken);
        Ended(job);
        Log.JobFinished(_logger, job.Row.Id, EmcJson.EnumText(state), reason);
    }

    private async Task SaveAsync(ActiveJob job, TrainingRoundRow? round, CancellationToken cancellationToken)
    {
        job.Row.ProgressJson = TrainingJson.Write(job.Progress);
        job.Row.UpdatedAtUnixMs = _time.GetUtcNow().ToUnixTimeMilliseconds();
        await _store.SaveJobAsync(job.Row, round, cancellationToken);
    }

    private async Task DeleteUnreferencedAsync(IEnumerable<string?> hashes, CancellationToken cancellationToken)
    {
        // Blobs a verification check still reads (a replayed round's weights) are left to the verifier.
        var candidates = hashes.OfType<string>().Distinct().Where(h => !_verifier.IsPinned(h)).ToList();
        if (candidates.Count == 0)
        {
            return;
        }

        var referenced = await _store.ReferencedBlobsAsync(cancellationToken);
        foreach (var hash in candidates.Where(h => !referenced.Contains(h)))
        {
            _blobs.Delete(hash);
        }
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 408, Level = LogLevel.Error, Message = "Training job {JobId}: round {Round}'s payment to {Node} conflicts with an earlier one: {Problem}")]
        public static partial void PaymentConflict(ILogger logger, string jobId, long round, string node, string problem);

        [LoggerMessage(EventId = 400, Level = LogLevel.Information, Message = "Training {JobId} round {Round} planned on {Nodes} nodes, {Samples} samples ({SchedulerJob})")]
        public static partial void RoundPlanned(ILogger logger, string jobId, long round, int nodes, long samples, string schedulerJob);

        [LoggerMessage(EventId = 401, Level = LogLevel.Information, Message = "Training {JobId} round {Round} closed: {Accepted}/{Nodes} updates, {Samples} samples, loss {Loss:0.####}, held-out accuracy {Accuracy:0.####}")]
        public static partial void RoundClosed(ILogger logger, string jobId, long round, int accepted, int nodes, long samples, double loss, double accuracy);

        [LoggerMessage(EventId = 402, Level = LogLevel.Warning, Message = "Training {JobId} round {Round} produced nothing: {Reason}")]
        public static partial void RoundEmpty(ILogger logger, string jobId, long round, string reason);

        [LoggerMessage(EventId = 403, Level = LogLevel.Information, Message = "Training {JobId} completed: model {Model} v{Version}, accuracy {Accuracy:0.####}, loss {Loss:0.####}")]
        public static partial void JobCompleted(ILogger logger, string jobId, string model, int version, double accuracy, double loss);

        [LoggerMessage(EventId = 404, Level = LogLevel.Information, Message = "Training {JobId} {State}: {Reason}")]
        public static partial void JobFinished(ILogger logger, string jobId, string state, string reason);

        [LoggerMessage(EventId = 405, Level = LogLevel.Information, Message = "Training {JobId} resumed after round {Round}")]
        public static partial void JobResumed(ILogger logger, string jobId, long round);

        [LoggerMessage(EventId = 407, Level = LogLevel.Warning, Message = "Training {JobId}: the model name {Model} was taken by another account while it ran; the model is registered under the job's id")]
        public static partial void OutputRenamed(ILogger logger, string jobId, string model);

        [LoggerMessage(EventId = 406, Level = LogLevel.Error, Message = "Training {JobId}: a step failed")]
        public static partial void JobStepFailed(ILogger logger, string jobId, Exception exception);

        [LoggerMessage(EventId = 409, Level = LogLevel.Warning, Message = "Training {JobId}: its escrow is refunded with {Replays} replays of its work still running after {Seconds:0} s; a flagged node-round they clear now goes unpaid")]
        public static partial void RefundedWithReplaysPending(ILogger logger, string jobId, int replays, double seconds);

        [LoggerMessage(EventId = 410, Level = LogLevel.Error, Message = "Training {JobId}: refunding its escrow failed; it is tried again")]
        public static partial void RefundFailed(ILogger logger, string jobId, Exception exception);
    }

    /// <summary>A job that ended, until its escrow is refunded.</summary>
    private sealed class EndedJob(ActiveJob job, DateTimeOffset refundBy)
    {
        public ActiveJob Job { get; } = job;

        /// <summary>When the refund stops waiting for the job's replays (or is tried again after a failure).</summary>
        public DateTimeOffset RefundBy { get; set; } = refundBy;
    }
}

/// <summary>Builds the live state of a job from its stored row.</summary>
internal delegate ActiveJob ActiveJobFactory(TrainingJobRow row);
