namespace Emc.Core.Inference;

/// <summary>The answer to an <see cref="InferRequest"/>.</summary>
public sealed class InferResponse
{
    /// <summary>The model that ran.</summary>
    public required string ModelName { get; init; }

    /// <summary>The version that ran; null when the server does not say.</summary>
    public string? ModelVersion { get; init; }

    /// <summary>The request's <see cref="InferRequest.Id"/>; null when it had none.</summary>
    public string? Id { get; init; }

    /// <summary>Response parameters.</summary>
    public IReadOnlyDictionary<string, InferParameter> Parameters { get; init; } = InferParameters.Empty;

    /// <summary>The output tensors.</summary>
    public required IReadOnlyList<InferTensor> Outputs { get; init; }
}
