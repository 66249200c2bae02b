using Emc.Compute.Training;
using Emc.Core.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace Emc.Compute.Tests.Training;

[Collection(TorchCollection.Name)]
public sealed class TrainableModelTests
{
    public static TheoryData<string, int[], int> ZooModels => new()
    {
        { ModelSpec.Mlp, [28, 28], 10 },
        { ModelSpec.Cnn, [28, 28], 10 },
        { ModelSpec.Cnn, [3, 32, 32], 7 },
        { ModelSpec.ResNetSmall, [28, 28], 10 },
        { ModelSpec.ResNetSmall, [3, 17, 17], 4 },
    };

    [Fact]
    public void Create_SameSeed_GivesIdenticalVector()
    {
        using var a = TrainableModel.Create(new ModelSpec { Name = ModelSpec.Cnn }, [28, 28], 10, false, "cpu", 42);
        using var b = TrainableModel.Create(new ModelSpec { Name = ModelSpec.Cnn }, [28, 28], 10, false, "cpu", 42);
        using var c = TrainableModel.Create(new ModelSpec { Name = ModelSpec.Cnn }, [28, 28], 10, false, "cpu", 43);

        var va = a.ReadVector();
        Assert.Equal(va, b.ReadVector());
        Assert.NotEqual(va, c.ReadVector());
        Assert.Contains(va, v => v != 0);
    }

    [Fact]
    public void Create_SameSeedAfterGlobalRngUse_GivesIdenticalVector()
    {
        var first = SmallGpt(seed: 5).ReadVector();
        torch.manual_seed(123);
        using var noise = torch.rand(1000);

        using var again = SmallGpt(seed: 5);

        Assert.Equal(first, again.ReadVector());
    }

    [Fact]
    public void Create_DefaultMlp_HasFashionMnistReadmeShapeAndCounts()
    {
        using var model = TrainableModel.Create(new ModelSpec { Name = ModelSpec.Mlp }, [28, 28], 10, false, "cpu", 1);

        Assert.Equal([256, 128, 100], model.Spec.Hidden!);
        var expected = (784 * 256) + 256 + (256 * 128) + 128 + (128 * 100) + 100 + (100 * 10) + 10;
        Assert.Equal(expected, model.ParameterCount);
        Assert.Equal(expected, model.VectorLength);
        Assert.Equal(3L * 2 * (expected - 256 - 128 - 100 - 10), model.FlopsPerSample);
        Assert.Equal("cpu", model.Device);
    }

    [Fact]
    public void ReadWriteVector_RoundTrip_ReplacesWeightsInPlace()
    {
        using var model = TrainingData.SmallMlp();
        var parameters = model.Module.parameters().ToList();
        var replacement = Enumerable.Range(0, (int)model.VectorLength).Select(i => (float)Math.Sin(i)).ToArray();

        model.WriteVector(replacement);

        Assert.Equal(replacement, model.ReadVector());
        var span = new float[model.VectorLength];
        model.ReadVector(span);
        Assert.Equal(replacement, span);

        // The same parameter objects, so an optimizer that holds them keeps working.
        Assert.All(model.Module.parameters().Zip(parameters), p => Assert.Same(p.First, p.Second));
    }

    [Fact]
    public void SubtractFrom_LeavesStartMinusWeights_WithoutTouchingTheModel()
    {
        // The cnn's fully connected weight has 401,408 values: many chunks, with a ragged last one.
        using var model = TrainableModel.Create(new ModelSpec { Name = ModelSpec.Cnn }, [28, 28], 10, false, "cpu", 3);
        var weights = model.ReadVector();
        var start = Enumerable.Range(0, (int)model.VectorLength).Select(i => (float)Math.Cos(i * 0.01)).ToArray();
        var expected = start.Zip(weights, (s, w) => s - w).ToArray();

        model.SubtractFrom(start);

        Assert.Equal(expected, start);
        Assert.Equal(weights, model.ReadVector());
        Assert.Throws<ArgumentException>(() => model.SubtractFrom(new float[5]));
    }

    [Fact]
    public void ReadWriteVector_WrongLength_Throws()
    {
        using var model = TrainingData.SmallMlp();
        var before = model.ReadVector();

        Assert.Throws<ArgumentException>(() => model.WriteVector(new float[model.VectorLength - 1]));
        Assert.Throws<ArgumentException>(() => model.WriteVector(new float[model.VectorLength + 1]));
        Assert.Throws<ArgumentException>(() => model.ReadVector(new float[3]));
        Assert.Equal(before, model.ReadVector());
    }

    [Theory]
    [MemberData(nameof(ZooModels))]
    public void Forward_ZooClassifier_GivesLogitsPerClass(string name, int[] sampleShape, int classes)
    {
        using var model = TrainableModel.Create(new ModelSpec { Name = name }, sampleShape, classes, false, "cpu", 3);
        var data = new ExampleSet(TrainingData.Images(5, sampleShape, classes, seed: 1));
        using var scope = torch.NewDisposeScope();

        var (input, _) = data.ClassificationBatch([0, 1, 2, 3, 4], torch.CPU);
        var logits = model.Forward(input);

        Assert.Equal([5L, classes], logits.shape);
        Assert.True(logits.isfinite().all().item<bool>());
        Assert.True(model.ParameterCount > 0 && model.VectorLength == model.ParameterCount);
        Assert.True(model.FlopsPerSample > 2 * model.ParameterCount, $"{name}: {model.FlopsPerSample} FLOPs for {model.ParameterCount} parameters");
    }

    [Fact]
    public void Forward_GptSmall_GivesByteLogitsPerPosition()
    {
        using var model = TrainableModel.Create(new ModelSpec { Name = ModelSpec.GptSmall }, [], 0, true, "cpu", 3);
        var data = new ExampleSet(TrainingData.Text(new string('a', 300)));
        using var scope = torch.NewDisposeScope();

        var (input, target) = data.TextBatch([0, 10, 100], model.Context, torch.CPU);
        var logits = model.Forward(input);

        Assert.Equal(128, model.Context);
        Assert.Equal([3L, 128], target.shape);
        Assert.Equal([3L, 128, 256], logits.shape);
        Assert.Equal(256, model.Classes);

        // 256·128 + 128·128 embeddings, 4 blocks of 12·128² + 13·128, final norm, head.
        Assert.Equal((384 * 128) + (4 * ((12 * 128 * 128) + (13 * 128))) + 256 + (128 * 256), model.ParameterCount);
    }

    [Fact]
    public void Forward_GptSmall_IsCausal()
    {
        using var model = SmallGpt(seed: 9);
        model.Module.eval();
        using var scope = torch.NewDisposeScope();
        var a = torch.tensor(new long[] { 1, 2, 3, 4, 5, 6, 7, 8 }, [1, 8]);
        var b = torch.tensor(new long[] { 1, 2, 3, 4, 9, 9, 9, 9 }, [1, 8]);

        var la = model.Forward(a);
        var lb = model.Forward(b);

        Assert.True(la.narrow(1, 0, 4).allclose(lb.narrow(1, 0, 4), rtol: 0, atol: 1e-6), "a later byte changed an earlier prediction");
        Assert.False(la.narrow(1, 4, 4).allclose(lb.narrow(1, 4, 4)));
    }

    [Fact]
    public void Create_InvalidSpec_ThrowsWithReasons()
    {
        var ex = Assert.Throws<ArgumentException>(() =>
            TrainableModel.Create(new ModelSpec { Name = ModelSpec.GptSmall, Heads = 3, Dim = 32 }, [], 0, true, "cpu", 1));
        Assert.Contains("heads must divide dim", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Create_TorchScriptWithWrongHash_Throws()
    {
        var path = Path.Combine(AppContext.BaseDirectory, "fixtures", "fmnist_cnn.pt");
        var spec = new ModelSpec { Name = ModelSpec.TorchScript, Script = new string('0', 64) };

        var ex = Assert.Throws<ArgumentException>(() => TrainableModel.Create(spec, [28, 28], 10, false, "cpu", 1, path));

        Assert.Contains(TrainingData.Sha256(path), ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Create_TorchScript_ExposesScriptParameters()
    {
        var path = Path.Combine(AppContext.BaseDirectory, "fixtures", "fmnist_cnn.pt");
        var spec = new ModelSpec { Name = ModelSpec.TorchScript, Script = TrainingData.Sha256(path) };

        using var model = TrainableModel.Create(spec, [28, 28], 10, false, "cpu", 1, path);

        Assert.Equal(26_698, model.ParameterCount);
        Assert.Equal(26_698, model.VectorLength);
        var vector = model.ReadVector();
        model.WriteVector(vector);
        Assert.Equal(vector, model.ReadVector());
    }

    internal static TrainableModel SmallGpt(long seed, double dropout = 0) =>
        TrainableModel.Create(
            new ModelSpec { Name = ModelSpec.GptSmall, Layers = 2, Heads = 2, Dim = 32, Context = 16, Dropout = dropout },
            [],
            0,
            true,
            "cpu",
            seed);
}
