using Emc.Compute.Inference;
using Emc.Core.Inference;
using Xunit.Abstractions;
using DataType = Emc.Compute.Onnx.TensorProto.Types.DataType;

namespace Emc.Compute.Tests.Inference;

public sealed class OnnxModelInfoTests(ITestOutputHelper output)
{
    [Fact]
    public void Read_HandBuiltModel_DescribesInputsOutputsOpsetAndProducer()
    {
        var info = OnnxModelInfo.Read(TinyOnnx.Identity());

        var input = Assert.Single(info.Inputs);
        Assert.Equal("x", input.Name);
        Assert.Equal(TensorDatatype.Fp32, input.Datatype);
        Assert.Equal([-1L, 2], input.Shape);
        var output = Assert.Single(info.Outputs);
        Assert.Equal(new OnnxTensorInfo("y", TensorDatatype.Fp32, output.Shape), output);
        Assert.Equal([-1L, 2], output.Shape);
        Assert.Equal(TinyOnnx.Opset, info.Opset);
        Assert.Equal(TinyOnnx.IrVersion, info.IrVersion);
        Assert.Equal("emc-tests", info.Producer);
    }

    [Fact]
    public void Read_Path_ReadsTheFile()
    {
        var path = Path.GetTempFileName();
        try
        {
            File.WriteAllBytes(path, TinyOnnx.Identity());
            Assert.Equal("x", Assert.Single(OnnxModelInfo.Read(path).Inputs).Name);
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(2)]
    public void Read_Garbage_SaysNotAnOnnxModel(int seed)
    {
        var garbage = new byte[4096];
        new Random(seed).NextBytes(garbage);

        var ex = Assert.Throws<InvalidDataException>(() => OnnxModelInfo.Read(garbage));
        output.WriteLine(ex.Message);

        Assert.StartsWith("not an ONNX model", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Read_TextAndEmptyFiles_SayNotAnOnnxModel()
    {
        var text = "{\"model\": \"this is JSON, not ONNX\"}"u8.ToArray();

        Assert.StartsWith("not an ONNX model", Assert.Throws<InvalidDataException>(() => OnnxModelInfo.Read(text)).Message, StringComparison.Ordinal);
        Assert.StartsWith("not an ONNX model", Assert.Throws<InvalidDataException>(() => OnnxModelInfo.Read([])).Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(0.5)]
    [InlineData(0.9)]
    [InlineData(0.99)]
    public void Read_TruncatedModel_SaysTruncated(double keep)
    {
        var model = TinyOnnx.Identity();
        var truncated = model.AsSpan(0, (int)(model.Length * keep)).ToArray();

        var ex = Assert.Throws<InvalidDataException>(() => OnnxModelInfo.Read(truncated));
        output.WriteLine(ex.Message);

        Assert.Contains("truncated", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Read_AbsurdOpset_SaysUnsupportedOpsetAndTheSupportedMaximum()
    {
        var ex = Assert.Throws<InvalidDataException>(() => OnnxModelInfo.Read(TinyOnnx.Identity(opset: 9999)));
        output.WriteLine(ex.Message);

        Assert.Matches(@"^unsupported opset 9999 \(this build supports up to \d+\)", ex.Message);
    }

    [Fact]
    public void Read_FutureIrVersion_SaysUnsupportedIrVersion()
    {
        var graph = new OnnxGraphBuilder("identity");
        var x = graph.Input("x", DataType.Float, 2);
        graph.Output(graph.Node("id", "Identity", [x]), "y", DataType.Float, 2);

        var ex = Assert.Throws<InvalidDataException>(() => OnnxModelInfo.Read(TinyOnnx.Model(graph, irVersion: 99)));
        output.WriteLine(ex.Message);

        Assert.Matches(@"^unsupported ONNX IR version 99 \(this build supports up to \d+\)", ex.Message);
    }
}
