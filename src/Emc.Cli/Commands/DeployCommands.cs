using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using Emc.Cli.Infrastructure;
using Emc.Client;
using Emc.Core;
using Emc.Core.Inference;

namespace Emc.Cli.Commands;

/// <summary>`emc model deploy`, `emc model undeploy` and `emc deployments`: models served by replicas on nodes.</summary>
internal static class DeployCommands
{
    private static readonly string[] Header = ["ID", "KIND", "MODEL", "STATE", "REPLICAS", "DESIRED", "BATCH", "DEVICE", "REQUESTS", "TOKENS IN/OUT", "BUDGET LEFT", "CREATED"];

    /// <summary>
    /// `emc model deploy NAME[:VERSION] --replicas MIN..MAX [--max-batch B] [--max-delay-us D] [--device cpu|cuda]`,
    /// or `emc model deploy NAME --engine --replicas MIN..MAX` for an external engine the nodes expose.
    /// </summary>
    public static Command Deploy()
    {
        var coordinator = CommonOptions.Coordinator();
        var json = CommonOptions.Json();
        var reference = new Argument<string>("model") { Description = "NAME or NAME:VERSION (default: the newest version); with --engine, the engine's NAME." };
        var replicas = new Option<string>("--replicas") { Description = "MIN..MAX replicas, or one number for both (default 1).", DefaultValueFactory = _ => "1" };
        var maxBatch = new Option<int>("--max-batch") { Description = "Rows per batch a replica forms (default 1: no batching).", DefaultValueFactory = _ => 1 };
        var maxDelay = new Option<long>("--max-delay-us") { Description = "How long a partial batch waits for more requests, microseconds (default 0)." };
        var device = new Option<string>("--device") { Description = "cpu or cuda (default cpu).", DefaultValueFactory = _ => "cpu" };
        var maxOngoing = new Option<int>("--max-ongoing") { Description = "Requests the router keeps in flight on one replica (default max(8, 2 x max-batch), so that batches can fill; 32 for an engine)." };
        var engine = new Option<bool>("--engine")
        {
            Description = "Deploy the external engine NAME that nodes expose (emc node --engine NAME=URL) instead of a registered model: "
                + "replicas go to nodes that have it, and OpenAI requests for NAME pass through to it.",
        };
        var budget = new Option<string?>("--budget") { Description = "EMC its requests may cost, reserved from your balance now (a user's deployment needs one); requests are refused once it is spent, and what is left is refunded at undeploy." };
        var command = new Command("deploy", "Serve a registered model, or an external engine, on nodes.") { coordinator, json, reference, replicas, maxBatch, maxDelay, device, maxOngoing, engine, budget };
        command.SetAction(async (result, cancellationToken) =>
        {
            var isEngine = result.GetValue(engine);
            if (!ModelCommand.TryParseReference(result.GetValue(reference)!, out var name, out var version) || (isEngine && (version is not null || !EngineNames.IsValid(name))))
            {
                await Console.Error.WriteLineAsync(isEngine
                    ? $"emc model deploy: '{result.GetValue(reference)}' is not an engine name: {EngineNames.Rule}."
                    : $"emc model deploy: '{result.GetValue(reference)}' is not NAME or NAME:VERSION.");
                return 2;
            }

            if (isEngine && (result.GetResult(maxBatch) is { Implicit: false } || result.GetResult(maxDelay) is { Implicit: false } || result.GetResult(device) is { Implicit: false }))
            {
                await Console.Error.WriteLineAsync("emc model deploy: --max-batch, --max-delay-us and --device do not apply to an engine, which batches on its own devices.");
                return 2;
            }

            if (!TryParseRange(result.GetValue(replicas)!, out var min, out var max))
            {
                await Console.Error.WriteLineAsync($"emc model deploy: --replicas must be MIN..MAX or N, not '{result.GetValue(replicas)}'.");
                return 2;
            }

            long? units = null;
            if (result.GetValue(budget) is { } emc)
            {
                if (!LedgerCommands.TryParseAmount(emc, out var parsed, out var error))
                {
                    await Console.Error.WriteLineAsync($"emc model deploy: --budget: {error}");
                    return 2;
                }

                units = parsed;
            }

            var spec = new DeploymentSpec
            {
                Budget = units,
                Model = name,
                Version = version,
                Engine = isEngine,
                MinReplicas = min,
                MaxReplicas = max,
                MaxBatch = result.GetValue(maxBatch),
                MaxDelayMicroseconds = result.GetValue(maxDelay),
                Device = result.GetValue(device)!,
                MaxOngoingPerReplica = result.GetValue(maxOngoing) is var ongoing and not 0 ? ongoing : null,
            };
            return await ApiCalls.CallAsync("model deploy", async () =>
            {
                var view = await ApiKeyLookup.Client(result, coordinator).DeployAsync(spec, cancellationToken);
                Console.WriteLine(result.GetValue(json)
                    ? JsonSerializer.Serialize(view, EmcJson.Indented)
                    : view.Spec.Engine
                        ? $"Deployed engine {view.Spec.Model} as {view.Id} ({view.Spec.MinReplicas}..{view.Spec.MaxReplicas} replicas, on nodes started with --engine {view.Spec.Model}=URL). Call it with: emc chat {view.Spec.Model}, or the OpenAI API at /v1"
                        : $"Deployed {view.Spec.Model}:{view.Version} as {view.Id} ({view.Spec.MinReplicas}..{view.Spec.MaxReplicas} replicas). Call it with: emc infer {view.Spec.Model} --input FILE|JSON");
            });
        });
        return command;
    }

    /// <summary>`emc model top-up ID EMC`: more budget for a paid deployment.</summary>
    public static Command TopUp()
    {
        var coordinator = CommonOptions.Coordinator();
        var json = CommonOptions.Json();
        var target = new Argument<string>("deployment") { Description = "The deployment's id (emc deployments)." };
        var amount = new Argument<string>("amount") { Description = "EMC to add, such as 2.5." };
        var key = new Option<string?>("--idempotency-key") { Description = "Send this key instead of a fresh one, to retry without paying twice." };
        var command = new Command("top-up", "Add to a paid deployment's budget from your balance.") { coordinator, json, target, amount, key };
        command.SetAction(async (result, cancellationToken) =>
        {
            if (!LedgerCommands.TryParseAmount(result.GetValue(amount)!, out var units, out var error))
            {
                await Console.Error.WriteLineAsync($"emc model top-up: {error}");
                return 2;
            }

            return await ApiCalls.CallAsync("model top-up", async () =>
            {
                var view = await ApiKeyLookup.Client(result, coordinator).TopUpDeploymentAsync(result.GetValue(target)!, units, result.GetValue(key) ?? Guid.NewGuid().ToString("N"), cancellationToken);
                Console.WriteLine(result.GetValue(json)
                    ? JsonSerializer.Serialize(view, EmcJson.Indented)
                    : $"{view.Id}: {LedgerCommands.Emc(view.BudgetLeft ?? 0)} EMC left.");
            });
        });
        return command;
    }

    /// <summary>`emc model undeploy ID|NAME`.</summary>
    public static Command Undeploy()
    {
        var coordinator = CommonOptions.Coordinator();
        var target = new Argument<string>("deployment") { Description = "A deployment id, or a model name with one deployment." };
        var command = new Command("undeploy", "Stop serving a deployment.") { coordinator, target };
        command.SetAction(async (result, cancellationToken) => await ApiCalls.CallAsync("model undeploy", async () =>
        {
            var id = await ApiKeyLookup.Client(result, coordinator).UndeployAsync(result.GetValue(target)!, cancellationToken);
            Console.WriteLine($"Undeployed {id}.");
        }));
        return command;
    }

    /// <summary>`emc deployments [--json]`.</summary>
    public static Command List()
    {
        var coordinator = CommonOptions.Coordinator();
        var json = CommonOptions.Json();
        var command = new Command("deployments", "List deployments and their replicas.") { coordinator, json };
        command.SetAction(async (result, cancellationToken) => await ApiCalls.CallAsync("deployments", async () =>
        {
            var deployments = await ApiKeyLookup.Client(result, coordinator).GetDeploymentsAsync(cancellationToken);
            if (result.GetValue(json))
            {
                Console.WriteLine(JsonSerializer.Serialize(deployments, EmcJson.Indented));
                return;
            }

            var rows = new List<string[]> { Header };
            rows.AddRange(deployments.Select(d => new[]
            {
                d.Id,
                d.Kind,
                d.Spec.Engine ? d.Spec.Model : $"{d.Spec.Model}:{d.Version}",
                d.State,
                $"{d.Replicas.Count(r => r.State == "ready")}/{d.Replicas.Count} ({d.Spec.MinReplicas}..{d.Spec.MaxReplicas})",
                d.DesiredReplicas.ToString(CultureInfo.InvariantCulture),
                d.Spec.Engine ? "-" : d.Spec.MaxBatch == 1 ? "off" : string.Create(CultureInfo.InvariantCulture, $"{d.Spec.MaxBatch} / {d.Spec.MaxDelayMicroseconds} µs"),
                d.Spec.Engine ? "-" : d.Spec.Device,
                d.Usage.Unmetered == 0
                    ? d.Usage.Requests.ToString(CultureInfo.InvariantCulture)
                    : string.Create(CultureInfo.InvariantCulture, $"{d.Usage.Requests} ({d.Usage.Unmetered} unmetered)"),
                string.Create(CultureInfo.InvariantCulture, $"{d.Usage.PromptTokens}/{d.Usage.CompletionTokens}"),
                d.BudgetLeft is { } left ? LedgerCommands.Emc(left) + " EMC" : "free",
                d.CreatedAt.ToString("yyyy-MM-dd HH:mm", CultureInfo.InvariantCulture),
            }));
            Console.WriteLine(Table.Format(rows));

            // Why replicas wait, in the scheduler's words (such as no node with the engine's label).
            foreach (var d in deployments)
            {
                foreach (var reason in d.Replicas.Where(r => r.State != "ready" && !string.IsNullOrEmpty(r.Reason)).Select(r => r.Reason).Distinct(StringComparer.Ordinal))
                {
                    Console.WriteLine($"{d.Id}: waiting: {reason}");
                }
            }
        }));
        return command;
    }

    internal static bool TryParseRange(string text, out int min, out int max)
    {
        var parts = text.Split("..");
        min = max = 0;
        return parts.Length switch
        {
            1 => int.TryParse(parts[0], NumberStyles.None, CultureInfo.InvariantCulture, out min) && (max = min) >= 0,
            2 => int.TryParse(parts[0], NumberStyles.None, CultureInfo.InvariantCulture, out min)
                 && int.TryParse(parts[1], NumberStyles.None, CultureInfo.InvariantCulture, out max),
            _ => false,
        };
    }
}
