using System.Diagnostics;
using System.Text.Json;
using Emc.Core;
using Emc.Core.Registry;
using Emc.IntegrationTests.Infrastructure;

namespace Emc.IntegrationTests;

/// <summary>Whole networks of real processes on loopback.</summary>
public sealed class NetworkTests
{
    [Fact]
    public async Task Network_NodeKilledAndRestarted_LostWithin15sThenBackWithSameId()
    {
        await using var network = await EmcNetwork.StartAsync(nodeCount: 3);
        var ids = await Task.WhenAll(Enumerable.Range(0, 3).Select(network.WaitForNodeAsync));

        // Three connected nodes, each with hardware and benchmark figures.
        var nodes = await network.Api.GetNodesAsync(NodeStatus.Connected, CancellationToken.None);
        Assert.Equal(ids.Order(), nodes.Select(n => n.Id).Order());
        Assert.All(nodes, n =>
        {
            Assert.True(n.Hardware.LogicalCores >= 1);
            Assert.True(n.Hardware.MemoryBytes > 0);
            Assert.Equal("cpu", Assert.Single(n.Benchmark.Devices).Device);
            Assert.True(n.Benchmark.Devices[0].MatmulGflops > 0);
            Assert.True(n.Benchmark.Devices[0].MemoryBandwidthGBps > 0);
            Assert.True(n.Benchmark.LinkDownloadMbps > 0);
        });

        // SIGKILL: no goodbye. The coordinator must notice within 15 s.
        var killed = Stopwatch.StartNew();
        network.Nodes[1]!.KillHard();
        await network.WaitForStatusAsync(ids[1], NodeStatus.Lost, TimeSpan.FromSeconds(15));
        Assert.True(killed.Elapsed < TimeSpan.FromSeconds(15));
        Assert.Equal(NodeStatus.Connected, (await network.Api.GetNodeAsync(ids[0], CancellationToken.None)).Status);

        // Same data folder, same identity.
        network.StartNode(1);
        Assert.Equal(ids[1], await network.WaitForNodeAsync(1));
        var back = await network.WaitForStatusAsync(ids[1], NodeStatus.Connected, TimeSpan.FromSeconds(30));
        Assert.Equal(2, back.Registrations);
        Assert.Equal(3, (await network.Api.GetNodesAsync(null, CancellationToken.None)).Count);
    }

    [Fact]
    public async Task Node_Sigterm_DrainsLeavesCleanlyAndExitsZero()
    {
        await using var network = await EmcNetwork.StartAsync(nodeCount: 1);
        var id = await network.WaitForNodeAsync(0);

        network.Nodes[0]!.Terminate();

        Assert.Equal(0, await network.Nodes[0]!.WaitForExitAsync(TimeSpan.FromSeconds(30)));
        var output = network.Nodes[0]!.Output;
        Assert.True(output.Contains("Drained; left the network.", StringComparison.Ordinal), output);
        await network.WaitForStatusAsync(id, NodeStatus.Disconnected, TimeSpan.FromSeconds(10));
    }

    [Fact]
    public async Task Coordinator_KilledAndRestarted_RegistryKeptAndNodesReconnectOnTheirOwn()
    {
        await using var network = await EmcNetwork.StartAsync(nodeCount: 1);
        var id = await network.WaitForNodeAsync(0);

        network.Coordinator.KillHard();
        await network.Coordinator.WaitForExitAsync(TimeSpan.FromSeconds(10));
        await network.StartCoordinatorAsync();

        // The node retries with backoff and registers again under the same id.
        var back = await network.WaitForStatusAsync(id, NodeStatus.Connected, TimeSpan.FromSeconds(60));
        Assert.Equal(2, back.Registrations);
        Assert.Single(await network.Api.GetNodesAsync(null, CancellationToken.None));
    }

    [Fact]
    [System.Runtime.Versioning.SupportedOSPlatform("linux")]
    public async Task Up_ThreeNodes_NodesJsonListsThemAndSigtermStopsEverything()
    {
        // The README's quick start: `emc up` in its default folder, then `emc nodes` from another terminal
        // with no key given: it reads the operator key file of the local coordinator itself.
        var home = Directory.CreateTempSubdirectory("emc-home-").FullName;
        var elsewhere = Directory.CreateTempSubdirectory("emc-home-").FullName;
        var local = Environment(home);
        try
        {
            await using var up = EmcProcess.Start(local, "up", "--nodes", "3", "--urls", "http://127.0.0.1:0", "--grpc-urls", "http://127.0.0.1:0");
            var ready = await up.WaitForLineAsync(l => l.StartsWith("EMC is up: API ", StringComparison.Ordinal), EmcNetwork.StartTimeout);
            var api = ready["EMC is up: API ".Length..].Split(' ')[0];
            var keyFile = Path.Combine(home, ".emc", "up", "coordinator", "operator.key");
            var keyLine = await up.WaitForLineAsync(l => l.StartsWith("Operator key: ", StringComparison.Ordinal), TimeSpan.FromSeconds(10));
            Assert.Contains(keyFile, keyLine, StringComparison.Ordinal);
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(keyFile));

            var (exitCode, output) = await EmcProcess.RunAsync(local, TimeSpan.FromSeconds(60), "nodes", "--json", "--coordinator", api);
            Assert.True(exitCode == 0, output);
            var nodes = JsonSerializer.Deserialize<List<NodeView>>(output, EmcJson.Options)!;
            Assert.Equal(3, nodes.Count);
            Assert.All(nodes, n => Assert.Equal(NodeStatus.Connected, n.Status));
            Assert.All(nodes, n => Assert.True(n.Benchmark.Devices.Single().MatmulGflops > 0));
            Assert.Equal(["node-1", "node-2", "node-3"], nodes.Select(n => n.Name).Order());

            var (tableExit, table) = await EmcProcess.RunAsync(local, TimeSpan.FromSeconds(60), "nodes", "--coordinator", api);
            Assert.Equal(0, tableExit);
            Assert.Equal(4, table.Split('\n', StringSplitOptions.RemoveEmptyEntries).Length);

            // Where no key is to be found, the refusal says where keys come from; with the key given, it works.
            var (refused, why) = await EmcProcess.RunAsync(Environment(elsewhere), TimeSpan.FromSeconds(60), "nodes", "--coordinator", api);
            Assert.Equal(1, refused);
            Assert.Contains("401", why, StringComparison.Ordinal);
            Assert.Contains("--api-key", why, StringComparison.Ordinal);
            Assert.Contains("EMC_API_KEY", why, StringComparison.Ordinal);
            Assert.Contains("operator.key", why, StringComparison.Ordinal);
            var key = (await File.ReadAllTextAsync(keyFile)).Trim();
            var (given, _) = await EmcProcess.RunAsync(Environment(elsewhere), TimeSpan.FromSeconds(60), "nodes", "--coordinator", api, "--api-key", key);
            Assert.Equal(0, given);

            using var endpoints = JsonDocument.Parse(await File.ReadAllTextAsync(Path.Combine(home, ".emc", "up", "coordinator", "endpoints.json")));
            var coordinatorPid = endpoints.RootElement.GetProperty("pid").GetInt32();

            up.Terminate();
            Assert.Equal(0, await up.WaitForExitAsync(TimeSpan.FromSeconds(90)));
            Assert.False(Directory.Exists($"/proc/{coordinatorPid}"), "the coordinator process outlived `emc up`");
        }
        finally
        {
            Directory.Delete(home, recursive: true);
            Directory.Delete(elsewhere, recursive: true);
        }
    }

    /// <summary>A terminal of a user whose home is <paramref name="home"/> and who set no key.</summary>
    private static Dictionary<string, string?> Environment(string home) => new()
    {
        ["HOME"] = home,
        ["EMC_OPERATOR_KEY"] = null,
        ["EMC_API_KEY"] = null,
    };

    [Fact]
    public async Task Nodes_CoordinatorUnreachable_ClearErrorAndExitCode1()
    {
        var (exitCode, output) = await EmcProcess.RunAsync(TimeSpan.FromSeconds(60), "nodes", "--coordinator", "http://127.0.0.1:9");
        Assert.Equal(1, exitCode);
        Assert.Contains("cannot reach the coordinator", output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Cli_BadArguments_ClearErrorsAndNonZeroExit()
    {
        var (badUrl, badUrlOutput) = await EmcProcess.RunAsync(TimeSpan.FromSeconds(60), "nodes", "--coordinator", "not a url");
        Assert.NotEqual(0, badUrl);
        Assert.Contains("is not an http:// or https:// address", badUrlOutput, StringComparison.Ordinal);

        var (badStatus, badStatusOutput) = await EmcProcess.RunAsync(TimeSpan.FromSeconds(60), "nodes", "--status", "sleeping");
        Assert.Equal(2, badStatus);
        Assert.Contains("not a status", badStatusOutput, StringComparison.Ordinal);

        var (badDevice, badDeviceOutput) = await EmcProcess.RunAsync(TimeSpan.FromSeconds(60), "node", "--devices", "tpu:0", "--data", Path.Combine(Path.GetTempPath(), "emc-bad-device"));
        Assert.Equal(2, badDevice);
        Assert.Contains("is not a device", badDeviceOutput, StringComparison.Ordinal);
    }
}
