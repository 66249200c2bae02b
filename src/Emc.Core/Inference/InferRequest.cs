namespace Emc.Core.Inference;

/// <summary>An inference request: the body of <c>POST v2/models/{name}[/versions/{version}]/infer</c>.</summary>
public sealed class InferRequest
{
    /// <summary>The client's identifier for the request, echoed in the response; null when not given.</summary>
    public string? Id { get; init; }

    /// <summary>Request parameters, such as <c>binary_data_output</c> or Triton's <c>priority</c> and <c>timeout</c>.</summary>
    public IReadOnlyDictionary<string, InferParameter> Parameters { get; init; } = InferParameters.Empty;

    /// <summary>The input tensors, in the order the client sent them.</summary>
    public required IReadOnlyList<InferTensor> Inputs { get; init; }

    /// <summary>The outputs asked for; empty means every output of the model.</summary>
    public IReadOnlyList<InferRequestedOutput> Outputs { get; init; } = [];

    /// <summary>
    /// Whether the client wants <paramref name="outputName"/> in the binary part of the response: the
    /// output's own <c>binary_data</c> when it has one, otherwise the request's <c>binary_data_output</c>,
    /// otherwise false.
    /// </summary>
    public bool WantsBinaryOutput(string outputName)
    {
        foreach (var output in Outputs)
        {
            if (output.Name == outputName
                && output.Parameters.TryGetValue(InferParameters.BinaryData, out var own)
                && own.TryGetBool(out var binary))
            {
                return binary;
            }
        }

        return Parameters.TryGetValue(InferParameters.BinaryDataOutput, out var all) && all.TryGetBool(out var allBinary) && allBinary;
    }
}

/// <summary>An output a request asks for, with its parameters (such as <c>binary_data</c>).</summary>
public sealed record InferRequestedOutput(string Name)
{
    /// <summary>The output's parameters.</summary>
    public IReadOnlyDictionary<string, InferParameter> Parameters { get; init; } = InferParameters.Empty;
}
