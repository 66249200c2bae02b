using Emc.Core.Hardware;

namespace Emc.Core.Registry;

/// <summary>A node as the API shows it.</summary>
public sealed record NodeView(
    string Id,
    string Name,
    NodeStatus Status,
    string AgentVersion,
    IReadOnlyList<string> Devices,
    HardwareProfile Hardware,
    BenchmarkReport Benchmark,
    DateTimeOffset FirstSeen,
    DateTimeOffset LastSeen,
    DateTimeOffset RegisteredAt,
    int Registrations);
