using Emc.Core.Verification;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;

namespace Emc.Coordinator.Verification;

/// <summary>Registers the <see cref="TrustBook"/> and its persistence in the coordinator's database (which AddEmcPersistence registers).</summary>
public static class TrustServiceCollectionExtensions
{
    /// <summary>Adds the trust book, kept across restarts by <see cref="TrustPersistence"/>; calling it again changes nothing.</summary>
    public static IServiceCollection AddEmcTrust(this IServiceCollection services)
    {
        if (services.Any(d => d.ServiceType == typeof(TrustPersistence)))
        {
            return services;
        }

        services.TryAddSingleton(new TrustBook());
        services.TryAddSingleton(new TrustPersistenceOptions());
        services.TryAddSingleton<TrustStore>();
        services.AddSingleton<TrustPersistence>();
        services.AddHostedService(sp => sp.GetRequiredService<TrustPersistence>());
        return services;
    }
}
