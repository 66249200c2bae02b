using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Authorization;
using Microsoft.Extensions.DependencyInjection;

namespace Emc.Coordinator.Accounts;

/// <summary>Registers accounts, keys, node signatures and the access policies.</summary>
public static class AccessServiceCollectionExtensions
{
    /// <param name="services">The coordinator's services.</param>
    /// <param name="dataDirectory">The data folder; the operator key file is <c>operator.key</c> in it unless <paramref name="operatorKeyFile"/> names another.</param>
    /// <param name="operatorKeyFile">Where the operator key is kept, when not in the data folder.</param>
    /// <param name="operatorKey">An operator key from configuration; then no file is written.</param>
    public static IServiceCollection AddEmcAccess(this IServiceCollection services, string dataDirectory, string? operatorKeyFile = null, string? operatorKey = null)
    {
        services.AddOptions<AccessOptions>()
            .Configure(o =>
            {
                o.OperatorKeyFile ??= operatorKeyFile ?? Path.Combine(dataDirectory, "operator.key");
                o.OperatorKey ??= operatorKey;
            })
            .ValidateDataAnnotations()
            .ValidateOnStart();
        services.AddSingleton<AccountStore>();
        services.AddSingleton<NodeRequestVerifier>();
        services.AddSingleton<OperatorCredential>();
        services.AddAuthentication(EmcAuthenticationHandler.SchemeName)
            .AddScheme<AuthenticationSchemeOptions, EmcAuthenticationHandler>(EmcAuthenticationHandler.SchemeName, null);
        services.AddAuthorization(AccessPolicies.Add);
        services.AddSingleton<IAuthorizationHandler, AccessRequirementHandler>();
        services.AddSingleton<IAuthorizationMiddlewareResultHandler, AccessResultHandler>();
        return services;
    }
}
