using System.Globalization;
using System.Text;
using Emc.Core.Hardware;

namespace Emc.Core.Scheduling;

/// <summary>What one task needs from the device it runs on. Hard constraints except <see cref="CacheKeys"/>.</summary>
public sealed record ResourceDemand
{
    /// <summary>The device kind; null runs on any.</summary>
    public DeviceKind? Device { get; init; }

    /// <summary>Free device memory the task needs (host memory for a CPU device). 0 = no requirement.</summary>
    public long DeviceMemoryBytes { get; init; }

    /// <summary>Minimum measured matmul speed of the device, GFLOP/s. 0 = no requirement.</summary>
    public double MinGflops { get; init; }

    /// <summary>Node labels that must all match exactly, such as region=eu.</summary>
    public IReadOnlyDictionary<string, string> Labels { get; init; } = new Dictionary<string, string>();

    /// <summary>Highest node price the job accepts, in ledger micro-units per device-hour. 0 = any price.</summary>
    public long MaxPrice { get; init; }

    /// <summary>
    /// Node ids the task may run on; empty runs on any node. A training round names the nodes it
    /// planned for, because each member's share of the work is sized to that node's speed.
    /// </summary>
    public IReadOnlyList<string> Nodes { get; init; } = [];

    /// <summary>Content keys (blob hashes of data or model) the task reads; nodes that cache them are preferred.</summary>
    public IReadOnlyList<string> CacheKeys { get; init; } = [];

    /// <summary>
    /// A long-running, light task that shares its device with other work, such as a serving replica:
    /// it takes its memory and one of the device's shared places
    /// (<see cref="SchedulerOptions.SharedTasksPerDevice"/>) but no task slot, so a node serves several
    /// models and still trains. Gangs are never shared.
    /// </summary>
    public bool Shared { get; init; }

    /// <summary>
    /// Tasks naming the same group are spread over nodes: a node already running tasks of the group
    /// scores lower (<see cref="PlacementWeights.Spread"/>), so a deployment's replicas land on distinct
    /// nodes while there are any, and one lost node costs one replica. A preference, not a constraint.
    /// </summary>
    public string? SpreadGroup { get; init; }

    /// <summary>
    /// A key equal for demands that fit exactly the same nodes. Tasks with the same key are blocked or
    /// unblocked together, which lets one scheduling pass skip them all at once.
    /// </summary>
    internal string FeasibilityKey()
    {
        var builder = new StringBuilder();
        builder.Append(Device?.ToString() ?? "any").Append('|')
            .Append(DeviceMemoryBytes.ToString(CultureInfo.InvariantCulture)).Append('|')
            .Append(MinGflops.ToString("R", CultureInfo.InvariantCulture)).Append('|')
            .Append(MaxPrice.ToString(CultureInfo.InvariantCulture));
        if (Shared)
        {
            builder.Append("|shared");
        }

        foreach (var (key, value) in Labels.OrderBy(pair => pair.Key, StringComparer.Ordinal))
        {
            builder.Append('|').Append(key).Append('=').Append(value);
        }

        foreach (var node in Nodes.Order(StringComparer.Ordinal))
        {
            builder.Append("|@").Append(node);
        }

        return builder.ToString();
    }

    /// <summary>Human description used in reasons: "cuda, ≥ 12 GiB device memory".</summary>
    public override string ToString()
    {
        var parts = new List<string> { Device is null ? "any device" : Device.Value.ToString().ToLowerInvariant() };
        if (DeviceMemoryBytes > 0)
        {
            parts.Add($"≥ {Bytes.Format(DeviceMemoryBytes)} device memory");
        }

        if (MinGflops > 0)
        {
            parts.Add($"≥ {MinGflops.ToString("0.#", CultureInfo.InvariantCulture)} GFLOP/s");
        }

        parts.AddRange(Labels.OrderBy(pair => pair.Key, StringComparer.Ordinal).Select(pair => $"{pair.Key}={pair.Value}"));
        if (Nodes.Count > 0)
        {
            parts.Add($"on {string.Join(" or ", Nodes)}");
        }

        if (MaxPrice > 0)
        {
            parts.Add($"price ≤ {MaxPrice.ToString(CultureInfo.InvariantCulture)}");
        }

        if (Shared)
        {
            parts.Add("shared");
        }

        return string.Join(", ", parts);
    }
}

/// <summary>Formats byte counts the way people read them.</summary>
public static class Bytes
{
    private const long GiB = 1L << 30;
    private const long MiB = 1L << 20;

    /// <summary>"12 GiB", "1.5 GiB", "512 MiB", "100 B".</summary>
    public static string Format(long bytes) => bytes switch
    {
        >= GiB => $"{((double)bytes / GiB).ToString("0.#", CultureInfo.InvariantCulture)} GiB",
        >= MiB => $"{((double)bytes / MiB).ToString("0.#", CultureInfo.InvariantCulture)} MiB",
        _ => $"{bytes.ToString(CultureInfo.InvariantCulture)} B",
    };
}
