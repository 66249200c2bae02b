using System.Globalization;

namespace Emc.Ledger;

/// <summary>
/// Amounts in the ledger are whole numbers of the smallest unit, held in a <see cref="long"/>:
/// 1 EMC = 10^6 units, so the largest balance is about 9.2 × 10^12 EMC. There is no floating point
/// anywhere in the ledger; every sum is checked and an overflow is an error, never a wrap.
/// </summary>
public static class LedgerUnits
{
    /// <summary>Units in one EMC (six decimal places, like USDC).</summary>
    public const long PerEmc = 1_000_000;

    /// <summary>Basis points in a whole: fees and slashing shares are given in basis points (1 bp = 0.01%).</summary>
    public const int BasisPointsPerWhole = 10_000;

    /// <summary>Formats an amount of units as EMC with all six decimals, such as "12.500000 EMC".</summary>
    public static string Format(long units)
    {
        var sign = units < 0 ? "-" : string.Empty;
        var magnitude = units < 0 ? -(Int128)units : units;
        var whole = magnitude / PerEmc;
        var fraction = magnitude % PerEmc;
        return string.Create(CultureInfo.InvariantCulture, $"{sign}{whole}.{fraction:D6} EMC");
    }

    /// <summary>The share of <paramref name="amount"/> given in basis points, rounded down.</summary>
    internal static long Share(long amount, int basisPoints) =>
        (long)((Int128)amount * basisPoints / BasisPointsPerWhole);

    /// <summary>Adds two amounts, throwing <see cref="LedgerOverflowException"/> instead of wrapping.</summary>
    internal static long Add(long a, long b, string what)
    {
        var sum = (Int128)a + b;
        if (sum > long.MaxValue || sum < long.MinValue)
        {
            throw new LedgerOverflowException($"{what} would overflow: {a} + {b} does not fit in 64 bits.");
        }

        return (long)sum;
    }
}
