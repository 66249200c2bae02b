using System.CommandLine;
using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Emc.Cli.Infrastructure;
using Emc.Client;
using Emc.Core;
using Emc.Core.Training;

namespace Emc.Cli.Commands;

/// <summary>`emc train submit|list|status|watch|cancel`: distributed training jobs.</summary>
internal static class TrainCommand
{
    private static readonly string[] Header0 = ["ID", "NAME", "STATE", "MODEL", "DATASET", "ALGO", "ROUND", "SAMPLES", "ACCURACY", "REASON"];
    private static readonly string[] Header1 = ["  NODE", "ROUNDS", "ACCEPTED", "REJECTED", "DROPPED", "SAMPLES", "SAMPLES/S", "SENT"];

    public static Command Create() => new("train", "Training jobs: DiLoCo (default) or synchronous data parallel across nodes.")
    {
        Submit(),
        List(),
        Status(),
        Watch(),
        Cancel(),
    };

    /// <summary>Flags of `emc train submit`, each setting one field of the job document (over the file's value).</summary>
    private static readonly (string Flag, string Path, string Description, FlagKind Kind)[] Flags =
    [
        ("--name", "name", "A name; the trained model is registered under it.", FlagKind.Text),
        ("--account", "account", "The account that owns the job.", FlagKind.Text),
        ("--model", "model.name", "mlp, cnn, resnet-small, gpt-small or torchscript.", FlagKind.Text),
        ("--hidden", "model.hidden", "mlp hidden sizes, such as 256,128,100.", FlagKind.IntList),
        ("--channels", "model.channels", "cnn/resnet-small channels, such as 32,64.", FlagKind.IntList),
        ("--dropout", "model.dropout", "Dropout probability.", FlagKind.Number),
        ("--layers", "model.layers", "gpt-small layers.", FlagKind.Integer),
        ("--heads", "model.heads", "gpt-small attention heads.", FlagKind.Integer),
        ("--dim", "model.dim", "gpt-small width.", FlagKind.Integer),
        ("--context", "model.context", "gpt-small context in bytes.", FlagKind.Integer),
        ("--dataset", "dataset", "An uploaded dataset.", FlagKind.Text),
        ("--algorithm", "algorithm", "diloco (default) or sync.", FlagKind.Text),
        ("--inner-steps", "innerSteps", "Inner steps per round, H (DiLoCo).", FlagKind.Integer),
        ("--inner-optimizer", "inner.optimizer", "adamw, adam or sgd.", FlagKind.Text),
        ("--lr", "inner.learningRate", "Inner learning rate.", FlagKind.Number),
        ("--weight-decay", "inner.weightDecay", "Inner weight decay.", FlagKind.Number),
        ("--schedule", "inner.schedule", "constant, cosine or warmup-cosine.", FlagKind.Text),
        ("--warmup", "inner.warmupSteps", "Warm-up steps of warmup-cosine.", FlagKind.Integer),
        ("--outer-lr", "outer.learningRate", "Outer learning rate (DiLoCo 0.7).", FlagKind.Number),
        ("--outer-momentum", "outer.momentum", "Outer Nesterov momentum (DiLoCo 0.9).", FlagKind.Number),
        ("--batch-size", "batchSize", "Examples per inner step on every node.", FlagKind.Integer),
        ("--micro-batch", "microBatch", "Largest micro-batch (gradient accumulation).", FlagKind.Integer),
        ("--rounds", "rounds", "Number of rounds.", FlagKind.Integer),
        ("--epochs", "epochs", "Passes over the training split.", FlagKind.Number),
        ("--target-samples", "targetSamples", "Training examples in total.", FlagKind.Integer),
        ("--aggregator", "aggregator", "mean, trimmed-mean or median.", FlagKind.Text),
        ("--precision", "precision", "Update precision: int8 (default) or fp32.", FlagKind.Text),
        ("--eval-split", "evaluation.split", "The split to evaluate on (default test).", FlagKind.Text),
        ("--holdout", "evaluation.holdoutFraction", "Hold out this fraction of the training split instead.", FlagKind.Number),
        ("--eval-every", "evaluation.every", "Evaluate every N rounds.", FlagKind.Integer),
        ("--eval-max", "evaluation.maxExamples", "Evaluate on at most N examples per round (the final evaluation uses all).", FlagKind.Integer),
        ("--seed", "seed", "Seed of the weights and the data order.", FlagKind.Integer),
        ("--output", "output", "Register the model under this name.", FlagKind.Text),
        ("--device", "device", "cpu or cuda: the device kind nodes train on.", FlagKind.Text),
    ];

    private enum FlagKind
    {
        Text,
        Integer,
        Number,
        IntList,
    }

    private static Command Submit()
    {
        var coordinator = CommonOptions.Coordinator();
        var json = CommonOptions.Json();
        var file = new Argument<string?>("file") { Description = "A job file (YAML or JSON; - reads standard input). Flags override its values.", Arity = ArgumentArity.ZeroOrOne };
        var nodes = new Option<string?>("--nodes") { Description = "Nodes per round: N, or MIN..MAX." };
        var script = new Option<string?>("--script") { Description = "A TorchScript file exported from PyTorch (with --model torchscript)." };
        var watch = new Option<bool>("--watch") { Description = "Follow the job with a progress bar until it ends." };
        var budget = new Option<string?>("--budget") { Description = "EMC the job may spend, reserved from your balance now (a user's job needs one); what is left is refunded when it ends." };
        var command = new Command("submit", "Submit a training job.") { coordinator, json, file, nodes, script, watch, budget };
        var options = new List<(Option<string?> Option, string Path, FlagKind Kind)>();
        foreach (var (flag, path, description, kind) in Flags)
        {
            var option = new Option<string?>(flag) { Description = description };
            options.Add((option, path, kind));
            command.Add(option);
        }

        command.SetAction(async (result, cancellationToken) =>
        {
            JsonObject document;
            try
            {
                document = await ReadDocumentAsync(result.GetValue(file), cancellationToken);
                foreach (var (option, path, kind) in options)
                {
                    if (result.GetValue(option) is { } value)
                    {
                        Set(document, path, Convert(option.Name, value, kind));
                    }
                }

                if (result.GetValue(nodes) is { } range)
                {
                    var (min, max) = ParseNodes(range);
                    Set(document, "nodes", new JsonObject { ["min"] = min, ["max"] = max });
                }

                if (result.GetValue(budget) is { } emc)
                {
                    Set(document, "budget", LedgerCommands.TryParseAmount(emc, out var units, out var error) ? units : throw new FormatException($"--budget: {error}"));
                }
            }
            catch (FormatException ex)
            {
                await Console.Error.WriteLineAsync($"emc train submit: {ex.Message}");
                return 2;
            }

            var client = ApiKeyLookup.Client(result, coordinator, TimeSpan.FromMinutes(10));
            if (result.GetValue(script) is { } scriptPath)
            {
                if (!File.Exists(scriptPath))
                {
                    await Console.Error.WriteLineAsync($"emc train submit: {scriptPath}: no such file.");
                    return 2;
                }

                var uploaded = await ApiCalls.CallAsync("train submit", async () => Set(document, "model.script", await client.UploadBlobAsync(scriptPath, cancellationToken)));
                if (uploaded != 0)
                {
                    return uploaded;
                }

                if (document["model"]?["name"] is null)
                {
                    Set(document, "model.name", "torchscript");
                }
            }

            TrainingJobSpec? spec;
            try
            {
                spec = document.Deserialize<TrainingJobSpec>(EmcJson.Options);
            }
            catch (JsonException ex)
            {
                await Console.Error.WriteLineAsync($"emc train submit: the job is not valid: {ex.Message}");
                return 2;
            }

            var errors = TrainingDefaults.Validate(spec);
            if (errors.Count > 0)
            {
                await Console.Error.WriteLineAsync($"emc train submit: {string.Join("; ", errors)}");
                return 2;
            }

            TrainingJobView? job = null;
            var status = await ApiCalls.CallAsync("train submit", async () => job = await client.SubmitTrainingAsync(spec!, cancellationToken));
            if (status != 0 || job is null)
            {
                return status;
            }

            if (result.GetValue(watch))
            {
                return await WatchAsync(client, job.Id, result.GetValue(json), cancellationToken);
            }

            Console.WriteLine(result.GetValue(json) ? JsonSerializer.Serialize(job, EmcJson.Indented) : $"submitted {job.Id}; follow it with `emc train watch {job.Id}`");
            return 0;
        });
        return command;
    }

    private static Command List()
    {
        var coordinator = CommonOptions.Coordinator();
        var json = CommonOptions.Json();
        var state = new Option<string?>("--state") { Description = "Only jobs in this state: waiting, running, completed, failed, cancelled." };
        var command = new Command("list", "List training jobs.") { coordinator, json, state };
        command.SetAction(async (result, cancellationToken) =>
        {
            if (!EmcJson.TryParseEnum<TrainingJobState>(result.GetValue(state), out var filter))
            {
                await Console.Error.WriteLineAsync($"emc train list: '{result.GetValue(state)}' is not a state; use waiting, running, completed, failed or cancelled.");
                return 2;
            }

            return await ApiCalls.CallAsync("train list", async () =>
            {
                var jobs = await ApiKeyLookup.Client(result, coordinator).GetTrainingJobsAsync(filter, 100, cancellationToken);
                if (result.GetValue(json))
                {
                    Console.WriteLine(JsonSerializer.Serialize(jobs, EmcJson.Indented));
                    return;
                }

                var rows = new List<string[]> { Header0 };
                rows.AddRange(jobs.Select(j => new[]
                {
                    j.Id,
                    j.Name,
                    EmcJson.EnumText(j.State),
                    j.Spec.Model.Name,
                    j.Spec.Dataset,
                    EmcJson.EnumText(j.Spec.Algorithm),
                    j.Round.ToString(CultureInfo.InvariantCulture),
                    j.Samples.ToString("N0", CultureInfo.InvariantCulture),
                    Accuracy(j.Final ?? j.Last),
                    j.Reason ?? "",
                }));
                Console.WriteLine(Table.Format(rows));
            });
        });
        return command;
    }

    private static Command Status()
    {
        var coordinator = CommonOptions.Coordinator();
        var json = CommonOptions.Json();
        var id = new Argument<string>("id") { Description = "The training job (train-N)." };
        var command = new Command("status", "Show a training job: progress, metrics and what each node contributed.") { coordinator, json, id };
        command.SetAction(async (result, cancellationToken) => await ApiCalls.CallAsync("train status", async () =>
        {
            var job = await ApiKeyLookup.Client(result, coordinator).GetTrainingJobAsync(result.GetValue(id)!, cancellationToken);
            Console.WriteLine(result.GetValue(json) ? JsonSerializer.Serialize(job, EmcJson.Indented) : Describe(job));
        }));
        return command;
    }

    private static Command Watch()
    {
        var coordinator = CommonOptions.Coordinator();
        var json = CommonOptions.Json();
        var id = new Argument<string>("id") { Description = "The training job (train-N)." };
        var command = new Command("watch", "Follow a training job with a live progress bar until it ends.") { coordinator, json, id };
        command.SetAction(async (result, cancellationToken) =>
            await WatchAsync(ApiKeyLookup.Client(result, coordinator), result.GetValue(id)!, result.GetValue(json), cancellationToken));
        return command;
    }

    private static Command Cancel()
    {
        var coordinator = CommonOptions.Coordinator();
        var id = new Argument<string>("id") { Description = "The training job (train-N)." };
        var command = new Command("cancel", "Cancel a training job.") { coordinator, id };
        command.SetAction(async (result, cancellationToken) => await ApiCalls.CallAsync("train cancel", async () =>
        {
            var job = await ApiKeyLookup.Client(result, coordinator).CancelTrainingAsync(result.GetValue(id)!, cancellationToken);
            Console.WriteLine($"{job.Id}: {EmcJson.EnumText(job.State)}");
        }));
        return command;
    }

    /// <summary>Polls the job and redraws one progress line per round; ends when the job ends (0 when it completed).</summary>
    internal static async Task<int> WatchAsync(EmcApiClient client, string id, bool json, CancellationToken cancellationToken, TextWriter? output = null)
    {
        output ??= Console.Out;
        var interactive = !Console.IsOutputRedirected && output == Console.Out;
        long shown = 0;
        while (true)
        {
            TrainingJobView job;
            IReadOnlyList<RoundSummary> rounds;
            try
            {
                job = await client.GetTrainingJobAsync(id, cancellationToken);
                rounds = await client.GetTrainingRoundsAsync(id, shown, cancellationToken);
            }
            catch (EmcApiException ex)
            {
                await Console.Error.WriteLineAsync($"emc train watch: {ex.Message}");
                return 1;
            }

            foreach (var round in rounds)
            {
                shown = round.Round;
                if (json)
                {
                    await output.WriteLineAsync(JsonSerializer.Serialize(round, EmcJson.Options));
                }
                else
                {
                    await output.WriteLineAsync(ProgressLine(job, round));
                }
            }

            if (job.State is TrainingJobState.Completed or TrainingJobState.Failed or TrainingJobState.Cancelled)
            {
                if (!json)
                {
                    await output.WriteLineAsync(Describe(job));
                }
                else
                {
                    await output.WriteLineAsync(JsonSerializer.Serialize(job, EmcJson.Options));
                }

                return job.State == TrainingJobState.Completed ? 0 : 1;
            }

            if (interactive && rounds.Count == 0 && job.Reason is { } reason)
            {
                await output.WriteAsync($"\r  {reason}".PadRight(100)[..100] + "\r");
            }

            await Task.Delay(TimeSpan.FromMilliseconds(500), cancellationToken);
        }
    }

    internal static string ProgressLine(TrainingJobView job, RoundSummary round)
    {
        const int Width = 24;
        var planned = job.PlannedRounds ?? Math.Max(round.Round, job.Round);
        var fraction = planned > 0 ? Math.Clamp((double)round.Round / planned, 0, 1) : 0;
        var filled = (int)Math.Round(fraction * Width);
        var bar = new StringBuilder().Append('[').Append('#', filled).Append('.', Width - filled).Append(']').ToString();
        var metric = round.EvalPerplexity is { } ppl ? $"ppl {ppl:0.00}" : round.EvalAccuracy is { } acc ? $"acc {acc:0.0000}" : "acc   -   ";
        return string.Create(CultureInfo.InvariantCulture,
            $"{bar} round {round.Round}/{planned}  loss {round.TrainLoss ?? double.NaN:0.0000}  held-out {metric}  {round.SamplesPerSecond:0} samples/s  nodes {round.Accepted}/{round.Nodes}");
    }

    internal static string Describe(TrainingJobView job)
    {
        var lines = new List<string>
        {
            string.Create(CultureInfo.InvariantCulture, $"{job.Id} {job.Name}: {EmcJson.EnumText(job.State)}{(job.Reason is null ? "" : $" ({job.Reason})")}"),
            string.Create(CultureInfo.InvariantCulture, $"  {job.Spec.Model.Name} on {job.Spec.Dataset}, {EmcJson.EnumText(job.Spec.Algorithm)} H={job.Spec.InnerSteps} batch {job.Spec.BatchSize}, {EmcJson.EnumText(job.Spec.Aggregator)}, {EmcJson.EnumText(job.Spec.Precision)} updates"),
            string.Create(CultureInfo.InvariantCulture, $"  rounds {job.Round}{(job.PlannedRounds is { } p ? $"/{p}" : "")}, samples {job.Samples:N0}{(job.TargetSamples is { } t ? $"/{t:N0}" : "")}"),
        };
        if (job.Final is { } final)
        {
            lines.Add(string.Create(CultureInfo.InvariantCulture, $"  final: {Metric(final)} on {final.EvalExamples:N0} held-out examples"));
        }
        else if (job.Last is { } last)
        {
            lines.Add(string.Create(CultureInfo.InvariantCulture, $"  last round: loss {last.TrainLoss ?? double.NaN:0.0000}, {Metric(last)}"));
        }

        if (job.Model is { } model)
        {
            lines.Add($"  model: {model} (emc model pull {model.Split(':')[0]})");
        }

        if (job.Nodes.Count > 0)
        {
            var rows = new List<string[]> { Header1 };
            rows.AddRange(job.Nodes.OrderBy(n => n.Key, StringComparer.Ordinal).Select(n => new[]
            {
                "  " + n.Key,
                n.Value.Rounds.ToString(CultureInfo.InvariantCulture),
                n.Value.Accepted.ToString(CultureInfo.InvariantCulture),
                n.Value.Rejected.ToString(CultureInfo.InvariantCulture),
                n.Value.Dropped.ToString(CultureInfo.InvariantCulture),
                n.Value.Samples.ToString("N0", CultureInfo.InvariantCulture),
                n.Value.SamplesPerSecond.ToString("0", CultureInfo.InvariantCulture),
                Core.Scheduling.Bytes.Format(n.Value.BytesSent),
            }));
            lines.Add(Table.Format(rows));
        }

        return string.Join(Environment.NewLine, lines);
    }

    private static string Metric(RoundSummary round) =>
        round.EvalPerplexity is { } ppl
            ? string.Create(CultureInfo.InvariantCulture, $"perplexity {ppl:0.000}, loss {round.EvalLoss:0.0000}")
            : string.Create(CultureInfo.InvariantCulture, $"accuracy {round.EvalAccuracy ?? double.NaN:0.0000}, loss {round.EvalLoss ?? double.NaN:0.0000}");

    private static string Accuracy(RoundSummary? round) =>
        round?.EvalAccuracy is { } acc ? acc.ToString("0.0000", CultureInfo.InvariantCulture)
        : round?.EvalPerplexity is { } ppl ? $"ppl {ppl.ToString("0.00", CultureInfo.InvariantCulture)}"
        : "";

    private static async Task<JsonObject> ReadDocumentAsync(string? path, CancellationToken cancellationToken)
    {
        if (path is null)
        {
            return [];
        }

        string text;
        try
        {
            text = path == "-" ? await Console.In.ReadToEndAsync(cancellationToken) : await File.ReadAllTextAsync(path, cancellationToken);
        }
        catch (IOException ex)
        {
            throw new FormatException($"{path}: {ex.Message}", ex);
        }

        return JobFile.Parse(text) switch
        {
            JsonObject document => document,
            null => [],
            _ => throw new FormatException($"{path}: a job file is a mapping of fields (model, dataset, ...)"),
        };
    }

    private static void Set(JsonObject document, string path, JsonNode? value)
    {
        var parts = path.Split('.');
        var node = document;
        foreach (var part in parts[..^1])
        {
            if (node[part] is not JsonObject child)
            {
                child = [];
                node[part] = child;
            }

            node = child;
        }

        node[parts[^1]] = value;
    }

    private static JsonNode? Convert(string flag, string value, FlagKind kind)
    {
        switch (kind)
        {
            case FlagKind.Integer:
                return long.TryParse(value, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var integer)
                    ? JsonValue.Create(integer)
                    : throw new FormatException($"{flag} must be a whole number, not '{value}'");
            case FlagKind.Number:
                return double.TryParse(value, NumberStyles.Float, CultureInfo.InvariantCulture, out var number) && double.IsFinite(number)
                    ? JsonValue.Create(number)
                    : throw new FormatException($"{flag} must be a number, not '{value}'");
            case FlagKind.IntList:
                var items = new JsonArray();
                foreach (var part in value.Split(',', StringSplitOptions.TrimEntries))
                {
                    items.Add(int.TryParse(part, NumberStyles.None, CultureInfo.InvariantCulture, out var item)
                        ? JsonValue.Create(item)
                        : throw new FormatException($"{flag} must be whole numbers separated by commas, not '{value}'"));
                }

                return items;
            default:
                return JsonValue.Create(value);
        }
    }

    private static (int Min, int Max) ParseNodes(string text)
    {
        var parts = text.Split("..", StringSplitOptions.TrimEntries);
        if (parts.Length is 1 or 2
            && int.TryParse(parts[0], NumberStyles.None, CultureInfo.InvariantCulture, out var min)
            && int.TryParse(parts[^1], NumberStyles.None, CultureInfo.InvariantCulture, out var max))
        {
            return (min, max);
        }

        throw new FormatException($"--nodes must be N or MIN..MAX, not '{text}'");
    }
}
