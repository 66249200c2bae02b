using Emc.Core.Pricing;
using Emc.Ledger;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;

namespace Emc.Coordinator.Ledger;

/// <summary>Registers the ledger: its service over the database, the price table and the payment settings, unless others are registered.</summary>
public static class LedgerServiceCollectionExtensions
{
    public static IServiceCollection AddEmcLedger(this IServiceCollection services, string? dataDirectory = null)
    {
        services.TryAddSingleton(new InferenceBillingOptions { Directory = dataDirectory is null ? null : Path.Combine(dataDirectory, "usage") });
        services.AddSingleton<InferenceBilling>();
        services.TryAddSingleton(new PriceTable());
        services.TryAddSingleton(new LedgerOptions());
        services.TryAddSingleton(new PaymentOptions());
        services.AddSingleton<LedgerService>();
        services.AddHostedService(sp => sp.GetRequiredService<LedgerService>());
        services.AddHostedService(sp => sp.GetRequiredService<InferenceBilling>());
        return services;
    }
}
