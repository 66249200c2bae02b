using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using Emc.Cli.Infrastructure;
using Emc.Client;
using Emc.Core;
using Emc.Core.Data;
using Emc.Core.Training;

namespace Emc.Cli.Commands;

/// <summary>`emc data upload|list|show|rm`: datasets for training.</summary>
internal static class DataCommand
{
    private static readonly string[] Header = ["NAME", "FORMAT", "TASK", "SPLITS", "SIZE", "CREATED"];

    public static Command Create() => new("data", "Datasets: upload (validated, sharded, content-addressed), list, show, remove.")
    {
        Upload(),
        List(),
        Show(),
        Remove(),
    };

    private static Command Upload()
    {
        var coordinator = CommonOptions.Coordinator();
        var json = CommonOptions.Json();
        var files = new Argument<string[]>("files") { Description = "The files: IDX (gzipped or not), .npy, .npz, CSV or text. Names with 'test'/'t10k' form the test split.", Arity = ArgumentArity.OneOrMore };
        var name = new Option<string>("--name") { Description = "The dataset's name.", Required = true };
        var format = new Option<string>("--format") { Description = "idx, npy, npz, csv or text.", Required = true };
        var labelColumn = new Option<string?>("--label-column") { Description = "CSV: the column with the class label (default 'label')." };
        var classes = new Option<int?>("--classes") { Description = "The number of classes; labels must be below it (default: the largest label + 1)." };
        var command = new Command("upload", "Upload a dataset.") { coordinator, json, files, name, format, labelColumn, classes };
        command.SetAction(async (result, cancellationToken) =>
        {
            var paths = result.GetValue(files)!;
            foreach (var path in paths)
            {
                if (!File.Exists(path))
                {
                    await Console.Error.WriteLineAsync($"emc data upload: {path}: no such file.");
                    return 2;
                }
            }

            if (!DatasetFormats.TryParse(result.GetValue(format), out _))
            {
                await Console.Error.WriteLineAsync($"emc data upload: '{result.GetValue(format)}' is not a format; use idx, npy, npz, csv or text.");
                return 2;
            }

            return await ApiCalls.CallAsync("data upload", async () =>
            {
                var client = ApiKeyLookup.Client(result, coordinator, TimeSpan.FromMinutes(30));
                var dataset = await client.UploadDatasetAsync(result.GetValue(name)!, result.GetValue(format)!, result.GetValue(labelColumn), result.GetValue(classes), paths, cancellationToken);
                Console.WriteLine(result.GetValue(json) ? JsonSerializer.Serialize(dataset, EmcJson.Indented) : Describe(dataset));
            });
        });
        return command;
    }

    private static Command List()
    {
        var coordinator = CommonOptions.Coordinator();
        var json = CommonOptions.Json();
        var command = new Command("list", "List datasets.") { coordinator, json };
        command.SetAction(async (result, cancellationToken) => await ApiCalls.CallAsync("data list", async () =>
        {
            var datasets = await ApiKeyLookup.Client(result, coordinator).GetDatasetsAsync(cancellationToken);
            if (result.GetValue(json))
            {
                Console.WriteLine(JsonSerializer.Serialize(datasets, EmcJson.Indented));
                return;
            }

            var rows = new List<string[]> { Header };
            rows.AddRange(datasets.Select(d => new[]
            {
                d.Name,
                d.Manifest.Format,
                EmcJson.EnumText(d.Manifest.Task),
                string.Join(" ", d.Manifest.Splits.Select(s => $"{s.Key}={s.Value.Count.ToString(CultureInfo.InvariantCulture)}")),
                Core.Scheduling.Bytes.Format(d.Bytes),
                d.CreatedAt.ToString("yyyy-MM-dd HH:mm", CultureInfo.InvariantCulture),
            }));
            Console.WriteLine(Table.Format(rows));
        }));
        return command;
    }

    private static Command Show()
    {
        var coordinator = CommonOptions.Coordinator();
        var json = CommonOptions.Json();
        var name = new Argument<string>("name") { Description = "The dataset." };
        var command = new Command("show", "Show a dataset's splits and shards.") { coordinator, json, name };
        command.SetAction(async (result, cancellationToken) => await ApiCalls.CallAsync("data show", async () =>
        {
            var dataset = await ApiKeyLookup.Client(result, coordinator).GetDatasetAsync(result.GetValue(name)!, cancellationToken);
            Console.WriteLine(result.GetValue(json) ? JsonSerializer.Serialize(dataset, EmcJson.Indented) : Describe(dataset));
        }));
        return command;
    }

    private static Command Remove()
    {
        var coordinator = CommonOptions.Coordinator();
        var name = new Argument<string>("name") { Description = "The dataset." };
        var command = new Command("rm", "Remove a dataset (refused while a training job reads it).") { coordinator, name };
        command.SetAction(async (result, cancellationToken) => await ApiCalls.CallAsync("data rm", async () =>
        {
            await ApiKeyLookup.Client(result, coordinator).RemoveDatasetAsync(result.GetValue(name)!, cancellationToken);
            Console.WriteLine($"removed {result.GetValue(name)}");
        }));
        return command;
    }

    internal static string Describe(DatasetView dataset)
    {
        var lines = new List<string>
        {
            $"{dataset.Name}: {dataset.Manifest.Format}, {EmcJson.EnumText(dataset.Manifest.Task)}, {Core.Scheduling.Bytes.Format(dataset.Bytes)} in shards, manifest {dataset.ManifestHash[..12]}",
        };
        foreach (var (split, manifest) in dataset.Manifest.Splits.OrderBy(s => s.Key, StringComparer.Ordinal))
        {
            var shape = manifest.SampleShape.Length == 0 ? "bytes" : $"[{string.Join("×", manifest.SampleShape)}] {EmcJson.EnumText(manifest.ElementType)}";
            var classes = manifest.Classes > 0 && dataset.Manifest.Task == DatasetTask.Classification ? $", {manifest.Classes} classes" : "";
            lines.Add($"  {split}: {manifest.Count.ToString("N0", CultureInfo.InvariantCulture)} × {shape}{classes}, {manifest.Shards.Count} shard{(manifest.Shards.Count == 1 ? "" : "s")}");
        }

        return string.Join(Environment.NewLine, lines);
    }
}
