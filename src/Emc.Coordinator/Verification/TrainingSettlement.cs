using Emc.Coordinator.Ledger;
using Emc.Coordinator.Training;
using Emc.Core.Verification;
using Emc.Ledger;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Emc.Coordinator.Verification;

/// <summary>
/// Settles training rounds' payments by the verifier's verdicts: a verified node-round's held payment is
/// released to the node at once (a node-round left out of its aggregate on a suspicion its replay cleared
/// is paid first, also after its job ended: the job's refund waits for its replays); a node-round proven faulty has its payment voided (back to the job's
/// escrow, or to its owner once the job has ended) and the node's stake slashed, once per fault.
/// </summary>
public sealed partial class TrainingSettlement(TrainingVerifier verifier, LedgerService ledger, SlashingService slashing, TrainingStore store, TrainingService training, ILogger<TrainingSettlement> logger) : IHostedService
{
    public Task StartAsync(CancellationToken cancellationToken)
    {
        verifier.RoundVerified += OnVerified;
        verifier.FaultProven += OnFault;
        return Task.CompletedTask;
    }

    public Task StopAsync(CancellationToken cancellationToken)
    {
        verifier.RoundVerified -= OnVerified;
        verifier.FaultProven -= OnFault;
        return Task.CompletedTask;
    }

    /// <summary>Releases the node-round's payment when it is still held; returns whether it did.</summary>
    public async Task<bool> ReleaseAsync(VerifiedNodeRound verified, CancellationToken cancellationToken)
    {
        var key = LedgerService.TrainingPaymentKey(verified.JobId, verified.Round, verified.Node);
        if (ledger.Ledger.GetPayment(key) is null && !verified.Aggregated)
        {
            // Flagged at round close, so left out of the aggregate and unpaid; its replay cleared it. This must be
            // the first await: the payment is then queued on the training loop ahead of the job's refund. After
            // the refund (or a restart) it pays nothing and returns false.
            await training.PayClearedAsync(verified.JobId, verified.Round, verified.Node, verified.Samples, cancellationToken);
        }

        if (ledger.Ledger.GetPayment(key) is not { Status: PaymentStatus.Held })
        {
            return false;
        }

        await ledger.Ledger.ReleaseAsync($"release:{key}", key, new TransactionReferences { JobId = verified.JobId, Round = verified.Round, Memo = $"verified: {verified.Check}" }, cancellationToken);
        return true;
    }

    /// <summary>Voids the faulty node-round's payment (when held) and slashes the node.</summary>
    public async Task PunishAsync(TrainingFault fault, CancellationToken cancellationToken)
    {
        var key = LedgerService.TrainingPaymentKey(fault.JobId, fault.Round, fault.Node);
        if (ledger.Ledger.GetPayment(key) is { Status: PaymentStatus.Held })
        {
            var ended = await store.GetJobAsync(fault.JobId, cancellationToken) is { FinishedAtUnixMs: not null };
            await ledger.Ledger.VoidAsync($"void:{key}", key, ended ? VoidDestination.Owner : VoidDestination.Escrow, new TransactionReferences { JobId = fault.JobId, Round = fault.Round, Memo = $"{fault.Kind}: {Trim(fault.Evidence)}" }, cancellationToken);
        }

        await slashing.SlashAsync($"slash:{fault.IdempotencyKey}:{fault.Kind}", fault.Node, $"{fault.Kind} in {fault.JobId} round {fault.Round}: {fault.Evidence}", cancellationToken);
    }

    private void OnVerified(VerifiedNodeRound verified) => _ = RunAsync(() => ReleaseAsync(verified, CancellationToken.None), verified.JobId, verified.Node);

    private void OnFault(TrainingFault fault) => _ = RunAsync(async () => await PunishAsync(fault, CancellationToken.None), fault.JobId, fault.Node);

    private async Task RunAsync(Func<Task> work, string job, string node)
    {
        try
        {
            await work();
        }
        catch (Exception ex) when (ex is LedgerException or InvalidOperationException or ArgumentException)
        {
            Log.Failed(logger, job, node, ex);
        }
    }

    private static string Trim(string text) => text.Length <= 900 ? text : text[..900];

    private static partial class Log
    {
        [LoggerMessage(EventId = 1, Level = LogLevel.Error, Message = "Settling a verdict of training job {JobId} for node {Node} failed; a held payment is released after the training audit window")]
        public static partial void Failed(ILogger logger, string jobId, string node, Exception exception);
    }
}
