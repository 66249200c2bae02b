using Emc.Core.Training;

namespace Emc.Compute.Tests.Training;

public sealed class ModelSpecValidatorTests
{
    private static readonly string _hash = new('a', 64);

    [Theory]
    [InlineData("mlp", false)]
    [InlineData("cnn", false)]
    [InlineData("resnet-small", false)]
    [InlineData("gpt-small", true)]
    public void Validate_DefaultsOnTheirData_AreValid(string name, bool isText)
    {
        var errors = ModelSpecValidator.Validate(new ModelSpec { Name = name }, isText ? [] : [28, 28], 10, isText);

        Assert.Empty(errors);
    }

    [Fact]
    public void Validate_TorchScriptWithHash_IsValid()
    {
        Assert.Empty(ModelSpecValidator.Validate(new ModelSpec { Name = ModelSpec.TorchScript, Script = _hash }, [1, 28, 28], 10, false));
    }

    public static TheoryData<ModelSpec, int[], int, bool, string> Invalid => new()
    {
        { new ModelSpec { Name = "transformer" }, [28, 28], 10, false, "model name must be one of" },
        { new ModelSpec { Name = ModelSpec.GptSmall }, [28, 28], 10, false, "gpt-small trains on text" },
        { new ModelSpec { Name = ModelSpec.Mlp }, [], 0, true, "mlp is a classification model" },
        { new ModelSpec { Name = ModelSpec.TorchScript, Script = _hash }, [], 0, true, "classification model" },
        { new ModelSpec { Name = ModelSpec.Mlp, Hidden = [0] }, [784], 10, false, "widths must be between 1 and 65536" },
        { new ModelSpec { Name = ModelSpec.Mlp, Hidden = [70_000] }, [784], 10, false, "widths must be between 1 and 65536" },
        { new ModelSpec { Name = ModelSpec.Mlp, Hidden = [] }, [784], 10, false, "hidden must list 1 to 16" },
        { new ModelSpec { Name = ModelSpec.Mlp, Hidden = [65_536, 65_536] }, [784], 10, false, "parameters" },
        { new ModelSpec { Name = ModelSpec.Mlp, Dropout = 1.0 }, [784], 10, false, "dropout must be at least 0 and less than 1" },
        { new ModelSpec { Name = ModelSpec.Mlp, Dropout = double.NaN }, [784], 10, false, "dropout" },
        { new ModelSpec { Name = ModelSpec.Mlp, Heads = 4 }, [784], 10, false, "heads does not apply to mlp" },
        { new ModelSpec { Name = ModelSpec.Mlp }, [784], 1, false, "classes must be between 2" },
        { new ModelSpec { Name = ModelSpec.Cnn }, [784], 10, false, "[height, width]" },
        { new ModelSpec { Name = ModelSpec.Cnn, Channels = [8, 8, 8, 8, 8] }, [28, 28], 10, false, "at most 4" },
        { new ModelSpec { Name = ModelSpec.Cnn, Channels = [0] }, [28, 28], 10, false, "channel counts" },
        { new ModelSpec { Name = ModelSpec.Cnn, Hidden = [64, 32] }, [28, 28], 10, false, "hidden for cnn is one width" },
        { new ModelSpec { Name = ModelSpec.ResNetSmall, Blocks = 0 }, [3, 32, 32], 10, false, "blocks must be between 1" },
        { new ModelSpec { Name = ModelSpec.ResNetSmall, Channels = [8, 8, 8, 8, 8, 8, 8] }, [3, 32, 32], 10, false, "1 to 6 stage widths" },
        { new ModelSpec { Name = ModelSpec.ResNetSmall }, [100, 32, 32], 10, false, "at most 64 channels" },
        { new ModelSpec { Name = ModelSpec.GptSmall, Heads = 3 }, [], 0, true, "heads must divide dim" },
        { new ModelSpec { Name = ModelSpec.GptSmall, Context = 4 }, [], 0, true, "context must be between 8 and 4096" },
        { new ModelSpec { Name = ModelSpec.GptSmall, Context = 8192 }, [], 0, true, "context must be between 8 and 4096" },
        { new ModelSpec { Name = ModelSpec.GptSmall, Layers = 0 }, [], 0, true, "layers must be between 1" },
        { new ModelSpec { Name = ModelSpec.GptSmall, Hidden = [4] }, [], 0, true, "hidden does not apply to gpt-small" },
        { new ModelSpec { Name = ModelSpec.TorchScript, Script = "ABC" }, [28, 28], 10, false, "SHA-256" },
        { new ModelSpec { Name = ModelSpec.TorchScript, Script = _hash, Dropout = 0.1 }, [28, 28], 10, false, "dropout does not apply" },
        { new ModelSpec { Name = ModelSpec.Cnn, Script = _hash }, [28, 28], 10, false, "script does not apply to cnn" },
    };

    [Theory]
    [MemberData(nameof(Invalid))]
    public void Validate_InvalidSpec_ExplainsWhy(ModelSpec spec, int[] sampleShape, int classes, bool isText, string expected)
    {
        var errors = ModelSpecValidator.Validate(spec, sampleShape, classes, isText);

        Assert.Contains(errors, e => e.Contains(expected, StringComparison.Ordinal));
    }

    [Fact]
    public void WithDefaults_FillsOnlyTheFieldsThatApply()
    {
        var gpt = new ModelSpec { Name = ModelSpec.GptSmall, Heads = 8 }.WithDefaults();
        var resnet = new ModelSpec { Name = ModelSpec.ResNetSmall }.WithDefaults();

        Assert.Equal(new ModelSpec { Name = ModelSpec.GptSmall, Layers = 4, Heads = 8, Dim = 128, Context = 128, Dropout = 0 }, gpt);
        Assert.Equal([16, 32, 64], resnet.Channels!);
        Assert.Equal(1, resnet.Blocks);
        Assert.Null(resnet.Hidden);
    }
}
