using System.Globalization;

namespace Emc.Core.Pricing;

/// <summary>
/// What work costs and what a node must put at stake, in ledger units (1 EMC = 1,000,000 units). Read from
/// the coordinator's configuration (section <c>Prices</c>); the defaults suit a test network.
/// </summary>
/// <remarks>
/// Training is paid per verified node-round for the compute it holds: samples × the model's training FLOPs
/// per sample, priced per PFLOP (10^15 FLOPs) and multiplied by the factor of the node's benchmark class,
/// so two nodes of one class doing the same work earn the same, whatever their clock. Inference is paid per
/// answered request, and for language models per token as well. The protocol keeps
/// <see cref="FeeBasisPoints"/> of every payment for the treasury.
/// </remarks>
public sealed record PriceTable
{
    /// <summary>Units per PFLOP of verified training compute. Default 1,000,000 (1 EMC).</summary>
    public long TrainingUnitsPerPetaflop { get; init; } = 1_000_000;

    /// <summary>Units per answered inference request. Default 100.</summary>
    public long UnitsPerRequest { get; init; } = 100;

    /// <summary>Units per 1,000 tokens (prompt and completion) of a language model. Default 1,000.</summary>
    public long UnitsPerThousandTokens { get; init; } = 1_000;

    /// <summary>The protocol's fee, in basis points of each payment, to the treasury. Default 500 (5 %).</summary>
    public int FeeBasisPoints { get; init; } = 500;

    /// <summary>The stake a node needs before it takes paid work. Default 10 EMC.</summary>
    public long MinimumStake { get; init; } = 10_000_000;

    /// <summary>The share of its stake a node loses per proven fault, in basis points. Default 2,000 (20 %).</summary>
    public int SlashBasisPoints { get; init; } = 2_000;

    /// <summary>
    /// Price factor per benchmark class (<see cref="BenchmarkClass"/>); a class not listed pays 1. Default:
    /// every class 1, so the price is per FLOP whatever the hardware.
    /// </summary>
    public IReadOnlyDictionary<string, double> ClassFactors { get; init; } = new Dictionary<string, double>(StringComparer.Ordinal);

    /// <summary>The errors in these settings, empty when they are usable.</summary>
    public IReadOnlyList<string> Validate()
    {
        var errors = new List<string>();
        if (TrainingUnitsPerPetaflop < 0 || UnitsPerRequest < 0 || UnitsPerThousandTokens < 0 || MinimumStake < 0)
        {
            errors.Add("prices and the minimum stake must not be negative");
        }

        if (FeeBasisPoints is < 0 or >= 10_000 || SlashBasisPoints is < 0 or > 10_000)
        {
            errors.Add("the fee and the slash are basis points: the fee 0 to 9999, the slash 0 to 10000");
        }

        foreach (var (name, factor) in ClassFactors)
        {
            if (!(factor >= 0 && factor <= 1000))
            {
                errors.Add($"the factor of class '{name}' must be in [0, 1000], not {factor.ToString(CultureInfo.InvariantCulture)}");
            }
        }

        return errors;
    }

    /// <summary>
    /// The class a device's admission benchmark puts it in: its kind and a power-of-two band of its matmul
    /// speed, such as <c>cpu-64</c> (64–127 GFLOP/s) or <c>cuda-16384</c>. Nodes whose benchmarks differ by
    /// run-to-run noise land in the same band or the next one.
    /// </summary>
    public static string BenchmarkClass(string deviceKind, double gflops)
    {
        ArgumentException.ThrowIfNullOrEmpty(deviceKind);
        var band = gflops >= 1 && double.IsFinite(gflops) ? 1L << Math.Min(40, (int)Math.Floor(Math.Log2(gflops))) : 0;
        return $"{deviceKind}-{band.ToString(CultureInfo.InvariantCulture)}";
    }

    /// <summary>The price factor of <paramref name="benchmarkClass"/>.</summary>
    public double FactorOf(string? benchmarkClass) =>
        benchmarkClass is not null && ClassFactors.TryGetValue(benchmarkClass, out var factor) ? factor : 1;

    /// <summary>What <paramref name="samples"/> samples of a model costing <paramref name="flopsPerSample"/> training FLOPs each are worth, rounded up.</summary>
    public long TrainingCharge(long samples, long flopsPerSample, string? benchmarkClass)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(samples);
        ArgumentOutOfRangeException.ThrowIfNegative(flopsPerSample);
        var flops = (decimal)samples * flopsPerSample;
        var units = Math.Ceiling(flops * TrainingUnitsPerPetaflop / 1e15m * (decimal)FactorOf(benchmarkClass));
        return units > long.MaxValue ? throw new OverflowException("the training charge does not fit in a ledger amount") : (long)units;
    }

    /// <summary>What <paramref name="requests"/> answered requests with <paramref name="tokens"/> tokens in all are worth, rounded up.</summary>
    public long InferenceCharge(long requests, long tokens)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(requests);
        ArgumentOutOfRangeException.ThrowIfNegative(tokens);
        var units = ((decimal)requests * UnitsPerRequest) + Math.Ceiling((decimal)tokens * UnitsPerThousandTokens / 1000m);
        return units > long.MaxValue ? throw new OverflowException("the inference charge does not fit in a ledger amount") : (long)units;
    }
}
