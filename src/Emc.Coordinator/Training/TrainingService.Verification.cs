using Emc.Coordinator.Verification;
using Emc.Core;
using Emc.Core.Training;
using Emc.Core.Verification;
using Microsoft.Extensions.Logging;

namespace Emc.Coordinator.Training;

/// <summary>
/// The training service's side of verification (<see cref="TrainingVerifier"/>): screening a round's updates
/// before aggregation, waiting for hardware challenges before planning, and recording verdicts in the job —
/// a proven fault bans the node from the job's planning and voids its round in the per-node contributions.
/// </summary>
public sealed partial class TrainingService
{
    /// <summary>
    /// Shows the verifier the round's decodable updates: <paramref name="screened"/> holds those that passed
    /// the manifest checks, with <see cref="MemberOutcome.Rejected"/> set for those the statistical checks
    /// rejected. Members it flags are rejected with its reason.
    /// </summary>
    private async Task ScreenAsync(ActiveJob job, RoundState round, List<(string Node, MemberOutcome Outcome)> screened, float[] master, CancellationToken cancellationToken)
    {
        var candidates = new List<ScreenCandidate>(screened.Count);
        foreach (var (node, outcome) in screened)
        {
            if (outcome.Manifest is { } manifest && outcome.Delta is { } delta && round.Work.Members.TryGetValue(node, out var share))
            {
                candidates.Add(new ScreenCandidate(node, manifest, delta, share, round.Work.Inner, round.Work.TotalSteps, outcome.Rejected));
            }
        }

        if (candidates.Count == 0)
        {
            return;
        }

        var flags = await _verifier.ScreenAsync(job, round, candidates, master, cancellationToken);
        foreach (var (node, reason) in flags)
        {
            if (round.Outcomes.TryGetValue(node, out var outcome) && outcome.Rejected is null)
            {
                outcome.Rejected = $"flagged: {reason}";
            }
        }
    }

    private async Task WaitForChecksAsync(ActiveJob job, string reason, CancellationToken cancellationToken)
    {
        if (job.Row.Reason != reason)
        {
            job.Row.Reason = reason;
            await SaveAsync(job, null, cancellationToken);
        }

        job.NextPlanAt = _time.GetUtcNow() + TimeSpan.FromMilliseconds(250);
    }

    private void OnVerdict(VerdictNotice notice) => _inbox.Writer.TryWrite(() => ApplyVerdictAsync(notice));

    /// <summary>Records a verdict in the job's progress and saves it; a job that already ended is updated in the database.</summary>
    private async Task ApplyVerdictAsync(VerdictNotice notice)
    {
        try
        {
            if (_jobs.TryGetValue(notice.JobId, out var job))
            {
                Apply(job.Progress, job.Row.Round, notice);
                await SaveAsync(job, null, CancellationToken.None);
                return;
            }

            if (await _store.GetJobAsync(notice.JobId, CancellationToken.None) is { } row)
            {
                var progress = TrainingJson.ReadProgress(row.ProgressJson);
                Apply(progress, row.Round, notice);
                row.ProgressJson = TrainingJson.Write(progress);
                row.UpdatedAtUnixMs = _time.GetUtcNow().ToUnixTimeMilliseconds();
                await _store.SaveJobAsync(row, null, CancellationToken.None);
            }
        }
        catch (Exception ex) when (ex is InvalidOperationException or System.Text.Json.JsonException or IOException)
        {
            Log.JobStepFailed(_logger, notice.JobId, ex);
        }
    }

    private static void Apply(TrainingProgress progress, long roundsClosed, VerdictNotice notice)
    {
        var verification = progress.Verification;
        switch (notice.Kind)
        {
            case VerdictNoticeKind.ChallengePassed:
                verification.Challenged[notice.Node] = roundsClosed;
                return;
            case VerdictNoticeKind.Verified:
                Contribution(progress, notice.Node).Verified++;
                return;
            case VerdictNoticeKind.Fault when notice.Fault is { } fault:
                verification.Banned[notice.Node] = $"{EmcJson.EnumText(fault.Kind)} in round {fault.Round}";
                verification.Faults.Add(new ProvenFault(fault.Round, fault.Node, EmcJson.EnumText(fault.Kind), fault.Evidence, fault.At));
                var contribution = Contribution(progress, notice.Node);
                contribution.Faults++;
                if (notice.Voided is { Aggregated: true } voided)
                {
                    // The round's work no longer counts as the node's: it is neither accepted nor paid.
                    contribution.Accepted = Math.Max(0, contribution.Accepted - 1);
                    contribution.Rejected++;
                    contribution.Samples = Math.Max(0, contribution.Samples - voided.Samples);
                    contribution.Seconds = Math.Max(0, contribution.Seconds - voided.Seconds);
                    contribution.BytesSent = Math.Max(0, contribution.BytesSent - voided.Bytes);
                }

                return;
        }
    }

    private static NodeContribution Contribution(TrainingProgress progress, string node)
    {
        if (!progress.Nodes.TryGetValue(node, out var contribution))
        {
            contribution = new NodeContribution();
            progress.Nodes[node] = contribution;
        }

        return contribution;
    }
}
