namespace Emc.Coordinator.Persistence;

/// <summary>A node's durable registry row. Hardware and benchmark are kept as JSON documents.</summary>
public sealed class NodeRecord
{
    public required string Address { get; set; }
    public required string Name { get; set; }
    public required string Status { get; set; }
    public string AgentVersion { get; set; } = "";
    public required string HardwareJson { get; set; }
    public required string BenchmarkJson { get; set; }
    public required string DevicesJson { get; set; }
    public string? RemoteEndpoint { get; set; }
    public string? SessionId { get; set; }
    public long FirstSeenUnixMs { get; set; }
    public long LastSeenUnixMs { get; set; }
    public long RegisteredUnixMs { get; set; }
    public int Registrations { get; set; }
}

/// <summary>A coordinator-wide setting (for example its id), kept across restarts.</summary>
public sealed class SettingRecord
{
    public required string Key { get; set; }
    public required string Value { get; set; }
}
