using Emc.Coordinator.Verification;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;

namespace Emc.Coordinator.Inference;

/// <summary>
/// Registers serving: the node call hub, the deployment service (also the <see cref="IInferenceBackend"/>), and an
/// in-memory deployment store and usage meter unless others are registered.
/// </summary>
public static class DeploymentServiceCollectionExtensions
{
    public static IServiceCollection AddEmcDeployments(this IServiceCollection services)
    {
        services.TryAddSingleton<IDeploymentStore, InMemoryDeploymentStore>();
        services.TryAddSingleton(new DeploymentOptions());
        services.TryAddSingleton<IUsageMeter, InMemoryUsageMeter>();
        services.TryAddSingleton(new InferenceAuditOptions());
        services.AddEmcTrust();
        services.AddSingleton<InferenceAuditor>();
        services.AddHostedService(sp => sp.GetRequiredService<InferenceAuditor>());
        services.AddSingleton<LocalReferee>();
        services.AddHostedService<ReputationSync>();
        services.AddSingleton<SlashingService>();
        services.AddHostedService(sp => sp.GetRequiredService<SlashingService>());
        services.AddSingleton<NodeCallHub>();
        services.AddSingleton<DeploymentService>();
        services.AddSingleton<IInferenceBackend>(sp => sp.GetRequiredService<DeploymentService>());
        services.AddSingleton<InferenceAccess>();
        services.AddHostedService(sp => sp.GetRequiredService<DeploymentService>());
        return services;
    }
}
