namespace Emc.Core.Inference;

/// <summary>An input or output a model declares. A dimension of -1 takes any size.</summary>
public sealed record TensorMetadata(string Name, TensorDatatype Datatype, IReadOnlyList<long> Shape);

/// <summary>The answer to <c>GET v2/models/{name}[/versions/{version}]</c>.</summary>
public sealed class ModelMetadata
{
    /// <summary>The model's name.</summary>
    public required string Name { get; init; }

    /// <summary>The versions available; empty when the server does not say.</summary>
    public IReadOnlyList<string> Versions { get; init; } = [];

    /// <summary>"&lt;project&gt;_&lt;format&gt;", such as "onnx_onnxv1" or "pytorch_torchscript"; information only.</summary>
    public required string Platform { get; init; }

    /// <summary>The inputs a request must provide.</summary>
    public required IReadOnlyList<TensorMetadata> Inputs { get; init; }

    /// <summary>The outputs the model produces.</summary>
    public required IReadOnlyList<TensorMetadata> Outputs { get; init; }
}

/// <summary>The answer to <c>GET v2</c>.</summary>
public sealed class ServerMetadata
{
    /// <summary>The server's name.</summary>
    public required string Name { get; init; }

    /// <summary>The server's version.</summary>
    public required string Version { get; init; }

    /// <summary>The protocol extensions supported, such as "binary_tensor_data".</summary>
    public IReadOnlyList<string> Extensions { get; init; } = [];
}
