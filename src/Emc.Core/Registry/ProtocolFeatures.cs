namespace Emc.Core.Registry;

/// <summary>
/// Optional parts of the node protocol a node says it understands, in its registration's
/// <c>features</c>. The coordinator uses a feature only with nodes that list it, so nodes of an
/// earlier version keep working.
/// </summary>
public static class ProtocolFeatures
{
    /// <summary>The node takes <c>InferCalls</c>: several inference calls in one stream message.</summary>
    public const string InferBatches = "infer-batches";
}
