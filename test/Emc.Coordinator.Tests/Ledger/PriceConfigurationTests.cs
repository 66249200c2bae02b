using Emc.Coordinator.Hosting;
using Emc.Coordinator.Ledger;
using Emc.Coordinator.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;

namespace Emc.Coordinator.Tests.Ledger;

/// <summary>The price table and payment timing come from the coordinator's configuration: {data}/coordinator.json.</summary>
public sealed class PriceConfigurationTests
{
    [Fact]
    public async Task CoordinatorJson_SetsThePricesAndTheAuditWindow()
    {
        var directory = Directory.CreateTempSubdirectory("emc-prices-").FullName;
        await File.WriteAllTextAsync(Path.Combine(directory, "coordinator.json"), """
            {
              "Prices": { "UnitsPerRequest": 250, "UnitsPerThousandTokens": 4000, "FeeBasisPoints": 1000, "MinimumStake": 5000000, "ClassFactors": { "cuda-16384": 2.5 } },
              "Payments": { "AuditWindow": "00:00:05" }
            }
            """);
        await using var coordinator = await TestCoordinator.StartAsync(directory);
        var ledger = coordinator.Host.Services.GetRequiredService<LedgerService>();
        Assert.Equal(250, ledger.Prices.UnitsPerRequest);
        Assert.Equal(4000, ledger.Prices.UnitsPerThousandTokens);
        Assert.Equal(1000, ledger.Prices.FeeBasisPoints);
        Assert.Equal(5_000_000, ledger.Prices.MinimumStake);
        Assert.Equal(2.5, ledger.Prices.FactorOf("cuda-16384"));
        Assert.Equal(1, ledger.Prices.FactorOf("cpu-64"));
        Assert.Equal(250 + 8, ledger.Prices.InferenceCharge(1, 2));
        Assert.Equal(TimeSpan.FromSeconds(5), coordinator.Host.Services.GetRequiredService<PaymentOptions>().AuditWindow);
    }

    [Theory]
    [InlineData("""{ "Prices": { "UnitsPerRequest": -1 } }""", "must not be negative")]
    [InlineData("""{ "Prices": { "FeeBasisPoints": 10000 } }""", "basis points")]
    [InlineData("""{ "Prices": { "UnitPerRequest": 5 } }""", "UnitPerRequest")]
    [InlineData("""{ "Prices": { "UnitsPerRequest": "many" } }""", "Prices")]
    [InlineData("""{ "Prices": { "ClassFactors": { "cpu-64": -2 } } }""", "cpu-64")]
    [InlineData("""{ "Payments": { "AuditWindow": "-00:00:05" } }""", "audit window")]
    [InlineData("""{ "Prices": { "UnitsPerRequest": 5 """, "coordinator.json")]
    public void BadSettings_RefuseToStart_SayingWhatIsWrong(string json, string said)
    {
        var directory = Directory.CreateTempSubdirectory("emc-prices-").FullName;
        File.WriteAllText(Path.Combine(directory, "coordinator.json"), json);
        var error = Assert.Throws<ArgumentException>(() => CoordinatorHost.Create(new CoordinatorOptions { DataDirectory = directory, Urls = "http://127.0.0.1:0", GrpcUrls = "http://127.0.0.1:0" }));
        Assert.Contains(said, error.Message, StringComparison.Ordinal);
    }
}
