using System.Net;
using System.Net.Sockets;
using Emc.Client;
using Emc.Core.Registry;

namespace Emc.IntegrationTests.Infrastructure;

/// <summary>
/// A real network on loopback: an `emc coordinator` process and N `emc node` processes on free
/// ports, each with its own data folder, reached through the same client the CLI uses.
/// </summary>
public sealed class EmcNetwork : IAsyncDisposable
{
    private readonly List<EmcProcess?> _nodes = [];

    private EmcNetwork(string root, int apiPort, int grpcPort)
    {
        Root = root;
        ApiUrl = new Uri($"http://127.0.0.1:{apiPort}/");
        GrpcPort = grpcPort;
        Api = EmcApiClient.Create(ApiUrl, apiKey: EmcProcess.OperatorKey);
    }

    public static readonly TimeSpan StartTimeout = TimeSpan.FromSeconds(120);

    public string Root { get; }

    public Uri ApiUrl { get; }

    public int GrpcPort { get; }

    public EmcApiClient Api { get; }

    public EmcProcess Coordinator { get; private set; } = null!;

    public IReadOnlyList<EmcProcess?> Nodes => _nodes;

    /// <summary>Extra arguments every node is started with.</summary>
    public IReadOnlyList<string> NodeArguments { get; private init; } = [];

    public static async Task<EmcNetwork> StartAsync(int nodeCount, params string[] nodeArguments)
    {
        var network = new EmcNetwork(Directory.CreateTempSubdirectory("emc-net-").FullName, FreePort(), FreePort()) { NodeArguments = nodeArguments };
        await network.StartCoordinatorAsync();
        for (var i = 0; i < nodeCount; i++)
        {
            network._nodes.Add(null);
            network.StartNode(i);
        }

        await Task.WhenAll(Enumerable.Range(0, nodeCount).Select(network.WaitForNodeAsync));
        return network;
    }

    public static string NodeName(int index) => $"node-{index + 1}";

    public async Task StartCoordinatorAsync()
    {
        Coordinator = EmcProcess.Start(
            "coordinator", "--data", Path.Combine(Root, "coordinator"),
            "--urls", ApiUrl.ToString().TrimEnd('/'), "--grpc-urls", $"http://127.0.0.1:{GrpcPort}");
        await Coordinator.WaitForLineAsync(l => l.StartsWith("EMC coordinator ready", StringComparison.Ordinal), StartTimeout);
    }

    public EmcProcess StartNode(int index)
    {
        var node = EmcProcess.Start(
            ["node", "--coordinator", ApiUrl.ToString(), "--name", NodeName(index), "--data", Path.Combine(Root, "nodes", NodeName(index)), .. NodeArguments]);
        _nodes[index] = node;
        return node;
    }

    /// <summary>Waits until the node process says it is connected, and returns its id.</summary>
    public async Task<string> WaitForNodeAsync(int index)
    {
        var line = await _nodes[index]!.WaitForLineAsync(l => l.Contains("Connected as ", StringComparison.Ordinal), StartTimeout);
        var start = line.IndexOf("0x", StringComparison.Ordinal);
        return line.Substring(start, 42);
    }

    /// <summary>Polls the registry until the node reaches the status; returns how long it took.</summary>
    public async Task<NodeView> WaitForStatusAsync(string id, NodeStatus status, TimeSpan timeout)
    {
        using var deadline = new CancellationTokenSource(timeout);
        NodeView? last = null;
        while (true)
        {
            try
            {
                last = await Api.GetNodeAsync(id, deadline.Token);
                if (last.Status == status)
                {
                    return last;
                }

                await Task.Delay(100, deadline.Token);
            }
            catch (OperationCanceledException)
            {
                throw new TimeoutException($"Node {id} did not become {status} within {timeout}; it is {last?.Status}.");
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        await Task.WhenAll(_nodes.Where(n => n is not null).Select(n => n!.DisposeAsync().AsTask()));
        await Coordinator.DisposeAsync();
        try
        {
            Directory.Delete(Root, recursive: true);
        }
        catch (IOException)
        {
            // Left for the OS to clean.
        }
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
