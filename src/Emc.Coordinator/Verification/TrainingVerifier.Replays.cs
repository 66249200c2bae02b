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

/// <summary>Spot-check replays: the committed state, a replay on another member, a referee on disagreement.</summary>
public sealed partial class TrainingVerifier
{
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
            bool settled;
            lock (_lock)
            {
                var checks = Checks(info.JobId);
                checks.Replays--;
                settled = checks.Replays == 0;
                Unpin(check.Plan.BaseWeights);
            }

            if (settled)
            {
                ReplaysSettled?.Invoke(info.JobId);
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
}
