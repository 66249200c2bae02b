using System.Diagnostics;
using Emc.Client;
using Emc.Core.Registry;

namespace Emc.Cli.Infrastructure;

/// <summary>A coordinator and N node agents on loopback, each its own `emc` process (`emc up`, `emc demo`).</summary>
internal sealed class LocalNetwork : IAsyncDisposable
{
    private readonly Process _coordinator;
    private readonly List<Process> _nodes = [];

    private LocalNetwork(string root, Process coordinator)
    {
        Root = root;
        Logs = Path.Combine(root, "logs");
        _coordinator = coordinator;
    }

    public string Root { get; }

    public string Logs { get; }

    public Uri? ApiUrl { get; private set; }

    /// <summary>The operator key of the network's coordinator, once it started.</summary>
    public string? ApiKey { get; private set; }

    /// <summary>Where the operator key is kept (when the coordinator wrote one).</summary>
    public string OperatorKeyFile => Path.Combine(Root, "coordinator", "operator.key");

    /// <summary>A client of the coordinator with its operator key.</summary>
    public EmcApiClient CreateClient(TimeSpan timeout) => EmcApiClient.Create(ApiUrl!, timeout, ApiKey);

    public Process Coordinator => _coordinator;

    public IReadOnlyList<Process> Nodes => _nodes;

    /// <summary>
    /// Starts everything and waits until the coordinator is ready and every node is connected.
    /// Throws <see cref="InvalidOperationException"/> (with where the logs are) when that fails in time.
    /// </summary>
    public static async Task<LocalNetwork> StartAsync(
        string root, int count, string urls, string grpcUrls, IReadOnlyList<string> nodeArguments, TimeSpan timeout, CancellationToken cancellationToken)
    {
        var coordinatorData = Path.Combine(root, "coordinator");
        var endpointsFile = Path.Combine(coordinatorData, "endpoints.json");
        if (File.Exists(endpointsFile))
        {
            File.Delete(endpointsFile);
        }

        var coordinator = SelfProcess.Start(
            ["coordinator", "--data", coordinatorData, "--urls", urls, "--grpc-urls", grpcUrls],
            Path.Combine(root, "logs", "coordinator.log"));
        var network = new LocalNetwork(root, coordinator);
        try
        {
            using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            deadline.CancelAfter(timeout);

            // The coordinator writes its bound addresses once it listens (port 0 becomes a real port).
            if (!await network.WaitAsync(() => Task.FromResult((network.ApiUrl = ReadApiUrl(endpointsFile, coordinator.Id)) is not null), deadline.Token))
            {
                throw network.Failure("the coordinator did not start");
            }

            // The coordinator writes its operator key before its endpoints; a key from the environment
            // (EMC_OPERATOR_KEY, which the coordinator inherits) means there is no file.
            network.ApiKey = ReadKey(network.OperatorKeyFile)
                ?? Environment.GetEnvironmentVariable("EMC_OPERATOR_KEY")
                ?? Environment.GetEnvironmentVariable(ApiKeyLookup.EnvironmentVariable);
            var client = network.CreateClient(TimeSpan.FromSeconds(5));
            if (!await network.WaitAsync(() => client.IsReadyAsync(deadline.Token), deadline.Token))
            {
                throw network.Failure("the coordinator did not become ready");
            }

            for (var i = 1; i <= count; i++)
            {
                network.StartNode(i, nodeArguments);
            }

            var names = Enumerable.Range(1, count).Select(NodeName).ToHashSet();
            var allConnected = await network.WaitAsync(
                async () =>
                {
                    var connected = await client.GetNodesAsync(NodeStatus.Connected, deadline.Token);
                    return names.IsSubsetOf(connected.Select(n => n.Name));
                },
                deadline.Token);
            if (!allConnected)
            {
                throw network.Failure($"not all {count} nodes connected");
            }

            return network;
        }
        catch
        {
            await network.DisposeAsync();
            throw;
        }
    }

    public static string NodeName(int index) => $"node-{index}";

    private static string? ReadKey(string path)
    {
        try
        {
            return File.Exists(path) && File.ReadAllText(path).Trim() is { Length: > 0 } key ? key : null;
        }
        catch (IOException)
        {
            return null;
        }
    }

    /// <summary>Starts node <paramref name="index"/> (again, after it was killed).</summary>
    public Process StartNode(int index, IReadOnlyList<string> nodeArguments)
    {
        var name = NodeName(index);
        var process = SelfProcess.Start(
            ["node", "--coordinator", ApiUrl!.ToString(), "--name", name, "--data", Path.Combine(Root, "nodes", name), .. nodeArguments],
            Path.Combine(Logs, $"{name}.log"));
        _nodes.Add(process);
        return process;
    }

    /// <summary>Nodes drain first, then the coordinator stops.</summary>
    public async ValueTask DisposeAsync()
    {
        await Task.WhenAll(_nodes.Where(p => !p.HasExited).Select(p => SelfProcess.StopAsync(p, TimeSpan.FromSeconds(30))));
        await SelfProcess.StopAsync(_coordinator, TimeSpan.FromSeconds(30));
        foreach (var process in _nodes)
        {
            process.Dispose();
        }

        _coordinator.Dispose();
    }

    private InvalidOperationException Failure(string what) =>
        new($"{(_coordinator.HasExited ? $"the coordinator exited with code {_coordinator.ExitCode}" : what)}; see the logs in {Logs}");

    private async Task<bool> WaitAsync(Func<Task<bool>> condition, CancellationToken cancellationToken)
    {
        while (!cancellationToken.IsCancellationRequested && !_coordinator.HasExited)
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
}
