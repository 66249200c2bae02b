using System.Text.Json;
using Emc.Core.Inference;
using Emc.Core.Training;

namespace Emc.Core.Tests.Training;

/// <summary>Model names, NAME[:VERSION] references (what `emc model show|pull|rm|export` parse) and NAME:DATATYPE:SHAPE signatures.</summary>
public sealed class ModelNamesTests
{
    [Theory]
    [InlineData("fmnist", "fmnist", null)]
    [InlineData("fmnist:3", "fmnist", 3)]
    [InlineData("my-model_v2.1:12", "my-model_v2.1", 12)]
    public void TryParseReference_NameOrNameVersion_Parses(string text, string name, int? version)
    {
        Assert.True(ModelNames.TryParseReference(text, out var parsedName, out var parsedVersion));
        Assert.Equal((name, version), (parsedName, parsedVersion));
    }

    [Theory]
    [InlineData("")]
    [InlineData(":3")]
    [InlineData("a:")]
    [InlineData("a:0")]
    [InlineData("a:-1")]
    [InlineData("a:+1")]
    [InlineData("a:b")]
    [InlineData("a:1:2")]
    [InlineData("a b:1")]
    [InlineData("a:99999999999")]
    public void TryParseReference_Other_IsFalse(string text) =>
        Assert.False(ModelNames.TryParseReference(text, out _, out _));

    [Theory]
    [InlineData("a", true)]
    [InlineData("A.b_c-9", true)]
    [InlineData("has:colon", false)]
    [InlineData("", false)]
    [InlineData("sp ace", false)]
    [InlineData("ünï", false)]
    public void IsValid_AllowsLettersDigitsDotUnderscoreDashOnly(string name, bool valid) =>
        Assert.Equal(valid, ModelNames.IsValid(name));

    [Fact]
    public void IsValid_LongestName_Is64() =>
        Assert.Equal((true, false), (ModelNames.IsValid(new string('a', 64)), ModelNames.IsValid(new string('a', 65))));

    [Theory]
    [InlineData("input:FP32:-1,1,28,28", "input", TensorDatatype.Fp32, new long[] { -1, 1, 28, 28 })]
    [InlineData("tokens:INT64:-1,-1", "tokens", TensorDatatype.Int64, new long[] { -1, -1 })]
    [InlineData("x:0:FP16:8", "x:0", TensorDatatype.Fp16, new long[] { 8 })]
    [InlineData("scale:FP64:", "scale", TensorDatatype.Fp64, new long[0])]
    public void Signature_TryParse_ReadsNameDatatypeShape(string text, string name, TensorDatatype datatype, long[] shape)
    {
        Assert.True(ModelSignature.TryParse(text, out var tensor, out var error), error);
        Assert.Equal((name, datatype), (tensor.Name, tensor.Datatype));
        Assert.Equal(shape, tensor.Shape);
        Assert.Equal(text, ModelSignature.Format(tensor));
    }

    [Theory]
    [InlineData("input", "NAME:DATATYPE:SHAPE")]
    [InlineData("input:FP32", "NAME:DATATYPE:SHAPE")]
    [InlineData(":FP32:1", "NAME:DATATYPE:SHAPE")]
    [InlineData("input:fp32:1", "unknown datatype 'fp32'")]
    [InlineData("input:FP32:0", "'0' is not a dimension")]
    [InlineData("input:FP32:-2", "'-2' is not a dimension")]
    [InlineData("input:FP32:1,,2", "'' is not a dimension")]
    public void Signature_TryParse_Bad_SaysWhy(string text, string reason)
    {
        Assert.False(ModelSignature.TryParse(text, out _, out var error));
        Assert.Contains(reason, error, StringComparison.Ordinal);
    }

    [Fact]
    public void Json_WritesDatatypesByProtocolName()
    {
        var json = JsonSerializer.Serialize(new TensorMetadata("x", TensorDatatype.UInt8, [1]), EmcJson.Options);

        Assert.Equal("""{"name":"x","datatype":"UINT8","shape":[1]}""", json);
        Assert.Equal(TensorDatatype.UInt8, JsonSerializer.Deserialize<TensorMetadata>(json, EmcJson.Options)!.Datatype);
        Assert.Throws<JsonException>(() => JsonSerializer.Deserialize<TensorMetadata>("""{"name":"x","datatype":"u-int8","shape":[]}""", EmcJson.Options));
    }

    [Fact]
    public void Trained_ClassifierAndText_HaveTheExportersNames()
    {
        var classifier = new ModelDescriptor { Name = "c", Format = "emc-zoo", Model = new ModelSpec { Name = "cnn" }, SampleShape = [28, 28], Classes = 10, Weights = "" };
        var text = classifier with { IsText = true, SampleShape = [], Classes = 256 };

        Assert.Equal(["input:FP32:-1,28,28"], ModelSignature.TrainedInputs(classifier).Select(ModelSignature.Format));
        Assert.Equal(["logits:FP32:-1,10"], ModelSignature.TrainedOutputs(classifier).Select(ModelSignature.Format));
        Assert.Equal(["input:INT64:-1,-1"], ModelSignature.TrainedInputs(text).Select(ModelSignature.Format));
        Assert.Equal(["logits:FP32:-1,-1,256"], ModelSignature.TrainedOutputs(text).Select(ModelSignature.Format));
    }
}
