using Emc.Core.Inference;

namespace Emc.Coordinator.Inference;

/// <summary>
/// What the protocol front ends (Open Inference Protocol v2 over REST and gRPC, the OpenAI-compatible
/// API) call: it resolves a model name and optional version to a deployment and runs the request on one
/// of its replicas. Failures are <see cref="OipException"/>s whose kind gives the status: unknown model
/// 404, bad input 400, too large 413, no ready replica / overloaded 503 (a deadline passing is 503 too,
/// with a message saying so).
/// </summary>
public interface IInferenceBackend
{
    /// <summary>The model's metadata, or null when no such model (version) is registered.</summary>
    ValueTask<ModelMetadata?> GetMetadataAsync(string model, string? version, CancellationToken cancellationToken);

    /// <summary>Whether the model has a deployment with at least one replica ready to serve.</summary>
    ValueTask<bool> IsReadyAsync(string model, string? version, CancellationToken cancellationToken);

    /// <summary>Runs one request (already parsed; validated here against the model's metadata) before <paramref name="deadline"/>.</summary>
    Task<InferResponse> InferAsync(string model, string? version, InferRequest request, DateTimeOffset deadline, CancellationToken cancellationToken);
}
