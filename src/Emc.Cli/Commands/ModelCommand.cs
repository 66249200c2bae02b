using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using Emc.Cli.Infrastructure;
using Emc.Client;
using Emc.Compute.Training;
using Emc.Core;
using Emc.Core.Training;

namespace Emc.Cli.Commands;

/// <summary>`emc model list|show|pull|push|rm|export`: the model registry (models trained through the network and pushed files).</summary>
internal static class ModelCommand
{
    private static readonly string[] Header = ["NAME", "VERSION", "FORMAT", "ARCHITECTURE", "PARAMETERS", "INPUTS", "OUTPUTS", "METRIC", "FROM", "CREATED"];

    public static Command Create() => new("model", "The model registry: list, show, pull, push, remove and export models.")
    {
        List(),
        Show(),
        Pull(),
        Push(),
        Remove(),
        Export(),
        DeployCommands.Deploy(),
        DeployCommands.Undeploy(),
        DeployCommands.TopUp(),
    };

    private static Command List()
    {
        var coordinator = CommonOptions.Coordinator();
        var json = CommonOptions.Json();
        var command = new Command("list", "List models and their versions.") { coordinator, json };
        command.SetAction(async (result, cancellationToken) => await ApiCalls.CallAsync("model list", async () =>
        {
            var models = await ApiKeyLookup.Client(result, coordinator).GetModelsAsync(cancellationToken);
            if (result.GetValue(json))
            {
                Console.WriteLine(JsonSerializer.Serialize(models, EmcJson.Indented));
                return;
            }

            var rows = new List<string[]> { Header };
            rows.AddRange(models.Select(m => new[]
            {
                m.Name,
                m.Version.ToString(CultureInfo.InvariantCulture),
                m.Format,
                m.Model.Name,
                m.File is null ? m.VectorLength.ToString("N0", CultureInfo.InvariantCulture) : "",
                Signature(m.Inputs),
                Signature(m.Outputs),
                Metric(m.Metrics),
                m.SourceJob ?? "pushed",
                m.CreatedAt.ToString("yyyy-MM-dd HH:mm", CultureInfo.InvariantCulture),
            }));
            Console.WriteLine(Table.Format(rows));
        }));
        return command;
    }

    private static Command Show()
    {
        var coordinator = CommonOptions.Coordinator();
        var json = CommonOptions.Json();
        var reference = new Argument<string>("model") { Description = "NAME or NAME:VERSION (default: the newest version)." };
        var command = new Command("show", "Show a model: architecture, input, metrics.") { coordinator, json, reference };
        command.SetAction(async (result, cancellationToken) =>
        {
            if (!TryParseReference(result.GetValue(reference)!, out var name, out var version))
            {
                await Console.Error.WriteLineAsync($"emc model show: '{result.GetValue(reference)}' is not NAME or NAME:VERSION.");
                return 2;
            }

            return await ApiCalls.CallAsync("model show", async () =>
            {
                var model = await ApiKeyLookup.Client(result, coordinator).GetModelAsync(name, version, cancellationToken);
                Console.WriteLine(result.GetValue(json) ? JsonSerializer.Serialize(model, EmcJson.Indented) : Describe(model));
            });
        });
        return command;
    }

    private static Command Pull()
    {
        var coordinator = CommonOptions.Coordinator();
        var reference = new Argument<string>("model") { Description = "NAME or NAME:VERSION (default: the newest version)." };
        var output = new Option<string?>("--output", "-o") { Description = "The file to write (default NAME-vVERSION.pt)." };
        var format = new Option<string>("--format")
        {
            Description = "pt: a PyTorch state_dict (torch.load; zoo architectures in docs/zoo/emc_zoo.py), or a TorchScript module for TorchScript jobs (default); weights: the raw EMCW weights vector.",
            DefaultValueFactory = _ => "pt",
        };
        var command = new Command("pull", "Download a trained model as a file PyTorch loads.") { coordinator, reference, output, format };
        command.SetAction(async (result, cancellationToken) =>
        {
            if (!TryParseReference(result.GetValue(reference)!, out var name, out var version))
            {
                await Console.Error.WriteLineAsync($"emc model pull: '{result.GetValue(reference)}' is not NAME or NAME:VERSION.");
                return 2;
            }

            var kind = result.GetValue(format);
            if (kind is not ("pt" or "weights"))
            {
                await Console.Error.WriteLineAsync($"emc model pull: --format must be pt or weights, not '{kind}'.");
                return 2;
            }

            return await ApiCalls.CallAsync("model pull", async () =>
            {
                var client = ApiKeyLookup.Client(result, coordinator, TimeSpan.FromMinutes(10));
                var model = await client.GetModelAsync(name, version, cancellationToken);
                if (model.File is { } file)
                {
                    // A pushed file is pulled as it was pushed, whatever --format says.
                    var filePath = Path.GetFullPath(result.GetValue(output) ?? $"{model.Name}-v{model.Version}{(model.Format == "onnx" ? ".onnx" : ".pt")}");
                    await File.WriteAllBytesAsync(filePath, await client.GetModelFileAsync(model.Name, model.Version, file, cancellationToken), cancellationToken);
                    Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"wrote {filePath} ({model.Name}:{model.Version}, {model.Format} as pushed)"));
                    return;
                }

                var weights = await client.GetModelFileAsync(model.Name, model.Version, model.Weights, cancellationToken);
                var path = Path.GetFullPath(result.GetValue(output) ?? $"{model.Name}-v{model.Version}{(kind == "pt" ? ".pt" : ".emcw")}");
                if (kind == "weights")
                {
                    await File.WriteAllBytesAsync(path, weights, cancellationToken);
                }
                else
                {
                    await WritePyTorchAsync(client, model, weights, path, cancellationToken);
                }

                Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"wrote {path} ({model.Name}:{model.Version}, {model.Format}, {Metric(model.Metrics)})"));
            });
        });
        return command;
    }

    /// <summary>Rebuilds the model with its trained weights and saves it the way PyTorch loads it.</summary>
    internal static async Task WritePyTorchAsync(EmcApiClient client, ModelDescriptor model, byte[] weights, string path, CancellationToken cancellationToken)
    {
        string? script = null;
        if (model.Model.Script is { } scriptHash)
        {
            script = Path.Combine(Path.GetTempPath(), $"emc-{scriptHash}.pt");
            await File.WriteAllBytesAsync(script, await client.GetModelFileAsync(model.Name, model.Version, scriptHash, cancellationToken), cancellationToken);
        }

        try
        {
            using var trainable = TrainableModel.Create(model.Model, model.SampleShape, model.Classes, model.IsText, "cpu", seed: 0, script);
            trainable.WriteVector(WeightsCodec.Decode(weights, model.VectorLength));
            if (script is not null)
            {
                ModelExport.SaveTorchScript(trainable, path);
            }
            else
            {
                ModelExport.SaveStateDict(trainable, path);
            }
        }
        finally
        {
            if (script is not null)
            {
                File.Delete(script);
            }
        }
    }

    internal static bool TryParseReference(string text, out string name, out int? version) =>
        ModelNames.TryParseReference(text, out name, out version);

    private static Command Push()
    {
        var coordinator = CommonOptions.Coordinator();
        var json = CommonOptions.Json();
        var file = new Argument<FileInfo>("file") { Description = "The model file: ONNX (.onnx) or TorchScript (saved by torch.jit.save)." };
        var name = new Option<string>("--name", "-n") { Description = "The model's name (letters, digits, '.', '_', '-').", Required = true };
        var version = new Option<int?>("--version") { Description = "The version to register (default: the newest + 1); refused when it exists." };
        var format = new Option<string?>("--format") { Description = "onnx or torchscript (default: told from the file)." };
        var inputs = new Option<string[]>("--input")
        {
            Description = "An input as NAME:DATATYPE:SHAPE, e.g. input:FP32:-1,1,28,28 (-1 = variable); required for TorchScript, which records no signature. Repeat for several.",
        };
        var outputs = new Option<string[]>("--output") { Description = "An output as NAME:DATATYPE:SHAPE, e.g. logits:FP32:-1,10; required for TorchScript. Repeat for several." };
        var command = new Command("push", "Register an ONNX or TorchScript file as a new model version.") { coordinator, json, file, name, version, format, inputs, outputs };
        command.SetAction(async (result, cancellationToken) =>
        {
            var path = result.GetValue(file)!;
            var modelName = result.GetValue(name)!;
            var signature = (result.GetValue(inputs) ?? []).Concat(result.GetValue(outputs) ?? []).ToList();
            var problem = !path.Exists ? $"{path.FullName} does not exist."
                : !ModelNames.IsValid(modelName) ? $"'{modelName}' is not a model name: {ModelNames.Rule}."
                : result.GetValue(version) is < 1 ? "--version must be a positive integer."
                : signature.Select(t => ModelSignature.TryParse(t, out _, out var error) ? null : error).FirstOrDefault(e => e is not null);
            if (problem is not null)
            {
                await Console.Error.WriteLineAsync($"emc model push: {problem}");
                return 2;
            }

            return await ApiCalls.CallAsync("model push", async () =>
            {
                var client = ApiKeyLookup.Client(result, coordinator, TimeSpan.FromMinutes(10));
                var model = await client.PushModelAsync(
                    path.FullName, modelName, result.GetValue(version), result.GetValue(format), result.GetValue(inputs) ?? [], result.GetValue(outputs) ?? [], cancellationToken);
                Console.WriteLine(result.GetValue(json)
                    ? JsonSerializer.Serialize(model, EmcJson.Indented)
                    : string.Create(CultureInfo.InvariantCulture, $"pushed {model.Name}:{model.Version} ({model.Format}, {model.Bytes:N0} bytes, sha256 {model.File})\n{Describe(model)}"));
            });
        });
        return command;
    }

    private static Command Remove()
    {
        var coordinator = CommonOptions.Coordinator();
        var json = CommonOptions.Json();
        var reference = new Argument<string>("model") { Description = "NAME:VERSION removes one version; NAME removes every version." };
        var command = new Command("rm", "Remove a model version (or every version of a model); refused while a deployment serves it.") { coordinator, json, reference };
        command.SetAction(async (result, cancellationToken) =>
        {
            if (!TryParseReference(result.GetValue(reference)!, out var name, out var version))
            {
                await Console.Error.WriteLineAsync($"emc model rm: '{result.GetValue(reference)}' is not NAME or NAME:VERSION.");
                return 2;
            }

            return await ApiCalls.CallAsync("model rm", async () =>
            {
                var removed = await ApiKeyLookup.Client(result, coordinator).RemoveModelAsync(name, version, cancellationToken);
                Console.WriteLine(result.GetValue(json)
                    ? JsonSerializer.Serialize(removed, EmcJson.Indented)
                    : string.Join(Environment.NewLine, removed.Select(m => string.Create(CultureInfo.InvariantCulture, $"removed {m.Name}:{m.Version}"))));
            });
        });
        return command;
    }

    private static Command Export()
    {
        var coordinator = CommonOptions.Coordinator();
        var json = CommonOptions.Json();
        var reference = new Argument<string>("model") { Description = "NAME or NAME:VERSION (default: the newest version)." };
        var format = new Option<string>("--format") { Description = "The file format: onnx (opset 21, runs in any ONNX runtime).", DefaultValueFactory = _ => "onnx" };
        var output = new Option<string?>("--output", "-o") { Description = "The file to write (default NAME-vVERSION.onnx)." };
        var command = new Command("export", "Export a trained zoo model to ONNX, so that any ONNX runtime can run it.") { coordinator, json, reference, format, output };
        command.SetAction(async (result, cancellationToken) =>
        {
            if (!TryParseReference(result.GetValue(reference)!, out var name, out var version))
            {
                await Console.Error.WriteLineAsync($"emc model export: '{result.GetValue(reference)}' is not NAME or NAME:VERSION.");
                return 2;
            }

            var kind = result.GetValue(format);
            if (kind != "onnx")
            {
                await Console.Error.WriteLineAsync($"emc model export: --format must be onnx, not '{kind}'.");
                return 2;
            }

            return await ApiCalls.CallAsync("model export", async () =>
            {
                var client = ApiKeyLookup.Client(result, coordinator, TimeSpan.FromMinutes(10));
                var model = await client.GetModelAsync(name, version, cancellationToken);
                var path = Path.GetFullPath(result.GetValue(output) ?? $"{model.Name}-v{model.Version}.onnx");
                var temp = path + ".part";
                string hash;
                await using (var file = File.Create(temp))
                {
                    hash = await client.ExportModelAsync(model.Name, model.Version, kind, file, cancellationToken);
                }

                File.Move(temp, path, overwrite: true);
                Console.WriteLine(result.GetValue(json)
                    ? JsonSerializer.Serialize(new { model = model.Name, version = model.Version, format = kind, path, sha256 = hash, bytes = new FileInfo(path).Length }, EmcJson.Indented)
                    : string.Create(CultureInfo.InvariantCulture, $"wrote {path} ({model.Name}:{model.Version} as ONNX, {new FileInfo(path).Length:N0} bytes, sha256 {hash})"));
            });
        });
        return command;
    }

    private static string Describe(ModelDescriptor model)
    {
        var lines = new List<string>
        {
            model.File is null
                ? string.Create(CultureInfo.InvariantCulture, $"{model.Name}:{model.Version} {model.Format} {model.Model.Name}, {model.VectorLength:N0} values, input [{string.Join("×", model.SampleShape)}] {EmcJson.EnumText(model.ElementType)}, {(model.IsText ? "byte-level language model" : $"{model.Classes} classes")}, {Metric(model.Metrics)}, trained by {model.SourceJob}")
                : string.Create(CultureInfo.InvariantCulture, $"{model.Name}:{model.Version} {model.Format}, pushed, {model.Bytes:N0} bytes, sha256 {model.File}"),
        };
        lines.AddRange((model.Inputs ?? []).Select(t => $"  input  {ModelSignature.Describe(t)}"));
        lines.AddRange((model.Outputs ?? []).Select(t => $"  output {ModelSignature.Describe(t)}"));
        return string.Join(Environment.NewLine, lines);
    }

    private static string Signature(IReadOnlyList<Core.Inference.TensorMetadata>? tensors) =>
        tensors is null ? "" : string.Join("; ", tensors.Select(ModelSignature.Describe));

    private static string Metric(RoundSummary? metrics) =>
        metrics?.EvalPerplexity is { } ppl ? $"perplexity {ppl.ToString("0.00", CultureInfo.InvariantCulture)}"
        : metrics?.EvalAccuracy is { } acc ? $"accuracy {acc.ToString("0.0000", CultureInfo.InvariantCulture)}"
        : "";
}
