namespace Emc.Node.Agent;

/// <summary>Settings of the node agent (`emc node`).</summary>
public sealed class NodeAgentOptions
{
    /// <summary>The coordinator's API address. Default: EMC_COORDINATOR or http://127.0.0.1:7070.</summary>
    public Uri Coordinator { get; set; } = new("http://127.0.0.1:7070");

    /// <summary>Display name. Default: the host name.</summary>
    public string Name { get; set; } = Environment.MachineName;

    /// <summary>Folder of the node key and caches. Default ~/.emc/node.</summary>
    public string DataDirectory { get; set; } = Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".emc", "node");

    /// <summary>Devices offered to the network. Default: cpu.</summary>
    public IReadOnlyList<string> Devices { get; set; } = ["cpu"];

    /// <summary>First reconnect delay. Default 1 s.</summary>
    public TimeSpan ReconnectInitialDelay { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>Longest reconnect delay. Default 30 s.</summary>
    public TimeSpan ReconnectMaxDelay { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>Bytes moved each way by the link benchmark. Default 4 MiB.</summary>
    public int LinkBenchmarkBytes { get; set; } = 4 << 20;

    /// <summary>How long draining may take before the node leaves anyway. Default 30 s.</summary>
    public TimeSpan DrainTimeout { get; set; } = TimeSpan.FromSeconds(30);
}
