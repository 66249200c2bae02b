using Emc.Core.Pricing;

namespace Emc.Core.Tests.Pricing;

public sealed class PriceTableTests
{
    [Fact]
    public void TrainingCharge_IsSamplesTimesFlops_PerPetaflop_TimesTheClassFactor_RoundedUp()
    {
        var prices = new PriceTable { ClassFactors = new Dictionary<string, double> { ["cuda-16384"] = 2 } };

        // 60,000 samples of a 1.2 MFLOP model: 7.2e10 FLOPs = 7.2e-5 PFLOP = 72 units.
        Assert.Equal(72, prices.TrainingCharge(60_000, 1_200_000, "cpu-64"));
        Assert.Equal(144, prices.TrainingCharge(60_000, 1_200_000, "cuda-16384"));
        Assert.Equal(1, prices.TrainingCharge(1, 1, null));
        Assert.Equal(0, prices.TrainingCharge(0, 1_000, null));
        Assert.Throws<OverflowException>(() => prices.TrainingCharge(long.MaxValue, long.MaxValue, null));
        Assert.Throws<ArgumentOutOfRangeException>(() => prices.TrainingCharge(-1, 1, null));
    }

    [Fact]
    public void InferenceCharge_PerRequestAndPerToken()
    {
        var prices = new PriceTable();

        Assert.Equal(100, prices.InferenceCharge(1, 0));
        Assert.Equal(200 + 1500, prices.InferenceCharge(2, 1500));
        Assert.Equal(1, new PriceTable { UnitsPerRequest = 0 }.InferenceCharge(1, 1));
    }

    [Theory]
    [InlineData("cpu", 100, "cpu-64")]
    [InlineData("cpu", 127.9, "cpu-64")]
    [InlineData("cpu", 128, "cpu-128")]
    [InlineData("cuda", 20000, "cuda-16384")]
    [InlineData("cpu", 0.5, "cpu-0")]
    [InlineData("cpu", double.NaN, "cpu-0")]
    public void BenchmarkClass_IsKindAndPowerOfTwoBand(string kind, double gflops, string expected) =>
        Assert.Equal(expected, PriceTable.BenchmarkClass(kind, gflops));

    [Fact]
    public void Validate_RefusesNegativePricesAndBadBasisPoints()
    {
        Assert.Empty(new PriceTable().Validate());
        Assert.NotEmpty(new PriceTable { UnitsPerRequest = -1 }.Validate());
        Assert.NotEmpty(new PriceTable { FeeBasisPoints = 10_001 }.Validate());
        Assert.NotEmpty(new PriceTable { ClassFactors = new Dictionary<string, double> { ["x"] = double.NaN } }.Validate());
    }
}
