using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using Emc.Cli.Infrastructure;
using Emc.Client;
using Emc.Compute.Training;
using Emc.Core;
using Emc.Core.Training;

namespace Emc.Cli.Commands;

/// <summary>`emc model list|show|pull`: the model registry (models trained through the network).</summary>
internal static class ModelCommand
{
    private static readonly string[] Header = ["NAME", "VERSION", "FORMAT", "ARCHITECTURE", "PARAMETERS", "METRIC", "FROM", "CREATED"];

    public static Command Create() => new("model", "The model registry: list, show and pull trained models.")
    {
        List(),
        Show(),
        Pull(),
        DeployCommands.Deploy(),
        DeployCommands.Undeploy(),
    };

    private static Command List()
    {
        var coordinator = CommonOptions.Coordinator();
        var json = CommonOptions.Json();
        var command = new Command("list", "List models and their versions.") { coordinator, json };
        command.SetAction(async (result, cancellationToken) => await ApiCalls.CallAsync("model list", async () =>
        {
            var models = await EmcApiClient.Create(result.GetValue(coordinator)!).GetModelsAsync(cancellationToken);
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
                m.VectorLength.ToString("N0", CultureInfo.InvariantCulture),
                Metric(m.Metrics),
                m.SourceJob ?? "",
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
                var model = await EmcApiClient.Create(result.GetValue(coordinator)!).GetModelAsync(name, version, cancellationToken);
                Console.WriteLine(result.GetValue(json)
                    ? JsonSerializer.Serialize(model, EmcJson.Indented)
                    : string.Create(CultureInfo.InvariantCulture, $"{model.Name}:{model.Version} {model.Format} {model.Model.Name}, {model.VectorLength:N0} values, input [{string.Join("×", model.SampleShape)}] {EmcJson.EnumText(model.ElementType)}, {(model.IsText ? "byte-level language model" : $"{model.Classes} classes")}, {Metric(model.Metrics)}, trained by {model.SourceJob}"));
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
                var client = EmcApiClient.Create(result.GetValue(coordinator)!, TimeSpan.FromMinutes(10));
                var model = await client.GetModelAsync(name, version, cancellationToken);
                var weights = await client.GetBlobAsync(model.Weights, cancellationToken);
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
            await File.WriteAllBytesAsync(script, await client.GetBlobAsync(scriptHash, cancellationToken), cancellationToken);
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

    internal static bool TryParseReference(string text, out string name, out int? version)
    {
        var parts = text.Split(':');
        name = parts[0];
        version = null;
        if (parts.Length > 2 || name.Length == 0)
        {
            return false;
        }

        if (parts.Length == 2)
        {
            if (!int.TryParse(parts[1], NumberStyles.None, CultureInfo.InvariantCulture, out var v) || v < 1)
            {
                return false;
            }

            version = v;
        }

        return true;
    }

    private static string Metric(RoundSummary? metrics) =>
        metrics?.EvalPerplexity is { } ppl ? $"perplexity {ppl.ToString("0.00", CultureInfo.InvariantCulture)}"
        : metrics?.EvalAccuracy is { } acc ? $"accuracy {acc.ToString("0.0000", CultureInfo.InvariantCulture)}"
        : "";
}
