using System.CommandLine;
using Emc.Cli.Infrastructure;
using Emc.Core.Verification;
using Emc.Node.Agent;
using Emc.Node.Connection;
using Microsoft.Extensions.Logging;

namespace Emc.Cli.Commands;

/// <summary>`emc node`: runs a node agent that joins the network and stays connected.</summary>
internal static class NodeCommand
{
    public static Command Create()
    {
        var coordinator = CommonOptions.Coordinator();
        var name = new Option<string>("--name") { Description = "Node name shown in listings (default: host name).", DefaultValueFactory = _ => Environment.MachineName };
        var data = new Option<string>("--data") { Description = "Data folder: the node key (its identity) and caches. Default ~/.emc/node.", DefaultValueFactory = _ => CommonOptions.Home("node") };
        var devices = new Option<string>("--devices") { Description = "Devices to offer, ','-separated: cpu, cuda:0, ... Default cpu.", DefaultValueFactory = _ => "cpu" };
        var labels = new Option<string[]>("--label")
        {
            Description = "Placement label key=value, such as region=eu; repeat for more. Keys and values: 1-64 letters, digits, '.', '_', '-', ':'.",
            Arity = ArgumentArity.OneOrMore,
        };
        // Read as text and parsed here, so that a bad price is reported like the other option errors (exit code 2).
        var price = new Option<string>("--price")
        {
            Description = "Asking price in ledger micro-units per device-hour, a whole number >= 0. Default 0: the network default.",
            DefaultValueFactory = _ => "0",
        };
        var threads = new Option<int>("--training-threads")
        {
            Description = "CPU threads for training (0 = every core, the default). Several nodes on one machine share its cores.",
            DefaultValueFactory = _ => 0,
        };
        var inferenceThreads = new Option<int>("--inference-threads")
        {
            Description = "CPU threads ONNX Runtime uses per served model (0 = its choice, one per physical core; the default).",
            DefaultValueFactory = _ => 0,
        };
        var engines = new Option<string[]>("--engine")
        {
            Description = "Serve an OpenAI-compatible server this machine runs (vLLM, llama.cpp server, ...) as NAME=URL, such as "
                + "tiny=http://127.0.0.1:8080/v1: NAME is the model name the network serves it under (deploy it with "
                + "`emc model deploy NAME --engine`), URL its OpenAI base URL (http or https). Repeat for more.",
            Arity = ArgumentArity.OneOrMore,
        };
        var simulateFault = new Option<string>("--simulate-fault")
        {
            Description = "Misbehave on purpose, to test a network's defences (docs/verification.md): sign-flip, random, scaled, lazy, copy "
                + "(training updates), withhold-state (training replays), wrong-output[:FRACTION] (inference answers; default 0.1 of them) or "
                + "overstated-hardware (admission and challenges). Never on a node that earns for real: its faults are caught and its stake slashed.",
        };
        var command = new Command("node", "Run a node agent: register with the coordinator and take work.") { coordinator, name, data, devices, labels, price, threads, inferenceThreads, engines, simulateFault };
        command.SetAction(async (result, _) =>
        {
            NodeAgentOptions options;
            try
            {
                options = new NodeAgentOptions
                {
                    Coordinator = result.GetValue(coordinator)!,
                    Name = result.GetValue(name)!,
                    DataDirectory = Path.GetFullPath(result.GetValue(data)!),
                    Devices = result.GetValue(devices)!.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries),
                    Labels = NodeOptionParser.ParseLabels(result.GetValue(labels) ?? []),
                    Engines = NodeOptionParser.ParseEngines(result.GetValue(engines) ?? []),
                    Price = NodeOptionParser.ParsePrice(result.GetValue(price)),
                    TrainingThreads = result.GetValue(threads) is var t and >= 0 and <= 1024 ? t : throw new ArgumentException("--training-threads must be 0 to 1024."),
                    InferenceThreads = result.GetValue(inferenceThreads) is var i and >= 0 and <= 1024 ? i : throw new ArgumentException("--inference-threads must be 0 to 1024."),
                    SimulateFault = result.GetValue(simulateFault) is { } fault ? ParseFault(fault) : null,
                };
                options.Validate();
            }
            catch (ArgumentException ex)
            {
                await Console.Error.WriteLineAsync($"emc node: {ex.Message}");
                return 2;
            }

            using var loggerFactory = LoggerFactory.Create(b => b.AddSimpleConsole(o =>
            {
                o.SingleLine = true;
                o.TimestampFormat = "HH:mm:ss ";
            }));
            var (stop, registrations) = Signals.OnTermination();
            using (stop)
            using (registrations)
            {
                try
                {
                    var agent = new NodeAgent(options, new TorchDeviceProbe(options.TrainingThreads), TimeProvider.System, loggerFactory.CreateLogger<NodeAgent>());
                    await agent.RunAsync(stop.Token);
                    return 0;
                }
                catch (RegistrationRefusedException ex)
                {
                    await Console.Error.WriteLineAsync($"emc node: {ex.Message}");
                    return 3;
                }
                catch (Exception ex) when (ex is ArgumentException or InvalidDataException or UnauthorizedAccessException)
                {
                    await Console.Error.WriteLineAsync($"emc node: {ex.Message}");
                    return 2;
                }
            }
        });
        return command;
    }

    private static FaultSimulation ParseFault(string text)
    {
        try
        {
            return FaultSimulation.Parse(text);
        }
        catch (FormatException ex)
        {
            throw new ArgumentException($"--simulate-fault: {ex.Message}", ex);
        }
    }
}
