using System.Text.Json;
using Emc.Compute.Training;
using Emc.Core.Training;

namespace Emc.Compute.Tests.Training;

/// <summary>
/// Trains fmnist_cnn.pt, saved by PyTorch 1.13 (test/fixtures/make_torchscript.py), through
/// TorchSharp on real Fashion-MNIST, step for step as PyTorch did.
/// </summary>
[Collection(TorchCollection.Name)]
public sealed class TorchScriptTrainingTests
{
    private static readonly string _scriptPath = Path.Combine(AppContext.BaseDirectory, "fixtures", "fmnist_cnn.pt");
    private static readonly JsonSerializerOptions _jsonOptions = new() { PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower };

    [Fact]
    public void Run_FmnistCnnWithPyTorchsSgdSteps_FollowsPyTorchsLossCurve()
    {
        var curve = ReadCurve();
        Assert.Equal("sgd", curve.Optimizer);
        Assert.Equal(0.0, curve.Momentum);
        var data = new ExampleSet(TrainingData.FashionMnist("train", curve.Examples));
        using var model = LoadScript();
        using var trainer = new InnerTrainer(new InnerOptions
        {
            Optimizer = InnerOptions.Sgd,
            LearningRate = curve.Lr,
            Momentum = 0,
            WeightDecay = 0,
        });

        var result = trainer.Run(model, data, TrainingData.Consecutive(curve.Steps, curve.Batch), 0, CancellationToken.None);

        Assert.Equal(curve.Steps, result.Losses.Length);
        var relative = curve.Losses.Select((expected, step) => Math.Abs(result.Losses[step] - expected) / expected).ToArray();
        var worst = Array.IndexOf(relative, relative.Max());
        Assert.True(
            relative[worst] <= 0.01,
            $"step {worst}: TorchSharp {result.Losses[worst]}, PyTorch {curve.Losses[worst]}; relative differences by step: "
                + string.Join(" ", relative.Select(r => r.ToString("0.0000", System.Globalization.CultureInfo.InvariantCulture))));

        // The curve is not flat, so the comparison above would catch a model that did not learn.
        Assert.True(curve.Losses.TakeLast(10).Average() < curve.Losses[0] * 0.75);
    }

    [Fact]
    public void SaveTorchScript_TrainedModel_ReloadsWithTrainedWeights()
    {
        var data = new ExampleSet(TrainingData.FashionMnist("train", 64));
        using var model = LoadScript();
        using var trainer = new InnerTrainer(new InnerOptions { Optimizer = InnerOptions.Sgd, LearningRate = 0.05, WeightDecay = 0 });
        var before = model.ReadVector();
        trainer.Run(model, data, TrainingData.Consecutive(2, 32), 0, CancellationToken.None);
        var trained = model.ReadVector();
        Assert.NotEqual(before, trained);
        var path = Path.Combine(Directory.CreateTempSubdirectory("emc-ts-").FullName, "trained.pt");

        try
        {
            ModelExport.SaveTorchScript(model, path);
            var spec = new ModelSpec { Name = ModelSpec.TorchScript, Script = TrainingData.Sha256(path) };
            using var reloaded = TrainableModel.Create(spec, [28, 28], 10, false, "cpu", 0, path);

            Assert.Equal(trained, reloaded.ReadVector());
        }
        finally
        {
            Directory.Delete(Path.GetDirectoryName(path)!, recursive: true);
        }
    }

    [Fact]
    public void SaveTorchScript_ZooModel_Throws()
    {
        using var model = TrainingData.SmallMlp();

        Assert.Throws<InvalidOperationException>(() => ModelExport.SaveTorchScript(model, Path.Combine(Path.GetTempPath(), "never.pt")));
    }

    internal static TrainableModel LoadScript() =>
        TrainableModel.Create(new ModelSpec { Name = ModelSpec.TorchScript, Script = TrainingData.Sha256(_scriptPath) }, [28, 28], 10, false, "cpu", 0, _scriptPath);

    private static CurveFixture ReadCurve()
    {
        var json = File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "fixtures", "fmnist_cnn_curve.json"));
        var curve = JsonSerializer.Deserialize<CurveFixture>(json, _jsonOptions);
        Assert.NotNull(curve);
        Assert.Equal(curve.Steps, curve.Losses.Length);
        return curve;
    }

    private sealed record CurveFixture(string Optimizer, double Momentum, double Lr, int Batch, int Steps, int Examples, double[] Losses);
}
