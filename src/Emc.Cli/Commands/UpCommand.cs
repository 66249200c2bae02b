using System.CommandLine;
using System.Diagnostics;
using Emc.Cli.Infrastructure;
using Emc.Client;
using Emc.Core.Registry;

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

    private static async Task<int> RunAsync(string root, int count, string urls, string grpcUrls, TimeSpan timeout, CancellationToken stop)
    {
        var logs = Path.Combine(root, "logs");
        var coordinatorData = Path.Combine(root, "coordinator");
        var endpointsFile = Path.Combine(coordinatorData, "endpoints.json");
        if (File.Exists(endpointsFile))
        {
            File.Delete(endpointsFile);
        }
        Console.WriteLine($"Starting a coordinator and {count} nodes (data {root}, logs {logs}) ...");
        var coordinator = SelfProcess.Start(
            ["coordinator", "--data", coordinatorData, "--urls", urls, "--grpc-urls", grpcUrls],
            Path.Combine(logs, "coordinator.log"));
        var nodeProcesses = new List<Process>();
        try
        {
            using var deadline = CancellationTokenSource.CreateLinkedTokenSource(stop);
            deadline.CancelAfter(timeout);

            // The coordinator writes its bound addresses once it listens (port 0 becomes a real port).
            Uri? apiUrl = null;
            if (!await WaitAsync(() => Task.FromResult((apiUrl = ReadApiUrl(endpointsFile, coordinator.Id)) is not null), coordinator, deadline.Token))
            {
                return await FailAsync(coordinator, logs, "the coordinator did not start", stop);
            }

            var client = EmcApiClient.Create(apiUrl!, TimeSpan.FromSeconds(5));
            if (!await WaitAsync(() => client.IsReadyAsync(deadline.Token), coordinator, deadline.Token))
            {
                return await FailAsync(coordinator, logs, "the coordinator did not become ready", stop);
            }

            for (var i = 1; i <= count; i++)
            {
                var name = $"node-{i}";
                nodeProcesses.Add(SelfProcess.Start(
                    ["node", "--coordinator", apiUrl!.ToString(), "--name", name, "--data", Path.Combine(root, "nodes", name)],
                    Path.Combine(logs, $"{name}.log")));
            }

            var names = Enumerable.Range(1, count).Select(i => $"node-{i}").ToHashSet();
            var allConnected = await WaitAsync(
                async () =>
                {
                    var connected = await client.GetNodesAsync(NodeStatus.Connected, deadline.Token);
                    return names.IsSubsetOf(connected.Select(n => n.Name));
                },
                coordinator,
                deadline.Token);
            if (!allConnected)
            {
                return await FailAsync(coordinator, logs, $"not all {count} nodes connected", stop);
            }

            Console.WriteLine($"EMC is up: API {apiUrl} with {count} nodes connected. `emc nodes` lists them; Ctrl-C stops everything.");
            await Task.WhenAny(Task.Delay(Timeout.Infinite, stop), coordinator.WaitForExitAsync(CancellationToken.None));
            if (!stop.IsCancellationRequested)
            {
                await Console.Error.WriteLineAsync($"emc up: the coordinator exited with code {coordinator.ExitCode}; see {logs}/coordinator.log.");
                return 1;
            }

            return 0;
        }
        catch (OperationCanceledException) when (stop.IsCancellationRequested)
        {
            return 0;
        }
        finally
        {
            Console.WriteLine("Stopping: nodes drain first, then the coordinator ...");
            await Task.WhenAll(nodeProcesses.Select(p => SelfProcess.StopAsync(p, TimeSpan.FromSeconds(30))));
            await SelfProcess.StopAsync(coordinator, TimeSpan.FromSeconds(30));
            Console.WriteLine("Stopped.");
        }
    }

    private static async Task<bool> WaitAsync(Func<Task<bool>> condition, Process coordinator, CancellationToken cancellationToken)
    {
        while (!cancellationToken.IsCancellationRequested && !coordinator.HasExited)
        {
            try
            {
                if (await condition())
                {
                    return true;
                }
            }
            catch (Exception ex) when (ex is EmcApiException or HttpRequestException or TaskCanceledException)
            {
                // Not up yet.
            }

            try
            {
                await Task.Delay(TimeSpan.FromMilliseconds(250), cancellationToken);
            }
            catch (OperationCanceledException)
            {
                return false;
            }
        }

        return false;
    }

    private static Uri? ReadApiUrl(string endpointsFile, int pid)
    {
        try
        {
            using var document = System.Text.Json.JsonDocument.Parse(File.ReadAllText(endpointsFile));
            return document.RootElement.GetProperty("pid").GetInt32() == pid
                ? new Uri(document.RootElement.GetProperty("api").GetString()!)
                : null;
        }
        catch (Exception ex) when (ex is IOException or System.Text.Json.JsonException or KeyNotFoundException or InvalidOperationException)
        {
            return null;
        }
    }

    private static async Task<int> FailAsync(Process coordinator, string logs, string what, CancellationToken stop)
    {
        if (stop.IsCancellationRequested)
        {
            return 0;
        }

        var reason = coordinator.HasExited ? $"the coordinator exited with code {coordinator.ExitCode}" : what;
        await Console.Error.WriteLineAsync($"emc up: {reason}; see the logs in {logs}.");
        return 1;
    }
}
