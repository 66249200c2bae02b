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

/// <summary>Admission to a job's planning: bans, and hardware challenges timed against the claimed benchmark.</summary>
public sealed partial class TrainingVerifier
{
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
}
