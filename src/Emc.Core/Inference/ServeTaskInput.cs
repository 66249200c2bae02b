using Emc.Core.Training;

namespace Emc.Core.Inference;

/// <summary>
/// The input of a lease of kind <see cref="Kind"/>: everything a node needs to load one replica of a
/// deployment and batch its requests. Serialized as JSON with <see cref="EmcJson.Options"/>.
/// </summary>
public sealed record ServeTaskInput
{
    /// <summary>The task kind of a replica.</summary>
    public const string Kind = "serve";

    /// <summary>The deployment the replica serves.</summary>
    public required string Deployment { get; init; }

    /// <summary>The registered model (name and version) as the registry describes it.</summary>
    public required ModelDescriptor Model { get; init; }

    /// <summary>Rows per batch (1 = no batching).</summary>
    public int MaxBatch { get; init; } = 1;

    /// <summary>How long a partial batch waits for more requests, in microseconds.</summary>
    public long MaxDelayMicroseconds { get; init; }

    /// <summary>Requests the replica queues before it answers "overloaded".</summary>
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
