using Emc.Core.Hardware;

namespace Emc.Core.Scheduling;

/// <summary>What the scheduler knows of a node when it joins: its devices, labels, price and cache.</summary>
public sealed record NodeCapacity
{
    public required string NodeId { get; init; }

    public IReadOnlyList<DeviceCapacity> Devices { get; init; } = [];

    /// <summary>Labels the operator set, such as region=eu.</summary>
    public IReadOnlyDictionary<string, string> Labels { get; init; } = new Dictionary<string, string>();

    /// <summary>Asking price in ledger micro-units per device-hour; 0 = the network default.</summary>
    public long Price { get; init; }

    /// <summary>Content keys (blob hashes) the node already holds.</summary>
    public IReadOnlyCollection<string> CacheKeys { get; init; } = [];
}

/// <summary>One device of a node as the scheduler sees it.</summary>
public sealed record DeviceCapacity
{
    /// <summary>The device string the node runs work on: "cpu", "cuda:0", ...</summary>
    public required string Name { get; init; }

    public DeviceKind Kind { get; init; }

    /// <summary>Device memory (host memory for a CPU device).</summary>
    public long MemoryBytes { get; init; }

    /// <summary>Measured matmul speed from the admission benchmark.</summary>
    public double Gflops { get; init; }

    /// <summary>How many tasks may share the device; null takes <see cref="SchedulerOptions.TasksPerDevice"/>.</summary>
    public int? Slots { get; init; }
}

/// <summary>A node's live scheduling state. Owned by the scheduler; policies read it.</summary>
public sealed class SchedulerNode
{
    internal SchedulerNode(NodeCapacity capacity, int defaultSlots, int sharedSlots, double reputation)
    {
        Id = capacity.NodeId;
        Reputation = reputation;
        Devices = [.. capacity.Devices.Select(device => new DeviceState(device, device.Slots ?? defaultSlots, sharedSlots))];
        Update(capacity);
    }

    public string Id { get; }

    public IReadOnlyList<DeviceState> Devices { get; }

    public IReadOnlyDictionary<string, string> Labels { get; private set; } = new Dictionary<string, string>();

    public long Price { get; private set; }

    /// <summary>Content keys the node holds.</summary>
    public IReadOnlySet<string> CacheKeys => _cacheKeys;

    /// <summary>0 (unreliable) to 1 (reliable); moved by completions and lost or failed leases.</summary>
    public double Reputation { get; internal set; }

    /// <summary>False while the node is draining or disconnected: it keeps its leases but gets no new work.</summary>
    public bool Schedulable { get; internal set; }

    /// <summary>Tasks placed on the node right now, over all devices.</summary>
    public int UsedSlots { get; internal set; }

    public int TotalSlots { get; private set; }

    /// <summary>Shared tasks (serving replicas) placed on the node right now, over all devices.</summary>
    public int UsedSharedSlots { get; internal set; }

    public int TotalSharedSlots { get; private set; }

    /// <summary>The node's position in the scheduler's list of nodes with a free slot, or -1.</summary>
    internal int FreeIndex { get; set; } = -1;

    /// <summary>The node's position in the scheduler's list of nodes with a free shared place, or -1.</summary>
    internal int SharedFreeIndex { get; set; } = -1;

    /// <summary>Bumped on every change that can make the node fit a demand it did not fit before.</summary>
    internal long Version { get; set; }

    private HashSet<string> _cacheKeys = new(StringComparer.Ordinal);
    private Dictionary<string, int>? _groups;

    /// <summary>Tasks of a <see cref="ResourceDemand.SpreadGroup"/> placed on the node now.</summary>
    public int GroupCount(string group) => _groups is not null && _groups.TryGetValue(group, out var count) ? count : 0;

    internal void CountGroup(string group, int delta)
    {
        _groups ??= new Dictionary<string, int>(StringComparer.Ordinal);
        var count = GroupCount(group) + delta;
        if (count > 0)
        {
            _groups[group] = count;
        }
        else
        {
            _groups.Remove(group);
        }
    }

    internal bool HasFreeSlot => Schedulable && UsedSlots < TotalSlots;

    internal bool HasFreeSharedSlot => Schedulable && UsedSharedSlots < TotalSharedSlots;

    /// <summary>Whether the node has room of the demand's kind: a task slot, or a shared place.</summary>
    internal bool HasRoomFor(ResourceDemand demand) => demand.Shared ? HasFreeSharedSlot : HasFreeSlot;

    /// <summary>The free fraction of the room of the demand's kind, for placement scores.</summary>
    public double FreeFraction(ResourceDemand demand)
    {
        ArgumentNullException.ThrowIfNull(demand);
        var (used, total) = demand.Shared ? (UsedSharedSlots, TotalSharedSlots) : (UsedSlots, TotalSlots);
        return total == 0 ? 0 : 1 - ((double)used / total);
    }

    internal void Update(NodeCapacity capacity)
    {
        Labels = capacity.Labels;
        Price = capacity.Price;
        _cacheKeys = new HashSet<string>(capacity.CacheKeys, StringComparer.Ordinal);
        TotalSlots = Devices.Sum(device => device.Slots);
        TotalSharedSlots = Devices.Sum(device => device.SharedSlots);
    }

    internal void SetCacheKeys(IEnumerable<string> keys) => _cacheKeys = new HashSet<string>(keys, StringComparer.Ordinal);
}

/// <summary>One device's live state.</summary>
public sealed class DeviceState(DeviceCapacity capacity, int slots, int sharedSlots)
{
    public DeviceCapacity Capacity { get; } = capacity;

    public int Slots { get; } = slots;

    public int UsedSlots { get; internal set; }

    /// <summary>Shared tasks (serving replicas) the device holds besides its slots.</summary>
    public int SharedSlots { get; } = sharedSlots;

    public int UsedSharedSlots { get; internal set; }

    public long UsedMemoryBytes { get; internal set; }

    public long FreeMemoryBytes => Capacity.MemoryBytes - UsedMemoryBytes;

    public bool HasFreeSlot => UsedSlots < Slots;

    public bool HasFreeSharedSlot => UsedSharedSlots < SharedSlots;
}
