using Emc.Coordinator.Scheduling;
using Emc.Core.Scheduling;
using Emc.Core.Verification;
using Microsoft.Extensions.Hosting;

namespace Emc.Coordinator.Verification;

/// <summary>
/// Carries every change of a node's reputation in the <see cref="TrustBook"/> — its verified outcomes — to
/// the scheduler, where reputation weighs in placement, so nodes whose work checks out are preferred.
/// </summary>
public sealed class ReputationSync(TrustBook trust, SchedulerService scheduler) : IHostedService
{
    public Task StartAsync(CancellationToken cancellationToken)
    {
        trust.ReputationChanged += OnChanged;
        return Task.CompletedTask;
    }

    public Task StopAsync(CancellationToken cancellationToken)
    {
        trust.ReputationChanged -= OnChanged;
        return Task.CompletedTask;
    }

    private void OnChanged(string node, double reputation) => _ = ApplyAsync(node, reputation);

    private async Task ApplyAsync(string node, double reputation)
    {
        try
        {
            await scheduler.SetReputationAsync(node, reputation, CancellationToken.None);
        }
        catch (Exception ex) when (ex is SchedulingException or InvalidOperationException or OperationCanceledException or System.Threading.Channels.ChannelClosedException)
        {
            // The scheduler is stopping: the reputation is in the trust book and is set again at the next outcome.
        }
    }
}
