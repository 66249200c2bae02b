using Emc.Core.Hardware;
using Emc.Core.Registry;

namespace Emc.Coordinator.Registry;

/// <summary>A node's verified registration, as the gateway hands it to the registry.</summary>
public sealed record RegisteredNode(
    string Address,
    string Name,
    string AgentVersion,
    HardwareProfile Hardware,
    BenchmarkReport Benchmark,
    IReadOnlyList<string> Devices)
{
    /// <summary>Operator-set placement labels, such as region=eu.</summary>
    public IReadOnlyDictionary<string, string> Labels { get; init; } = new Dictionary<string, string>();

    /// <summary>Asking price, ledger micro-units per device-hour; 0 = network default.</summary>
    public long Price { get; init; }

    /// <summary>Content keys the node already caches.</summary>
    public IReadOnlyList<string> CacheKeys { get; init; } = [];
}

/// <summary>A change of a node's live state to be written durably.</summary>
public sealed record NodeStateUpdate(string Address, string SessionId, NodeStatus Status, long LastSeenUnixMs);
