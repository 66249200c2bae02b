using Emc.Coordinator.Tests.Infrastructure;
using Emc.Core.Identity;
using Emc.Core.Registry;
using Emc.Node.Connection;

namespace Emc.Coordinator.Tests.Registry;

public sealed class RestartTests
{
    [Fact]
    public async Task Restart_SameDataFolder_RegistryKeptAndNodeComesBackAsSameId()
    {
        var data = Directory.CreateTempSubdirectory("emc-restart-test-").FullName;
        try
        {
            using var key = NodeKey.Create();
            string coordinatorId;
            NodeView before;
            await using (var first = await TestCoordinator.StartAsync(data))
            {
                coordinatorId = (await NodeConnection.OpenAsync(first.Channel, key, Registrations.Valid("survivor"), "test", CancellationToken.None)).Welcome.NodeId;
                before = await first.WaitForNodeAsync(key.Address.ToString(), n => n.Status == NodeStatus.Connected, TimeSpan.FromSeconds(10));
            }

            await using var second = await TestCoordinator.StartAsync(data);

            // The record survived; the node had no stream to the new process, so it is lost until it reconnects.
            var after = await second.Api.GetNodeAsync(key.Address.ToString(), CancellationToken.None);
            Assert.Equal(NodeStatus.Lost, after.Status);
            Assert.Equal(before.Name, after.Name);
            Assert.Equal(before.Hardware.LogicalCores, after.Hardware.LogicalCores);
            Assert.Equal(before.Benchmark.Devices.Single().MatmulGflops, after.Benchmark.Devices.Single().MatmulGflops);
            Assert.Equal(before.FirstSeen, after.FirstSeen);

            await using var again = await NodeConnection.OpenAsync(second.Channel, key, Registrations.Valid("survivor"), "test", CancellationToken.None);
            Assert.Equal(key.Address.ToString(), again.Welcome.NodeId);
            var back = await second.WaitForNodeAsync(key.Address.ToString(), n => n.Status == NodeStatus.Connected, TimeSpan.FromSeconds(10));
            Assert.Equal(2, back.Registrations);
            Assert.Equal(before.FirstSeen, back.FirstSeen);
            Assert.Single(await second.Api.GetNodesAsync(null, CancellationToken.None));
        }
        finally
        {
            Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
            Directory.Delete(data, recursive: true);
        }
    }
}
