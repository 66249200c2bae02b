using Emc.Node.Agent;

namespace Emc.Node.Tests.Agent;

public sealed class NodeOptionParserTests
{
    [Fact]
    public void ParseLabels_ValidPairs_ReturnsThem()
    {
        var labels = NodeOptionParser.ParseLabels(["region=eu-west", "tier:gpu=a100_80g", "v.1=2.0", $"{new string('k', 64)}={new string('v', 64)}"]);

        Assert.Equal(4, labels.Count);
        Assert.Equal("eu-west", labels["region"]);
        Assert.Equal("a100_80g", labels["tier:gpu"]);
        Assert.Equal("2.0", labels["v.1"]);
    }

    [Fact]
    public void ParseLabels_None_IsEmpty()
    {
        Assert.Empty(NodeOptionParser.ParseLabels([]));
    }

    [Theory]
    [InlineData("region", "must be key=value")]
    [InlineData("=eu", "label key '' must be 1-64 characters")]
    [InlineData("region=", "label value '' (key 'region') must be 1-64 characters")]
    [InlineData("re gion=eu", "label key 're gion'")]
    [InlineData("region=e/u", "label value 'e/u'")]
    [InlineData("region=eu=1", "label value 'eu=1'")]
    [InlineData("région=eu", "label key 'région'")]
    public void ParseLabels_BadPair_ThrowsWithClearMessage(string pair, string expected)
    {
        var error = Assert.Throws<ArgumentException>(() => NodeOptionParser.ParseLabels([pair]));

        Assert.Contains(expected, error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void ParseLabels_TooLongPart_Throws()
    {
        Assert.Throws<ArgumentException>(() => NodeOptionParser.ParseLabels([$"{new string('k', 65)}=v"]));
        Assert.Throws<ArgumentException>(() => NodeOptionParser.ParseLabels([$"k={new string('v', 65)}"]));
    }

    [Fact]
    public void ParseLabels_KeyTwice_Throws()
    {
        var error = Assert.Throws<ArgumentException>(() => NodeOptionParser.ParseLabels(["region=eu", "region=us"]));

        Assert.Contains("'region' is given more than once", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void ParseLabels_TooMany_Throws()
    {
        var pairs = Enumerable.Range(0, NodeOptionParser.MaxLabels + 1).Select(i => $"k{i}=v");

        Assert.Throws<ArgumentException>(() => NodeOptionParser.ParseLabels(pairs));
    }

    [Theory]
    [InlineData("0", 0)]
    [InlineData("1500", 1500)]
    [InlineData("9223372036854775807", long.MaxValue)]
    public void ParsePrice_WholeNumber_ReturnsIt(string text, long expected)
    {
        Assert.Equal(expected, NodeOptionParser.ParsePrice(text));
    }

    [Theory]
    [InlineData("-1")]
    [InlineData("1.5")]
    [InlineData("abc")]
    [InlineData("")]
    [InlineData(" 5")]
    [InlineData("9223372036854775808")]
    public void ParsePrice_NotAWholeNumberFromZero_Throws(string text)
    {
        var error = Assert.Throws<ArgumentException>(() => NodeOptionParser.ParsePrice(text));

        Assert.Contains("must be a whole number from 0", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Validate_NegativePriceOrBadLabel_Throws()
    {
        Assert.Throws<ArgumentException>(() => new NodeAgentOptions { Price = -1 }.Validate());
        Assert.Throws<ArgumentException>(() => new NodeAgentOptions { Labels = new Dictionary<string, string> { ["region"] = "e u" } }.Validate());
        new NodeAgentOptions { Price = 5, Labels = new Dictionary<string, string> { ["region"] = "eu" } }.Validate();
    }

    [Fact]
    public void ParseEngines_NameAndUrl_ReturnsThem()
    {
        var engines = NodeOptionParser.ParseEngines(["tiny=http://127.0.0.1:8080/v1", "llama-3.1_8b=https://gpu.local/v1/"]);

        Assert.Equal(2, engines.Count);
        Assert.Equal("tiny", engines[0].Name);
        Assert.Equal(new Uri("http://127.0.0.1:8080/v1"), engines[0].BaseUrl);
        Assert.Equal("llama-3.1_8b", engines[1].Name);
    }

    [Theory]
    [InlineData("tiny", "must be NAME=URL")]
    [InlineData("=http://a/v1", "engine name '' is not valid")]
    [InlineData("ti:ny=http://a/v1", "engine name 'ti:ny' is not valid")]
    [InlineData("tiny=ftp://a/v1", "is not an http or https URL")]
    [InlineData("tiny=127.0.0.1:8080", "is not an http or https URL")]
    [InlineData("tiny=/v1", "is not an http or https URL")]
    [InlineData("tiny=http://a/v1?key=1", "without user, query or fragment")]
    public void ParseEngines_BadEngine_ThrowsWithClearMessage(string pair, string expected)
    {
        var error = Assert.Throws<ArgumentException>(() => NodeOptionParser.ParseEngines([pair]));

        Assert.Contains(expected, error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void ParseEngines_NameTooLongForItsLabelOrGivenTwice_Throws()
    {
        Assert.Throws<ArgumentException>(() => NodeOptionParser.ParseEngines([$"{new string('e', 58)}=http://a/v1"]));
        NodeOptionParser.ParseEngines([$"{new string('e', 57)}=http://a/v1"]);
        Assert.Contains("more than once", Assert.Throws<ArgumentException>(() => NodeOptionParser.ParseEngines(["a=http://x/v1", "a=http://y/v1"])).Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Validate_EngineLabelsReservedAndCountedWithLabels()
    {
        var engines = NodeOptionParser.ParseEngines(["tiny=http://127.0.0.1:8080/v1"]);
        new NodeAgentOptions { Engines = engines, Labels = new Dictionary<string, string> { ["region"] = "eu" } }.Validate();

        var reserved = Assert.Throws<ArgumentException>(() => new NodeAgentOptions { Labels = new Dictionary<string, string> { ["engine:tiny"] = "openai" } }.Validate());
        Assert.Contains("reserved for engines", reserved.Message, StringComparison.Ordinal);

        var labels = Enumerable.Range(0, NodeOptionParser.MaxLabels).ToDictionary(i => $"k{i}", _ => "v");
        Assert.Throws<ArgumentException>(() => new NodeAgentOptions { Engines = engines, Labels = labels }.Validate());
    }
}
