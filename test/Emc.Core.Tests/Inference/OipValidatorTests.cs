using Emc.Core.Inference;

namespace Emc.Core.Tests.Inference;

public class OipValidatorTests
{
    private static readonly ModelMetadata Model = new()
    {
        Name = "clf",
        Platform = "onnx_onnxv1",
        Inputs = [new TensorMetadata("image", TensorDatatype.Fp32, [-1, 3, 4]), new TensorMetadata("mask", TensorDatatype.Bool, [-1])],
        Outputs = [new TensorMetadata("logits", TensorDatatype.Fp32, [-1, 10]), new TensorMetadata("label", TensorDatatype.Bytes, [-1])],
    };

    private static InferTensor Image(long batch, long channels = 3) =>
        InferTensor.Create<float>("image", [batch, channels, 4], new float[batch * channels * 4]);

    private static InferTensor Mask(long batch) => InferTensor.Create<bool>("mask", [batch], new bool[batch]);

    [Theory]
    [InlineData(1)]
    [InlineData(5)]
    [InlineData(0)]
    public void Validate_MatchingRequest_HasNoProblems(long batch)
    {
        var request = new InferRequest { Inputs = [Mask(batch), Image(batch)], Outputs = [new InferRequestedOutput("label")] };

        Assert.Empty(OipValidator.Validate(request, Model));
        OipValidator.EnsureValid(request, Model);
    }

    [Fact]
    public void Validate_MissingInput_IsNamed()
    {
        var request = new InferRequest { Inputs = [Image(1)] };

        Assert.Equal(["input 'mask' of model 'clf' is missing"], OipValidator.Validate(request, Model));
    }

    [Fact]
    public void Validate_UnknownInput_ListsTheModelsInputs()
    {
        var request = new InferRequest { Inputs = [Image(1), Mask(1), InferTensor.Create<int>("extra", [1], [1])] };

        Assert.Equal(["input 'extra' is not an input of model 'clf' (its inputs: image, mask)"], OipValidator.Validate(request, Model));
    }

    [Fact]
    public void Validate_WrongDatatype_IsReported()
    {
        var request = new InferRequest { Inputs = [Image(1), InferTensor.Create<byte>("mask", [1], [1])] };

        Assert.Equal(["input 'mask' is UINT8 but model 'clf' expects BOOL"], OipValidator.Validate(request, Model));
    }

    [Fact]
    public void Validate_WrongRank_IsReported()
    {
        var request = new InferRequest { Inputs = [InferTensor.Create<float>("image", [3, 4], new float[12]), Mask(1)] };

        Assert.Equal(["input 'image' has shape [3,4] (rank 2) but model 'clf' expects rank 3: [-1,3,4]"], OipValidator.Validate(request, Model));
    }

    [Fact]
    public void Validate_WrongFixedDimension_IsReported()
    {
        var request = new InferRequest { Inputs = [Image(2, channels: 1), Mask(2)] };

        Assert.Equal(["input 'image' has shape [2,1,4] but model 'clf' expects [-1,3,4]: dimension 1 must be 3"], OipValidator.Validate(request, Model));
    }

    [Fact]
    public void Validate_UnknownOrRepeatedOutput_IsReported()
    {
        var request = new InferRequest
        {
            Inputs = [Image(1), Mask(1)],
            Outputs = [new InferRequestedOutput("probs"), new InferRequestedOutput("label"), new InferRequestedOutput("label")],
        };

        Assert.Equal(
            ["output 'probs' is not an output of model 'clf' (its outputs: logits, label)", "output 'label' is requested more than once"],
            OipValidator.Validate(request, Model));
    }

    [Fact]
    public void Validate_RepeatedInput_IsReported()
    {
        var request = new InferRequest { Inputs = [Image(1), Mask(1), Mask(1)] };

        Assert.Equal(["input 'mask' is given more than once"], OipValidator.Validate(request, Model));
    }

    [Fact]
    public void EnsureValid_EveryProblem_InOne400()
    {
        var request = new InferRequest { Inputs = [InferTensor.Create<double>("image", [1, 3, 4], new double[12]), InferTensor.Create<int>("x", [1], [1])] };

        var error = Assert.Throws<OipException>(() => OipValidator.EnsureValid(request, Model));

        Assert.Equal(400, error.StatusCode);
        Assert.Equal(
            "input 'image' is FP64 but model 'clf' expects FP32; input 'mask' of model 'clf' is missing; input 'x' is not an input of model 'clf' (its inputs: image, mask)",
            error.Message);
    }

    [Fact]
    public void Validate_ModelWithoutInputs_SaysNone()
    {
        var model = new ModelMetadata { Name = "const", Platform = "p", Inputs = [], Outputs = [] };
        var request = new InferRequest { Inputs = [Mask(1)] };

        Assert.Equal(["input 'mask' is not an input of model 'const' (its inputs: none)"], OipValidator.Validate(request, model));
    }
}
