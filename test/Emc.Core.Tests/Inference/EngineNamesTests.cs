using Emc.Core.Inference;
using Emc.Core.Scheduling;

namespace Emc.Core.Tests.Inference;

public sealed class EngineNamesTests
{
    [Theory]
    [InlineData("tiny", true)]
    [InlineData("Llama-3.1_8B.q4", true)]
    [InlineData("", false)]
    [InlineData("ti:ny", false)]
    [InlineData("ti ny", false)]
    [InlineData("tiny/7b", false)]
    public void IsValid_ModelNameRules(string name, bool valid)
    {
        Assert.Equal(valid, EngineNames.IsValid(name));
    }

    [Fact]
    public void IsValid_LongestNameStillMakesAValidLabel()
    {
        var longest = new string('e', EngineNames.MaxLength);

        Assert.True(EngineNames.IsValid(longest));
        Assert.False(EngineNames.IsValid(longest + "e"));
        Assert.Null(PlacementAttributes.CheckLabels(new Dictionary<string, string> { [EngineNames.LabelKey(longest)] = EngineNames.LabelValue }));
        Assert.Equal("engine:tiny", EngineNames.LabelKey("tiny"));
    }
}
