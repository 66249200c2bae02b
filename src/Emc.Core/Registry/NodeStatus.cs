namespace Emc.Core.Registry;

/// <summary>Where a node stands with the coordinator.</summary>
public enum NodeStatus
{
    /// <summary>Registered, heartbeating, idle.</summary>
    Connected,

    /// <summary>Connected and running work.</summary>
    Busy,

    /// <summary>Finishing its work before leaving; takes no new work.</summary>
    Draining,

    /// <summary>Stopped heartbeating or its stream broke without a goodbye.</summary>
    Lost,

    /// <summary>Left cleanly after draining.</summary>
    Disconnected,
}
