using Emc.Coordinator.Registry;
using Emc.Core.Hardware;
using Emc.Core.Scheduling;

namespace Emc.Coordinator.Scheduling;

/// <summary>What the scheduler needs of a verified registration.</summary>
internal static class NodeCapacityMapping
{
    public static NodeCapacity ToCapacity(this RegisteredNode node) => new()
    {
        NodeId = node.Address,
        Labels = node.Labels,
        Price = node.Price,
        CacheKeys = node.CacheKeys,
        Devices = [.. node.Devices.Select(device => Device(node, device))],
    };

    private static DeviceCapacity Device(RegisteredNode node, string name)
    {
        // The verifier admitted only well-formed device names.
        if (!DeviceName.TryParse(name, out var kind, out var index))
        {
            throw new ArgumentException($"'{name}' is not a device name.", nameof(name));
        }

        var memory = kind == DeviceKind.Cpu
            ? node.Hardware.MemoryBytes
            : node.Hardware.Gpus.FirstOrDefault(gpu => gpu.Index == index)?.MemoryBytes ?? 0;
        var gflops = node.Benchmark.Devices.FirstOrDefault(bench => bench.Device == name)?.MatmulGflops ?? 0;
        return new DeviceCapacity { Name = name, Kind = kind, MemoryBytes = memory, Gflops = gflops };
    }
}
