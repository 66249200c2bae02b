using Microsoft.Extensions.DependencyInjection;

namespace Emc.Coordinator.Models;

/// <summary>Registers the model registry (it needs the blob store and the training store of AddEmcTraining).</summary>
public static class ModelsServiceCollectionExtensions
{
    public static IServiceCollection AddEmcModels(this IServiceCollection services)
    {
        services.AddSingleton<ModelRegistry>();
        return services;
    }
}
