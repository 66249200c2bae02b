namespace Emc.Core.Scheduling;

/// <summary>
/// Ranks the devices that fit a task. The scheduler filters by the task's hard demands first
/// (device kind, free memory, speed, labels, price, a free slot); the policy scores what is left
/// and the highest score wins, ties to the first seen.
/// </summary>
public interface IPlacementPolicy
{
    /// <summary>A short name for logs and the API ("spread", "pack").</summary>
    string Name { get; }

    /// <summary>Scores placing a task with <paramref name="demand"/> on <paramref name="device"/> of <paramref name="node"/>.</summary>
    double Score(ResourceDemand demand, SchedulerNode node, DeviceState device, ClusterSummary cluster);
}

/// <summary>Network-wide figures policies normalise by.</summary>
public sealed class ClusterSummary
{
    /// <summary>The fastest device's matmul speed seen so far, GFLOP/s.</summary>
    public double MaxGflops { get; internal set; } = 1;

    /// <summary>The highest node price seen so far.</summary>
    public long MaxPrice { get; internal set; }
}

/// <summary>Weights of the score terms; every term is scaled to [0, 1] before weighting.</summary>
public sealed record PlacementWeights
{
    /// <summary>Faster devices first (log scale, so a 10× faster GPU does not drown every other term).</summary>
    public double Speed { get; init; } = 1;

    /// <summary>Emptier nodes first (spread) or fuller first (pack).</summary>
    public double Load { get; init; } = 1;

    /// <summary>Nodes that already hold the task's data or model. Highest by default: on a home link, moving a model costs more than anything else here.</summary>
    public double Locality { get; init; } = 2;

    public double Reputation { get; init; } = 1;

    /// <summary>
    /// Nodes running fewer tasks of the demand's <see cref="ResourceDemand.SpreadGroup"/> (1 / (1 + count)).
    /// Higher than every other term together, so a deployment's replicas take distinct nodes while any is free.
    /// </summary>
    public double Spread { get; init; } = 8;

    /// <summary>Cheaper nodes first.</summary>
    public double Price { get; init; } = 0.5;
}

/// <summary>
/// The default policy: spreads work over the network, preferring nodes that cache the task's data,
/// fast devices, reliable nodes and low prices.
/// </summary>
public class SpreadPlacementPolicy(PlacementWeights? weights = null) : IPlacementPolicy
{
    private readonly PlacementWeights _weights = weights ?? new PlacementWeights();

    public virtual string Name => "spread";

    public double Score(ResourceDemand demand, SchedulerNode node, DeviceState device, ClusterSummary cluster)
    {
        var speed = Math.Log2(1 + Math.Max(0, device.Capacity.Gflops)) / Math.Log2(1 + Math.Max(1, cluster.MaxGflops));
        var free = node.FreeFraction(demand);
        var locality = 0.0;
        if (demand.CacheKeys.Count > 0)
        {
            var held = 0;
            foreach (var key in demand.CacheKeys)
            {
                if (node.CacheKeys.Contains(key))
                {
                    held++;
                }
            }

            locality = (double)held / demand.CacheKeys.Count;
        }

        var price = cluster.MaxPrice > 0 ? 1 - (double)node.Price / cluster.MaxPrice : 1;
        return (_weights.Speed * speed)
            + (_weights.Load * LoadTerm(free))
            + (_weights.Locality * locality)
            + (_weights.Reputation * node.Reputation)
            + (_weights.Price * price)
            + (demand.SpreadGroup is { } group ? _weights.Spread / (1 + node.GroupCount(group)) : 0);
    }

    /// <summary>Maps the node's free fraction to the load term.</summary>
    protected virtual double LoadTerm(double freeFraction) => freeFraction;
}

/// <summary>
/// Bin-packing: fills busy nodes first so whole nodes stay free for gangs and large tasks; otherwise
/// scores like <see cref="SpreadPlacementPolicy"/>.
/// </summary>
public sealed class PackPlacementPolicy(PlacementWeights? weights = null) : SpreadPlacementPolicy(weights)
{
    public override string Name => "pack";

    protected override double LoadTerm(double freeFraction) => 1 - freeFraction;
}
