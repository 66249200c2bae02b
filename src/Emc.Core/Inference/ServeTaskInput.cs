using Emc.Core.Training;

namespace Emc.Core.Inference;

/// <summary>
/// The input of a lease of kind <see cref="Kind"/>: everything a node needs to load one replica of a
/// deployment and batch its requests. Serialized as JSON with <see cref="EmcJson.Options"/>. A replica
/// serves either a registered <see cref="Model"/> or the node's external <see cref="Engine"/>.
/// </summary>
public sealed record ServeTaskInput
{
    /// <summary>The task kind of a replica.</summary>
    public const string Kind = "serve";

    /// <summary>The deployment the replica serves.</summary>
    public required string Deployment { get; init; }

    /// <summary>The registered model (name and version) as the registry describes it; null for an engine replica.</summary>
    public ModelDescriptor? Model { get; init; }

    /// <summary>
    /// The name of the node's external engine (<c>emc node --engine NAME=URL</c>) this replica passes
    /// OpenAI requests to; null for a replica of a registered model.
    /// </summary>
    public string? Engine { get; init; }

    /// <summary>Rows per batch (1 = no batching).</summary>
    public int MaxBatch { get; init; } = 1;

    /// <summary>How long a partial batch waits for more requests, in microseconds.</summary>
    public long MaxDelayMicroseconds { get; init; }

    /// <summary>Requests the replica queues before it answers "overloaded" (for an engine: calls it passes on at once).</summary>
    public int MaxQueue { get; init; } = 256;

    /// <summary>
    /// The content key the model is cached under on the node: the model file's hash for a pushed file,
    /// the weights' hash for a zoo model.
    /// </summary>
    public static string ModelKey(ModelDescriptor model)
    {
        ArgumentNullException.ThrowIfNull(model);
        return !string.IsNullOrEmpty(model.File) ? model.File : !string.IsNullOrEmpty(model.Weights) ? model.Weights : model.Model.Script ?? "";
    }

    /// <summary>
    /// The sample shape and class count a TorchScript model is served with. A model trained by the
    /// network records them; a pushed file records only its declared signature, which must then be one
    /// FP32 input [-1, d1(, d2(, d3))] of fixed sample dimensions and one FP32 output [-1, classes] —
    /// the form TorchScript models take in this network. Null, with <paramref name="problem"/>, otherwise.
    /// </summary>
    public static (int[] SampleShape, int Classes)? TorchScriptShape(ModelDescriptor model, out string? problem)
    {
        ArgumentNullException.ThrowIfNull(model);
        problem = null;
        if (model.SampleShape.Length > 0)
        {
            return ([.. model.SampleShape], model.Classes);
        }

        const string Form = "a TorchScript model is served with one FP32 input [-1, d1(, d2, d3)] of fixed sample dimensions and one FP32 output [-1, classes]";
        if (model.Inputs is not [var input] || model.Outputs is not [var output])
        {
            problem = $"{Form}; model {model.Name}:{model.Version} declares {model.Inputs?.Count ?? 0} inputs and {model.Outputs?.Count ?? 0} outputs";
            return null;
        }

        if (input.Datatype != TensorDatatype.Fp32 || input.Shape.Count is < 2 or > 4 || input.Shape.Skip(1).Any(d => d is < 1 or > int.MaxValue))
        {
            problem = $"{Form}; its input is {input.Datatype.ToWireName()} {TensorShape.Format(input.Shape)}";
            return null;
        }

        if (output.Datatype != TensorDatatype.Fp32 || output.Shape.Count != 2 || output.Shape[1] is < 2 or > int.MaxValue)
        {
            problem = $"{Form}; its output is {output.Datatype.ToWireName()} {TensorShape.Format(output.Shape)}";
            return null;
        }

        return ([.. input.Shape.Skip(1).Select(d => (int)d)], (int)output.Shape[1]);
    }
}

/// <summary>Bounds of the serving path between coordinator and nodes.</summary>
public static class ServingLimits
{
    /// <summary>
    /// The largest message on a node's stream: an inference call or reply with all its tensors
    /// (64 MiB, as <see cref="OipLimits.MaxTotalBytes"/>), plus room for the envelope.
    /// </summary>
    public const int MaxTensorBytes = 64 * 1024 * 1024;

    /// <summary>The gRPC message limit of the node stream, both ways: the tensors and 1 MiB for names and shapes.</summary>
    public const int MaxMessageBytes = MaxTensorBytes + (1024 * 1024);
}
