using System.CommandLine;
using Emc.Cli.Infrastructure;

namespace Emc.Cli.Commands;

/// <summary>`emc up`: a whole local network — one coordinator and N nodes as separate processes.</summary>
internal static class UpCommand
{
    public static Command Create()
    {
        var nodes = new Option<int>("--nodes") { Description = "Number of local node agents. Default 3.", DefaultValueFactory = _ => 3 };
        var data = new Option<string>("--data") { Description = "Data folder of the whole network (coordinator/, nodes/, logs/). Default ~/.emc/up.", DefaultValueFactory = _ => CommonOptions.Home("up") };
        var urls = new Option<string>("--urls") { Description = "Coordinator API address. Default http://127.0.0.1:7070.", DefaultValueFactory = _ => "http://127.0.0.1:7070" };
        var grpcUrls = new Option<string>("--grpc-urls") { Description = "Coordinator node gateway address. Default http://127.0.0.1:7071.", DefaultValueFactory = _ => "http://127.0.0.1:7071" };
        var timeout = new Option<int>("--timeout") { Description = "Seconds to wait for everything to be ready. Default 180.", DefaultValueFactory = _ => 180 };
        var command = new Command("up", "Start a local network: a coordinator and N node agents on loopback, until Ctrl-C.") { nodes, data, urls, grpcUrls, timeout };
        command.SetAction(async (result, _) =>
        {
            var count = result.GetValue(nodes);
            if (count is < 0 or > 64)
            {
                await Console.Error.WriteLineAsync("emc up: --nodes must be between 0 and 64.");
                return 2;
            }

            var root = Path.GetFullPath(result.GetValue(data)!);
            var (stop, registrations) = Signals.OnTermination();
            using (stop)
            using (registrations)
            {
                return await RunAsync(root, count, result.GetValue(urls)!, result.GetValue(grpcUrls)!, TimeSpan.FromSeconds(result.GetValue(timeout)), stop.Token);
            }
        });
        return command;
    }

    private static bool IsDefault(string root) =>
        string.Equals(Path.GetFullPath(root).TrimEnd('/'), Path.GetFullPath(CommonOptions.Home("up")).TrimEnd('/'), StringComparison.Ordinal);

    private static async Task<int> RunAsync(string root, int count, string urls, string grpcUrls, TimeSpan timeout, CancellationToken stop)
    {
        Console.WriteLine($"Starting a coordinator and {count} nodes (data {root}, logs {Path.Combine(root, "logs")}) ...");
        LocalNetwork network;
        try
        {
            network = await LocalNetwork.StartAsync(root, count, urls, grpcUrls, [], timeout, stop);
        }
        catch (OperationCanceledException) when (stop.IsCancellationRequested)
        {
            return 0;
        }
        catch (InvalidOperationException ex)
        {
            if (stop.IsCancellationRequested)
            {
                return 0;
            }

            await Console.Error.WriteLineAsync($"emc up: {ex.Message}.");
            return 1;
        }

        await using (network)
        {
            Console.WriteLine($"EMC is up: API {network.ApiUrl} with {count} nodes connected. `emc nodes` lists them; Ctrl-C stops everything.");
            Console.WriteLine(File.Exists(network.OperatorKeyFile)
                ? $"Operator key: {network.OperatorKeyFile}. `emc` commands on this machine read it themselves{(IsDefault(root) ? "" : " when the network runs in its default folder")}; elsewhere: export EMC_API_KEY=$(cat {network.OperatorKeyFile})"
                : "Operator key: the one in EMC_OPERATOR_KEY; other terminals pass it as EMC_API_KEY.");
            await Task.WhenAny(Task.Delay(Timeout.Infinite, stop).ContinueWith(_ => { }, TaskScheduler.Default), network.Coordinator.WaitForExitAsync(CancellationToken.None));
            var exited = !stop.IsCancellationRequested;
            if (exited)
            {
                await Console.Error.WriteLineAsync($"emc up: the coordinator exited with code {network.Coordinator.ExitCode}; see {network.Logs}/coordinator.log.");
            }

            Console.WriteLine("Stopping: nodes drain first, then the coordinator ...");
            return exited ? 1 : 0;
        }
    }
}
