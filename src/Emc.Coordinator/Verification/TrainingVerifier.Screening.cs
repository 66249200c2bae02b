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

/// <summary>Round close: copy detection and held-out scoring before the aggregate, and what to replay after the checkpoint.</summary>
public sealed partial class TrainingVerifier
{
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
}
