namespace Emc.Ledger.Tests;

public sealed class LedgerUnitsTests
{
    [Theory]
    [InlineData(0, "0.000000 EMC")]
    [InlineData(1, "0.000001 EMC")]
    [InlineData(12_500_000, "12.500000 EMC")]
    [InlineData(-1_000_001, "-1.000001 EMC")]
    [InlineData(long.MinValue, "-9223372036854.775808 EMC")]
    public void Format_Units_ShowsSixDecimals(long units, string expected) =>
        Assert.Equal(expected, LedgerUnits.Format(units));

    [Fact]
    public void Add_Overflow_ThrowsInsteadOfWrapping()
    {
        Assert.Equal(long.MaxValue, LedgerUnits.Add(long.MaxValue - 1, 1, "x"));
        Assert.Throws<LedgerOverflowException>(() => LedgerUnits.Add(long.MaxValue, 1, "x"));
        Assert.Throws<LedgerOverflowException>(() => LedgerUnits.Add(long.MinValue, -1, "x"));
    }

    [Fact]
    public void Share_LargeAmount_DoesNotOverflowAndRoundsDown()
    {
        Assert.Equal(long.MaxValue / 2, LedgerUnits.Share(long.MaxValue, 5_000));
        Assert.Equal(0, LedgerUnits.Share(99, 100));
        Assert.Equal(1, LedgerUnits.Share(100, 100));
    }
}
