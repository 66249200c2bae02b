using Emc.Coordinator.Blobs;
using Emc.Coordinator.Verification;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;

namespace Emc.Coordinator.Training;

/// <summary>Registers the blob store, datasets, the training service, the verification of its work and the model registry.</summary>
public static class TrainingServiceCollectionExtensions
{
    public static IServiceCollection AddEmcTraining(this IServiceCollection services, string dataDirectory)
    {
        services.AddSingleton(new BlobStore(dataDirectory));
        services.AddSingleton<TrainingOptions>();
        services.AddSingleton<TrainingStore>();
        services.AddSingleton<DatasetService>();
        services.AddEmcTrust();
        services.TryAddSingleton(new TrainingVerifierOptions());
        services.AddSingleton<TrainingVerifier>();
        services.AddHostedService(sp => sp.GetRequiredService<TrainingVerifier>());
        services.AddHostedService<TrainingSettlement>();
        services.AddSingleton<TrainingService>();
        services.AddHostedService(sp => sp.GetRequiredService<TrainingService>());
        services.AddSingleton<TrainingSubmission>();
        return services;
    }
}
