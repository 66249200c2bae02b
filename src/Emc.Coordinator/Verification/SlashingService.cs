using Emc.Coordinator.Ledger;
using Emc.Core.Identity;
using Emc.Ledger;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Emc.Coordinator.Verification;

/// <summary>
/// Turns proven faults into money: a node proven to have answered wrongly loses
/// <c>PriceTable.SlashBasisPoints</c> of its stake (stake still unstaking included) to the <c>slashed</c>
/// account. One slash per proven fault: the key names the deployment and the replica the fault was proven
/// on, so the same finding reported twice is slashed once.
/// </summary>
public sealed partial class SlashingService(InferenceAuditor auditor, LedgerService ledger, ILogger<SlashingService> logger) : IHostedService
{
    public Task StartAsync(CancellationToken cancellationToken)
    {
        auditor.FaultProven += OnInferenceFault;
        return Task.CompletedTask;
    }

    public Task StopAsync(CancellationToken cancellationToken)
    {
        auditor.FaultProven -= OnInferenceFault;
        return Task.CompletedTask;
    }

    /// <summary>Slashes <paramref name="node"/> for one proven fault named by <paramref name="key"/>; returns the units taken.</summary>
    public async Task<long> SlashAsync(string key, string node, string evidence, CancellationToken cancellationToken)
    {
        if (!EthAddress.TryParse(node, out var address))
        {
            return 0;
        }

        var result = await ledger.Ledger.SlashShareAsync(key, address.Value, ledger.Prices.SlashBasisPoints, new TransactionReferences { Memo = evidence.Length <= 900 ? evidence : evidence[..900] }, cancellationToken);
        Log.Slashed(logger, node, result.Slashed, evidence);
        return result.Slashed;
    }

    private void OnInferenceFault(AuditFinding finding) => _ = SlashOrLogAsync($"slash:{finding.DeploymentId}:{finding.ReplicaId}", finding.Node, $"wrong output on {finding.DeploymentId}: {finding.Evidence}");

    private async Task SlashOrLogAsync(string key, string node, string evidence)
    {
        try
        {
            await SlashAsync(key, node, evidence, CancellationToken.None);
        }
        catch (Exception ex) when (ex is LedgerException or InvalidOperationException or ArgumentException)
        {
            Log.SlashFailed(logger, node, ex);
        }
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 1, Level = LogLevel.Warning, Message = "Node {Node} slashed {Units} units for a proven fault: {Evidence}")]
        public static partial void Slashed(ILogger logger, string node, long units, string evidence);

        [LoggerMessage(EventId = 2, Level = LogLevel.Error, Message = "Slashing node {Node} failed")]
        public static partial void SlashFailed(ILogger logger, string node, Exception exception);
    }
}
