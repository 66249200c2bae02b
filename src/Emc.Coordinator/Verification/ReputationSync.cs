using Emc.Coordinator.Scheduling;
using Emc.Core.Scheduling;
using Emc.Core.Verification;
using Microsoft.Extensions.Hosting;

namespace Emc.Coordinator.Verification;

/// <summary>
/// Carries every change of a node's reputation in the <see cref="TrustBook"/> — its verified outcomes — to
/// the scheduler, where reputation weighs in placement, so nodes whose work checks out are preferred. At start
/// it carries the reputations the book was restored with (<see cref="TrustPersistence"/>), so a restart does
/// not forget them.
/// </summary>
public sealed class ReputationSync(TrustBook trust, SchedulerService scheduler) : IHostedService
{
    public Task StartAsync(CancellationToken cancellationToken)
    {
        trust.ReputationChanged += OnChanged;

        // Queued behind the scheduler's restore; a change that comes meanwhile is queued after it, so it wins.
        var restored = trust.Reputations();
        if (restored.Count > 0)
        {
            _ = ApplyAsync(() => scheduler.SetReputationsAsync(restored, CancellationToken.None));
        }

        return Task.CompletedTask;
    }

    public Task StopAsync(CancellationToken cancellationToken)
    {
        trust.ReputationChanged -= OnChanged;
        return Task.CompletedTask;
    }

    private void OnChanged(string node, double reputation) => _ = ApplyAsync(() => scheduler.SetReputationAsync(node, reputation, CancellationToken.None));

    private static async Task ApplyAsync(Func<Task<bool>> apply)
    {
        try
        {
            await apply();
        }
        catch (Exception ex) when (ex is SchedulingException or InvalidOperationException or OperationCanceledException or System.Threading.Channels.ChannelClosedException)
        {
            // The scheduler is stopping: the reputation is in the trust book and is set again at the next outcome.
        }
    }
}
