using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using Emc.Cli.Infrastructure;
using Emc.Client;
using Emc.Core;
using Emc.Core.Registry;

namespace Emc.Cli.Commands;

/// <summary>`emc nodes`: the registry as a table or JSON.</summary>
internal static class NodesCommand
{
    public static Command Create()
    {
        var coordinator = CommonOptions.Coordinator();
        var json = CommonOptions.Json();
        var status = new Option<string?>("--status") { Description = "Only nodes in this status: connected, busy, draining, lost, disconnected." };
        var command = new Command("nodes", "List the network's nodes with status, hardware and benchmark figures.") { coordinator, json, status };
        command.SetAction(async (result, cancellationToken) =>
        {
            NodeStatus? filter = null;
            if (result.GetValue(status) is { } text)
            {
                if (!Enum.TryParse<NodeStatus>(text, ignoreCase: true, out var parsed) || !Enum.IsDefined(parsed))
                {
                    await Console.Error.WriteLineAsync($"emc nodes: '{text}' is not a status; use connected, busy, draining, lost or disconnected.");
                    return 2;
                }

                filter = parsed;
            }

            var client = ApiKeyLookup.Client(result, coordinator);
            IReadOnlyList<NodeView> nodes;
            try
            {
                nodes = await client.GetNodesAsync(filter, cancellationToken);
            }
            catch (EmcApiException ex)
            {
                await Console.Error.WriteLineAsync($"emc nodes: {ex.Message}");
                return 1;
            }

            Console.WriteLine(result.GetValue(json) ? JsonSerializer.Serialize(nodes, EmcJson.Indented) : FormatTable(nodes));
            return 0;
        });
        return command;
    }

    private static readonly string[] Header =
        ["ID", "NAME", "STATUS", "LAST SEEN", "CPU", "CORES", "RAM", "GPUS", "DEVICES", "GFLOP/S", "MEM GB/S", "RTT MS", "LINK MBIT/S"];

    internal static string FormatTable(IReadOnlyList<NodeView> nodes)
    {
        var rows = new List<string[]> { Header };
        var now = DateTimeOffset.UtcNow;
        foreach (var node in nodes)
        {
            var hw = node.Hardware;
            var bench = node.Benchmark;
            rows.Add(
            [
                node.Id,
                node.Name,
                EmcJson.EnumText(node.Status),
                Ago(now - node.LastSeen),
                hw.CpuModel.Length > 28 ? hw.CpuModel[..28] : hw.CpuModel,
                hw.LogicalCores.ToString(CultureInfo.InvariantCulture),
                $"{hw.MemoryBytes / (double)(1L << 30):0.0} GiB",
                hw.Gpus.Count == 0 ? "-" : string.Join(";", hw.Gpus.Select(g => $"{g.Name} {g.MemoryBytes >> 30} GiB")),
                string.Join(",", node.Devices),
                string.Join(",", bench.Devices.Select(d => d.MatmulGflops.ToString("0.0", CultureInfo.InvariantCulture))),
                string.Join(",", bench.Devices.Select(d => d.MemoryBandwidthGBps.ToString("0.0", CultureInfo.InvariantCulture))),
                bench.LinkRttMs.ToString("0.00", CultureInfo.InvariantCulture),
                $"{bench.LinkDownloadMbps:0}/{bench.LinkUploadMbps:0}",
            ]);
        }

        var widths = Enumerable.Range(0, rows[0].Length).Select(c => rows.Max(r => r[c].Length)).ToArray();
        return string.Join('\n', rows.Select(r => string.Join("  ", r.Select((cell, c) => cell.PadRight(widths[c]))).TrimEnd()));
    }

    private static string Ago(TimeSpan span) => span.TotalSeconds < 0 ? "now"
        : span.TotalSeconds < 120 ? $"{span.TotalSeconds:0}s ago"
        : span.TotalMinutes < 120 ? $"{span.TotalMinutes:0}m ago"
        : $"{span.TotalHours:0}h ago";
}
