using Emc.Core.Inference;

namespace Emc.Core.Tests.Inference;

public class DeploymentSpecTests
{
    [Theory]
    [InlineData(1, 8)]
    [InlineData(4, 8)]
    [InlineData(16, 32)]
    [InlineData(64, 128)]
    public void EffectiveMaxOngoing_Unset_FillsTwoBatches(int maxBatch, int expected) =>
        Assert.Equal(expected, new DeploymentSpec { Model = "m", MaxBatch = maxBatch }.EffectiveMaxOngoing);

    [Fact]
    public void EffectiveMaxOngoing_Set_IsTakenAsGiven() =>
        Assert.Equal(3, new DeploymentSpec { Model = "m", MaxBatch = 64, MaxOngoingPerReplica = 3 }.EffectiveMaxOngoing);
}
