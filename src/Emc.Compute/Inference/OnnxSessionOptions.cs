namespace Emc.Compute.Inference;

/// <summary>How an <see cref="OnnxSession"/> runs its model.</summary>
public sealed class OnnxSessionOptions
{
    /// <summary>
    /// Threads one operator may use. 0 (the default) lets ONNX Runtime choose, which is one per
    /// physical core; a node that also trains or serves other models should set a share.
    /// </summary>
    public int IntraOpThreads { get; set; }

    /// <summary>
    /// Whether ONNX Runtime's idle pool threads spin waiting for work. Default false: spinning buys
    /// microseconds per operator but burns cores that a node's stream, batcher and other replicas
    /// need, and on a small machine it raised the tail latency of served requests.
    /// </summary>
    public bool AllowSpinning { get; set; }

    /// <summary>
    /// <c>cpu</c> (the default), or <c>cuda</c> / <c>cuda:N</c> for ONNX Runtime's CUDA execution
    /// provider on device N (0 when no index is given), which needs the ONNX Runtime GPU package.
    /// </summary>
    public string Device { get; set; } = "cpu";
}
