using System.Diagnostics;
using System.Text.Json;
using System.Text.Json.Nodes;
using Emc.Compute.Training;
using Emc.Core.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace Emc.Compute.Tests.Training;

/// <summary>
/// Exports zoo models with ModelExport and loads them in PyTorch (Debian's python3-torch 1.13)
/// with docs/zoo/emc_zoo.py, which must rebuild each model with the same state_dict names and
/// shapes (load_state_dict is strict) and compute the same logits.
/// </summary>
[Collection(TorchCollection.Name)]
public sealed class ModelExportTests
{
    private const string CheckScript = """
        import json, sys
        import torch
        sys.path.insert(0, sys.argv[1])
        import emc_zoo
        out = {}
        for name in sys.argv[3:]:
            base = sys.argv[2] + "/" + name
            model = emc_zoo.load(base + ".pt", base + ".json")
            with open(base + ".input.json") as f:
                given = json.load(f)
            dtype = torch.int64 if given["dtype"] == "int64" else torch.float32
            x = torch.tensor(given["values"], dtype=dtype).reshape(given["shape"])
            with torch.no_grad():
                out[name] = [float(v) for v in model(x).flatten().tolist()]
        print(json.dumps(out))
        """;

    [PythonFact]
    public void SaveStateDict_ZooModels_LoadInPyTorchWithEmcZooAndGiveSameLogits()
    {
        var directory = Directory.CreateTempSubdirectory("emc-export-").FullName;
        try
        {
            var cases = new (string Key, ModelSpec Spec, int[] Shape, int Classes, bool IsText, double Tolerance)[]
            {
                ("mlp", new ModelSpec { Name = ModelSpec.Mlp }, [28, 28], 10, false, 1e-5),
                ("cnn", new ModelSpec { Name = ModelSpec.Cnn, Channels = [8, 16], Hidden = [32] }, [28, 28], 10, false, 1e-5),
                ("resnet", new ModelSpec { Name = ModelSpec.ResNetSmall, Channels = [8, 16], Blocks = 2 }, [3, 12, 12], 4, false, 1e-5),
                ("gpt", new ModelSpec { Name = ModelSpec.GptSmall, Layers = 2, Heads = 4, Dim = 32, Context = 16 }, [], 0, true, 1e-5),
            };
            var expected = new Dictionary<string, float[]>();
            foreach (var (key, spec, shape, classes, isText, _) in cases)
            {
                using var model = TrainableModel.Create(spec, shape, classes, isText, "cpu", 17);
                model.Module.eval();
                using var scope = torch.NewDisposeScope();
                var input = isText
                    ? torch.tensor(Enumerable.Range(0, 2 * 16).Select(i => (long)((i * 37) % 256)).ToArray(), [2, 16])
                    : torch.rand([3, .. shape.Select(d => (long)d)], generator: new Generator(5));
                expected[key] = model.Forward(input).data<float>().ToArray();

                ModelExport.SaveStateDict(model, Path.Combine(directory, key + ".pt"));
                File.WriteAllText(Path.Combine(directory, key + ".json"), ModelExport.SpecJson(model));
                var given = new JsonObject
                {
                    ["dtype"] = isText ? "int64" : "float32",
                    ["shape"] = new JsonArray([.. input.shape.Select(d => (JsonNode)d)]),
                    ["values"] = isText
                        ? new JsonArray([.. input.data<long>().ToArray().Select(v => (JsonNode)v)])
                        : new JsonArray([.. input.data<float>().ToArray().Select(v => (JsonNode)v)]),
                };
                File.WriteAllText(Path.Combine(directory, key + ".input.json"), given.ToJsonString());
            }

            var scriptPath = Path.Combine(directory, "check.py");
            File.WriteAllText(scriptPath, CheckScript);
            var output = RunPython([scriptPath, Path.Combine(AppContext.BaseDirectory, "zoo"), directory, .. cases.Select(c => c.Key)]);
            var actual = JsonSerializer.Deserialize<Dictionary<string, float[]>>(output);
            Assert.NotNull(actual);

            foreach (var (key, _, _, _, _, tolerance) in cases)
            {
                Assert.Equal(expected[key].Length, actual[key].Length);
                var worst = expected[key].Zip(actual[key], (e, a) => Math.Abs(e - a)).Max();
                Assert.True(worst <= tolerance, $"{key}: PyTorch's logits differ by up to {worst}");
            }
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    [PythonFact]
    public void SaveTorchScript_TrainedScript_LoadsInPyTorchWithTrainedWeights()
    {
        var directory = Directory.CreateTempSubdirectory("emc-export-").FullName;
        try
        {
            var data = new ExampleSet(TrainingData.FashionMnist("train", 64));
            using var model = TorchScriptTrainingTests.LoadScript();
            using (var trainer = new InnerTrainer(new InnerOptions { Optimizer = InnerOptions.Sgd, LearningRate = 0.05, WeightDecay = 0 }))
            {
                trainer.Run(model, data, TrainingData.Consecutive(2, 32), 0, CancellationToken.None);
            }

            model.Module.eval();
            using var scope = torch.NewDisposeScope();
            var (input, _) = data.ClassificationBatch([0, 1, 2], torch.CPU);
            var expected = model.Forward(input).data<float>().ToArray();
            var path = Path.Combine(directory, "trained.pt");
            ModelExport.SaveTorchScript(model, path);
            var inputPath = Path.Combine(directory, "input.json");
            File.WriteAllText(inputPath, JsonSerializer.Serialize(input.data<float>().ToArray()));
            var scriptPath = Path.Combine(directory, "check.py");
            File.WriteAllText(scriptPath, """
                import json, sys
                import torch
                model = torch.jit.load(sys.argv[1]).eval()
                with open(sys.argv[2]) as f:
                    x = torch.tensor(json.load(f), dtype=torch.float32).reshape(3, 1, 28, 28)
                with torch.no_grad():
                    print(json.dumps([float(v) for v in model(x).flatten().tolist()]))
                """);

            var actual = JsonSerializer.Deserialize<float[]>(RunPython([scriptPath, path, inputPath]));

            Assert.NotNull(actual);
            Assert.Equal(expected.Length, actual.Length);
            var worst = expected.Zip(actual, (e, a) => Math.Abs(e - a)).Max();
            Assert.True(worst <= 1e-5, $"PyTorch's logits differ by up to {worst}");
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    [Fact]
    public void SpecJson_Cnn_HoldsDefaultsShapeAndClasses()
    {
        using var model = TrainableModel.Create(new ModelSpec { Name = ModelSpec.Cnn }, [28, 28], 10, false, "cpu", 1);

        var json = JsonNode.Parse(ModelExport.SpecJson(model))!.AsObject();

        Assert.Equal("cnn", (string?)json["name"]);
        Assert.Equal("[32,64]", json["channels"]!.ToJsonString());
        Assert.Equal("[128]", json["hidden"]!.ToJsonString());
        Assert.Equal(0.25, (double)json["dropout"]!);
        Assert.Equal("[28,28]", json["sampleShape"]!.ToJsonString());
        Assert.Equal(10, (int)json["classes"]!);
        Assert.False(json.ContainsKey("layers"));
    }

    private static string RunPython(IEnumerable<string> arguments)
    {
        var start = new ProcessStartInfo(PythonFactAttribute.Python)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        using var process = Process.Start(start)!;
        var stderr = process.StandardError.ReadToEndAsync();
        var stdout = process.StandardOutput.ReadToEnd();
        Assert.True(process.WaitForExit(60_000), "python did not finish in 60 s");
        Assert.True(process.ExitCode == 0, $"python failed ({process.ExitCode}): {stderr.Result}");
        return stdout;
    }
}
