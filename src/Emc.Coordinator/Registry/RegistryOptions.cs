using System.ComponentModel.DataAnnotations;

namespace Emc.Coordinator.Registry;

/// <summary>Liveness and registration settings of the node registry.</summary>
public sealed class RegistryOptions
{
    /// <summary>How often nodes send heartbeats. Default 5 s.</summary>
    [Range(typeof(TimeSpan), "00:00:00.050", "00:05:00")]
    public TimeSpan HeartbeatInterval { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>
    /// How long after its last heartbeat a node is marked lost. Default 12 s: two missed beats and a
    /// margin, so that with the check period a silent node is marked lost within 15 s.
    /// </summary>
    [Range(typeof(TimeSpan), "00:00:00.100", "01:00:00")]
    public TimeSpan HeartbeatTimeout { get; set; } = TimeSpan.FromSeconds(12);

    /// <summary>How often each live node's deadline is checked. Default 2 s.</summary>
    [Range(typeof(TimeSpan), "00:00:00.050", "00:01:00")]
    public TimeSpan LivenessCheckPeriod { get; set; } = TimeSpan.FromSeconds(2);

    /// <summary>How long a node has to answer its registration challenge. Default 30 s.</summary>
    [Range(typeof(TimeSpan), "00:00:01", "00:10:00")]
    public TimeSpan ChallengeLifetime { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>How often live state (status, last seen) is flushed to the database. Default 250 ms.</summary>
    [Range(typeof(TimeSpan), "00:00:00.010", "00:01:00")]
    public TimeSpan FlushInterval { get; set; } = TimeSpan.FromMilliseconds(250);
}
