using Emc.Coordinator.Blobs;
using Microsoft.Extensions.DependencyInjection;

namespace Emc.Coordinator.Training;

/// <summary>Registers the blob store, datasets, the training service and the model registry.</summary>
public static class TrainingServiceCollectionExtensions
{
    public static IServiceCollection AddEmcTraining(this IServiceCollection services, string dataDirectory)
    {
        services.AddSingleton(new BlobStore(dataDirectory));
        services.AddSingleton<TrainingOptions>();
        services.AddSingleton<TrainingStore>();
        services.AddSingleton<DatasetService>();
        services.AddSingleton<TrainingService>();
        services.AddHostedService(sp => sp.GetRequiredService<TrainingService>());
        services.AddSingleton<TrainingSubmission>();
        return services;
    }
}
