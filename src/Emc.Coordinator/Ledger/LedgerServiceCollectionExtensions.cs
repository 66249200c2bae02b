using Emc.Core.Pricing;
using Emc.Ledger;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;

namespace Emc.Coordinator.Ledger;

/// <summary>Registers the ledger: its service over the database, the price table and the payment settings, unless others are registered.</summary>
public static class LedgerServiceCollectionExtensions
{
    public static IServiceCollection AddEmcLedger(this IServiceCollection services)
    {
        services.TryAddSingleton(new PriceTable());
        services.TryAddSingleton(new LedgerOptions());
        services.TryAddSingleton(new PaymentOptions());
        services.AddSingleton<LedgerService>();
        services.AddHostedService(sp => sp.GetRequiredService<LedgerService>());
        return services;
    }
}
