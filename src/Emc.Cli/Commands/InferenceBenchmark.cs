using System.Buffers;
using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using System.Text.Json;
using Emc.Cli.Infrastructure;
using Emc.Client;
using Emc.Compute.Inference;
using Emc.Compute.Training;
using Emc.Core;
using Emc.Core.Inference;
using Emc.Core.Training;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.Logging;

namespace Emc.Cli.Commands;

/// <summary>What `emc bench inference` was asked to do.</summary>
internal sealed record InferenceBenchSettings
{
    public string? ModelPath { get; init; }

    public double Rate { get; init; } = 200;

    public TimeSpan Warmup { get; init; } = TimeSpan.FromSeconds(2);

    public TimeSpan LatencyDuration { get; init; } = TimeSpan.FromSeconds(20);

    public TimeSpan ThroughputDuration { get; init; } = TimeSpan.FromSeconds(10);

    public int Concurrency { get; init; } = 32;

    public int Nodes { get; init; } = 1;

    public int MaxBatch { get; init; } = 16;

    public long DelayMicroseconds { get; init; } = 500;

    public int Threads { get; init; }

    public int InProcessRuns { get; init; } = 5000;

    public bool BinaryInputs { get; init; }
}

/// <summary>Latency of one target at a fixed request rate (open loop), or of the in-process runs.</summary>
internal sealed record LatencySummary(
    string Target,
    long Requests,
    long Errors,
    double Seconds,
    double RequestsPerSecond,
    double MeanMs,
    double P50Ms,
    double P90Ms,
    double P99Ms,
    double P999Ms,
    double MaxMs,
    double ClientCpuPercent,
    double ServerCpuPercent);

/// <summary>Completed requests per second of one target with C clients in a closed loop.</summary>
internal sealed record ThroughputSummary(
    string Target,
    int Concurrency,
    long Requests,
    long Errors,
    double Seconds,
    double RequestsPerSecond,
    double P50Ms,
    double P99Ms,
    double ClientCpuPercent,
    double ServerCpuPercent,
    double? DirectRequestsPerSecond = null)
{
    /// <summary>This target's throughput over (b)'s in the slices alternated with it; null when not measured so.</summary>
    public double? OverDirect => DirectRequestsPerSecond is > 0 ? Math.Round(RequestsPerSecond / DirectRequestsPerSecond.Value, 3) : null;
}

/// <summary>The requests of closed-loop slices: durations (Stopwatch ticks) of the answered ones, failures, and CPU seconds used.</summary>
internal sealed record ClosedLoopSamples(long[] Ticks, long Errors, double Seconds, double ClientCpuSeconds, double ServerCpuSeconds);

/// <summary>What `emc bench inference` measured.</summary>
internal sealed record InferenceReport(
    string Cpu,
    int Cores,
    string Model,
    string Input,
    int RequestBytes,
    string Encoding,
    int Nodes,
    int MaxBatch,
    long DelayMicroseconds,
    double TargetRate,
    double InProcessBatchRowsPerSecond,
    IReadOnlyList<LatencySummary> Latency,
    IReadOnlyList<ThroughputSummary> Throughput,
    double AddedP50Ms,
    double AddedP99Ms,
    double BatchedOverDirectRatio,
    IReadOnlyList<string> Notes)
{
    public string ToText()
    {
        var text = new System.Text.StringBuilder();
        var c = CultureInfo.InvariantCulture;
        text.AppendLine(c, $"machine      {Cpu}, {Cores} cores");
        text.AppendLine(c, $"model        {Model}, input {Input}, request {RequestBytes} bytes ({Encoding}); {Nodes} node(s)");
        text.AppendLine(c, $"latency at {TargetRate:0} req/s (open loop; ms)");
        text.AppendLine("  target                          requests  errors   rate/s     p50     p90     p99   p99.9     max  client CPU  server CPU");
        foreach (var l in Latency)
        {
            text.AppendLine(c, $"  {l.Target,-30} {l.Requests,9} {l.Errors,7} {l.RequestsPerSecond,8:0.0} {l.P50Ms,7:0.000} {l.P90Ms,7:0.000} {l.P99Ms,7:0.000} {l.P999Ms,7:0.000} {l.MaxMs,7:0.00} {l.ClientCpuPercent,10:0}% {l.ServerCpuPercent,10:0}%");
        }

        text.AppendLine(c, $"added by EMC's hop, (c) - (b): p50 {AddedP50Ms:+0.000;-0.000} ms, p99 {AddedP99Ms:+0.000;-0.000} ms (goals: <= 0.5 and <= 1.5)");
        text.AppendLine("maximum throughput (closed loop)");
        text.AppendLine("  target                          clients  requests  errors    req/s   p50 ms   p99 ms  client CPU  server CPU  (b) between  / (b)");
        foreach (var t in Throughput)
        {
            var paired = t.DirectRequestsPerSecond is { } direct ? string.Create(c, $"{direct,11:0} {t.OverDirect,6:0.00}") : "";
            text.AppendLine(c, $"  {t.Target,-30} {t.Concurrency,8} {t.Requests,9} {t.Errors,7} {t.RequestsPerSecond,8:0} {t.P50Ms,8:0.000} {t.P99Ms,8:0.000} {t.ClientCpuPercent,10:0}% {t.ServerCpuPercent,10:0}%  {paired}");
        }

        text.AppendLine(c, $"in-process batches of {MaxBatch}: {InProcessBatchRowsPerSecond:0} rows/s (ONNX Runtime alone, the ceiling of batching)");
        text.AppendLine(c, $"(c) batched / (b) unbatched, measured in alternated slices: {BatchedOverDirectRatio:0.00}x (goal >= 1)");
        foreach (var note in Notes)
        {
            text.AppendLine(c, $"note: {note}");
        }

        return text.ToString().TrimEnd();
    }
}

/// <summary>
/// `emc bench inference`: one small ONNX model (a) in ONNX Runtime in this process, (b) behind a
/// minimal single-hop Kestrel server in its own process (`emc bench serve-onnx`), (c) behind an EMC
/// coordinator and node processes. (b) and (c) take the same Open Inference Protocol requests over
/// HTTP/1.1 keep-alive, so they differ only by EMC's hop: coordinator → router → node stream →
/// batcher → ONNX Runtime → back.
/// </summary>
internal static class InferenceBenchmark
{
    private const string ModelName = "bench-mlp";

    /// <summary>Adds `inference` and the hidden `serve-onnx` to `emc bench`.</summary>
    public static void AddTo(Command bench)
    {
        bench.Subcommands.Add(CreateRun());
        bench.Subcommands.Add(CreateServe());
    }

    private static Command CreateRun()
    {
        var model = new Option<string?>("--model") { Description = "ONNX file with float32 inputs. Default: the zoo mlp (784-256-128-10) exported to ONNX." };
        var rate = new Option<double>("--rate") { Description = "Requests per second of the latency phases (open loop). Default 200.", DefaultValueFactory = _ => 200 };
        var seconds = new Option<int>("--seconds") { Description = "Seconds measured per latency phase. Default 20.", DefaultValueFactory = _ => 20 };
        var throughputSeconds = new Option<int>("--throughput-seconds") { Description = "Seconds measured per throughput phase. Default 10.", DefaultValueFactory = _ => 10 };
        var warmup = new Option<int>("--warmup-seconds") { Description = "Seconds of unmeasured load before each phase. Default 2.", DefaultValueFactory = _ => 2 };
        var concurrency = new Option<int>("--concurrency") { Description = "Clients of the throughput phases (closed loop). Default 32.", DefaultValueFactory = _ => 32 };
        var nodes = new Option<int>("--nodes") { Description = "Node processes behind the coordinator (one replica serves). Default 1.", DefaultValueFactory = _ => 1 };
        var maxBatch = new Option<int>("--max-batch") { Description = "Rows per batch of the batched deployments. Default 16.", DefaultValueFactory = _ => 16 };
        var delay = new Option<long>("--delay-us") { Description = "Queue delay of the second batched deployment, microseconds. Default 500.", DefaultValueFactory = _ => 500 };
        var threads = new Option<int>("--threads") { Description = "ONNX Runtime intra-op threads of (a), (b) and the node (its --inference-threads); 0 lets it choose. Default 0.", DefaultValueFactory = _ => 0 };
        var runs = new Option<int>("--in-process-runs") { Description = "Timed runs of (a). Default 5000.", DefaultValueFactory = _ => 5000 };
        var binary = new Option<bool>("--binary") { Description = "Send inputs with the binary tensor data extension instead of JSON." };
        var json = CommonOptions.Json();
        var command = new Command(
            "inference",
            "A small ONNX model in ONNX Runtime in-process, behind a minimal single-hop HTTP server, and behind an EMC coordinator and node: latency at a fixed rate and maximum throughput, with and without dynamic batching.")
        { model, rate, seconds, throughputSeconds, warmup, concurrency, nodes, maxBatch, delay, threads, runs, binary, json };
        command.SetAction(async (result, _) =>
        {
            var settings = new InferenceBenchSettings
            {
                ModelPath = result.GetValue(model),
                Rate = result.GetValue(rate),
                LatencyDuration = TimeSpan.FromSeconds(result.GetValue(seconds)),
                ThroughputDuration = TimeSpan.FromSeconds(result.GetValue(throughputSeconds)),
                Warmup = TimeSpan.FromSeconds(result.GetValue(warmup)),
                Concurrency = result.GetValue(concurrency),
                Nodes = result.GetValue(nodes),
                MaxBatch = result.GetValue(maxBatch),
                DelayMicroseconds = result.GetValue(delay),
                Threads = result.GetValue(threads),
                InProcessRuns = result.GetValue(runs),
                BinaryInputs = result.GetValue(binary),
            };
            if (settings.Rate is < 1 or > 100_000 || settings.LatencyDuration.TotalSeconds is < 1 or > 3600 || settings.ThroughputDuration.TotalSeconds is < 1 or > 3600
                || settings.Warmup.TotalSeconds is < 0 or > 600 || settings.Concurrency is < 1 or > 4096 || settings.Nodes is < 1 or > 16
                || settings.MaxBatch is < 2 or > 4096 || settings.DelayMicroseconds is < 0 or > 1_000_000 || settings.Threads is < 0 or > 1024 || settings.InProcessRuns is < 1 or > 10_000_000)
            {
                await Console.Error.WriteLineAsync(
                    "emc bench inference: --rate 1-100000, --seconds and --throughput-seconds 1-3600, --warmup-seconds 0-600, --concurrency 1-4096, "
                    + "--nodes 1-16, --max-batch 2-4096, --delay-us 0-1000000, --threads 0-1024, --in-process-runs 1-10000000.");
                return 2;
            }

            if (settings.ModelPath is { } path && !File.Exists(path))
            {
                await Console.Error.WriteLineAsync($"emc bench inference: {path} does not exist.");
                return 2;
            }

            var asJson = result.GetValue(json);
            var (stop, registrations) = Signals.OnTermination();
            using (stop)
            using (registrations)
            {
                try
                {
                    var report = await RunAsync(settings, asJson ? Console.Error : Console.Out, stop.Token);
                    Console.WriteLine(asJson ? JsonSerializer.Serialize(report, EmcJson.Indented) : report.ToText());
                    return report.Latency.Sum(l => l.Errors) + report.Throughput.Sum(t => t.Errors) == 0 ? 0 : 1;
                }
                catch (OperationCanceledException) when (stop.IsCancellationRequested)
                {
                    await Console.Error.WriteLineAsync("emc bench inference: stopped; every process it started is stopped.");
                    return 130;
                }
                catch (Exception ex) when (ex is InvalidOperationException or InvalidDataException or IOException or HttpRequestException or EmcApiException or ArgumentException or NotSupportedException)
                {
                    await Console.Error.WriteLineAsync($"emc bench inference: {ex.Message}");
                    return 1;
                }
            }
        });
        return command;
    }

    /// <summary>
    /// Unmeasured closed-loop load on a target before its first measured phase, so that every process on
    /// its path has compiled its hot code to the final tier: without it the first phase after a start
    /// measures the JIT's background compilation as much as the server (a 2 s open-loop warm-up at
    /// 200 req/s is 400 requests, too few). <see cref="InferenceBenchSettings.Warmup"/> × 3, at least 3 s.
    /// </summary>
    /// <remarks>
    /// Then it goes on, in 5 s slices of the same load, until the servers' tiered-compilation threads
    /// (".NET Tiered Com", read from /proc) used at most one 10 ms tick in the last slice, or 120 s have passed:
    /// a freshly started coordinator keeps promoting methods to the final tier for tens of seconds, and a
    /// phase measured meanwhile shares the cores with the JIT. Returns the seconds it took.
    /// </remarks>
    private static async Task<double> WarmUpAsync(LoadClient load, Uri target, InferenceBenchSettings settings, int[] pids, CancellationToken cancellationToken)
    {
        var seconds = Math.Max(3, settings.Warmup.TotalSeconds * 3);
        await load.ClosedLoopAsync("warm-up", target, settings.Concurrency, TimeSpan.Zero, TimeSpan.FromSeconds(seconds), pids, cancellationToken);
        var slice = TimeSpan.FromSeconds(5);
        var spent = seconds;
        while (spent < MaxWarmUpSeconds)
        {
            var before = TieredJitTicks(pids);
            await load.ClosedLoopAsync("warm-up", target, settings.Concurrency, TimeSpan.Zero, slice, pids, cancellationToken);
            spent += slice.TotalSeconds;

            // /proc counts in ticks of 10 ms: at most one in 5 s is the JIT at rest (under 0.2 % of a core).
            var after = TieredJitTicks(pids);
            if (before < 0 || after - before <= 1)
            {
                break;
            }
        }

        return spent;
    }

    /// <summary>The longest warm-up of one target, seconds.</summary>
    private const double MaxWarmUpSeconds = 120;

    /// <summary>CPU ticks used so far by the tiered-compilation threads of <paramref name="pids"/>; -1 where /proc cannot tell (not Linux).</summary>
    private static long TieredJitTicks(int[] pids)
    {
        long ticks = 0;
        try
        {
            foreach (var pid in pids)
            {
                foreach (var task in Directory.GetDirectories($"/proc/{pid}/task"))
                {
                    var stat = File.ReadAllText(Path.Combine(task, "stat"));
                    var open = stat.IndexOf('(', StringComparison.Ordinal);
                    var close = stat.LastIndexOf(')');
                    if (open < 0 || close < open || !stat[(open + 1)..close].StartsWith(".NET Tiered", StringComparison.Ordinal))
                    {
                        continue;
                    }

                    // Fields after the name: state, ppid, ... utime is the 14th field, stime the 15th.
                    var fields = stat[(close + 2)..].Split(' ');
                    ticks += long.Parse(fields[11], CultureInfo.InvariantCulture) + long.Parse(fields[12], CultureInfo.InvariantCulture);
                }
            }
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or FormatException or IndexOutOfRangeException)
        {
            return -1;
        }

        return ticks;
    }

    private static Command CreateServe()
    {
        var model = new Argument<string>("model") { Description = "The ONNX file to serve." };
        var port = new Option<int>("--port") { Description = "Loopback port to listen on.", Required = true };
        var name = new Option<string>("--name") { Description = $"Model name in the URL. Default {ModelName}.", DefaultValueFactory = _ => ModelName };
        var threads = new Option<int>("--threads") { Description = "ONNX Runtime intra-op threads; 0 lets it choose. Default 0.", DefaultValueFactory = _ => 0 };
        var command = new Command(
            "serve-onnx",
            "The benchmark's single-hop reference server: Kestrel and one POST /v2/models/{name}/infer handler (OipCodec, ONNX Runtime), nothing else.")
        { model, port, name, threads };
        command.Hidden = true;
        command.SetAction(async (result, _) =>
        {
            var path = result.GetValue(model)!;
            if (!File.Exists(path) || result.GetValue(port) is < 1 or > 65535 || result.GetValue(threads) is < 0 or > 1024)
            {
                await Console.Error.WriteLineAsync("emc bench serve-onnx: MODEL must be a file, --port 1-65535, --threads 0-1024.");
                return 2;
            }

            // The web host stops on SIGINT and SIGTERM by itself.
            await OnnxReferenceServer.RunAsync(path, result.GetValue(name)!, result.GetValue(port), result.GetValue(threads));
            return 0;
        });
        return command;
    }

    public static async Task<InferenceReport> RunAsync(InferenceBenchSettings settings, TextWriter progress, CancellationToken cancellationToken)
    {
        var root = Path.Combine(Path.GetTempPath(), "emc-bench-inference-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(root);
        var notes = new List<string>();
        var warmups = new List<string>();
        var finished = false;
        try
        {
            var modelPath = settings.ModelPath ?? WriteZooMlp(Path.Combine(root, "mlp.onnx"));
            var modelBytes = await File.ReadAllBytesAsync(modelPath, cancellationToken);
            var modelLabel = settings.ModelPath is null ? "zoo mlp 784-256-128-10 (ONNX, untrained weights)" : Path.GetFileName(modelPath);

            // (a) ONNX Runtime in this process, before anything else runs.
            progress.WriteLine("(a) ONNX Runtime in-process ...");
            var input = Workload.Create(modelBytes, settings.BinaryInputs);
            var (inProcess, batchRowsPerSecond, reference) = MeasureInProcess(modelBytes, input, settings, cancellationToken);
            var latencies = new List<LatencySummary> { inProcess };
            var throughputs = new List<ThroughputSummary>();

            using var load = new LoadClient(input);

            // (b) the single-hop reference server, its own process. It stays up (idle) while (c) runs: (c)'s
            // throughput is measured in slices alternated with (b)'s.
            var port = FreeLoopbackPort();
            var serverLog = Path.Combine(root, "logs", "serve-onnx.log");
            progress.WriteLine($"(b) single-hop server on port {port} ...");
            using var server = SelfProcess.Start(
                ["bench", "serve-onnx", modelPath, "--port", port.ToString(CultureInfo.InvariantCulture), "--name", ModelName, "--threads", settings.Threads.ToString(CultureInfo.InvariantCulture)],
                serverLog);
            var directTarget = new Uri($"http://127.0.0.1:{port}/v2/models/{ModelName}/infer");
            try
            {
                {
                    var baseUri = new Uri($"http://127.0.0.1:{port}/");
                    await WaitForServerAsync(baseUri, server, serverLog, cancellationToken);
                    var target = directTarget;
                    await load.CheckAsync(target, reference, "(b)", cancellationToken);

                    // The client alone: the same requests to a handler that only reads the body.
                    var noop = new Uri(baseUri, "bench/noop");
                    var client = await load.ClosedLoopAsync("client only (no-op handler)", noop, settings.Concurrency, settings.Warmup, settings.ThroughputDuration, [server.Id], cancellationToken);
                    progress.WriteLine($"    client alone against a no-op handler: {client.RequestsPerSecond:0} req/s");
                    throughputs.Add(client);

                    warmups.Add($"(b) {await WarmUpAsync(load, target, settings, [server.Id], cancellationToken):0} s");
                    var direct = await load.OpenLoopAsync("(b) single-hop", target, settings.Rate, settings.Warmup, settings.LatencyDuration, [server.Id], cancellationToken);
                    progress.WriteLine($"    latency p50 {direct.P50Ms:0.000} ms, p99 {direct.P99Ms:0.000} ms");
                    latencies.Add(direct);
                    var directMax = await load.ClosedLoopAsync("(b) single-hop", target, settings.Concurrency, settings.Warmup, settings.ThroughputDuration, [server.Id], cancellationToken);
                    progress.WriteLine($"    throughput {directMax.RequestsPerSecond:0} req/s");
                    throughputs.Add(directMax);
                }

                // (c) a coordinator and node processes.
                progress.WriteLine($"(c) coordinator and {settings.Nodes} node(s) ...");
                await using (var network = await LocalNetwork.StartAsync(
                    Path.Combine(root, "network"), settings.Nodes, "http://127.0.0.1:0", "http://127.0.0.1:0",
                    settings.Threads > 0 ? ["--inference-threads", settings.Threads.ToString(CultureInfo.InvariantCulture)] : [], TimeSpan.FromSeconds(120), cancellationToken))
                {
                    var api = network.CreateClient(TimeSpan.FromSeconds(30));
                    load.Authorize(network.ApiKey);
                    await api.PushModelAsync(modelPath, ModelName, null, "onnx", [], [], cancellationToken);
                    var target = new Uri(network.ApiUrl!, $"v2/models/{ModelName}/infer");
                    int[] pids = [network.Coordinator.Id, .. network.Nodes.Select(n => n.Id)];
                    var configurations = new (string Label, int MaxBatch, long Delay)[]
                    {
                        ("(c) EMC, no batching", 1, 0),
                        ($"(c) EMC, batch {settings.MaxBatch}, 0 µs", settings.MaxBatch, 0),
                        ($"(c) EMC, batch {settings.MaxBatch}, {settings.DelayMicroseconds} µs", settings.MaxBatch, settings.DelayMicroseconds),
                    };
                    // A shakedown before anything of (c) is measured: the first deployment after the processes start
                    // would otherwise be measured while they still settle (JIT tiers, heap and thread pool sizes),
                    // which (b), one small process, gets over far sooner. Unmeasured, then undeployed.
                    {
                        var spec = new DeploymentSpec { Model = ModelName, MinReplicas = 1, MaxReplicas = 1 };
                        progress.WriteLine("    shakedown: a deployment that is warmed up and removed before the measured ones ...");
                        var id = await DeployAsync(api, spec, network, cancellationToken);
                        await load.CheckAsync(target, reference, "(c) shakedown", cancellationToken);
                        warmups.Add($"(c) shakedown {await WarmUpAsync(load, target, settings, pids, cancellationToken):0} s");
                        await UndeployAsync(api, id, cancellationToken);
                    }

                    foreach (var (label, maxBatch, delay) in configurations)
                    {
                        var spec = new DeploymentSpec
                        {
                            Model = ModelName,
                            MinReplicas = 1,
                            MaxReplicas = 1,
                            MaxBatch = maxBatch,
                            MaxDelayMicroseconds = delay,
                            MaxOngoingPerReplica = DeploymentSpec.DefaultMaxOngoing(maxBatch),
                        };
                        progress.WriteLine($"    deploying: max-batch {maxBatch}, delay {delay} µs, {spec.EffectiveMaxOngoing} in flight per replica ...");
                        var id = await DeployAsync(api, spec, network, cancellationToken);
                        await load.CheckAsync(target, reference, label, cancellationToken);
                        warmups.Add($"{label[4..]} {await WarmUpAsync(load, target, settings, pids, cancellationToken):0} s");
                        var latency = await load.OpenLoopAsync(label, target, settings.Rate, settings.Warmup, settings.LatencyDuration, pids, cancellationToken);
                        progress.WriteLine($"    latency p50 {latency.P50Ms:0.000} ms, p99 {latency.P99Ms:0.000} ms");
                        latencies.Add(latency);
                        var max = await PairedThroughputAsync(load, label, target, pids, directTarget, server.Id, settings, cancellationToken);
                        progress.WriteLine($"    throughput {max.RequestsPerSecond:0} req/s; (b) in the slices between: {max.DirectRequestsPerSecond:0} req/s");
                        throughputs.Add(max);
                        await UndeployAsync(api, id, cancellationToken);
                    }
                }
            }
            finally
            {
                await SelfProcess.StopAsync(server, TimeSpan.FromSeconds(10));
            }

            var b = latencies.Single(l => l.Target.StartsWith("(b)", StringComparison.Ordinal));
            var c = latencies.First(l => l.Target.StartsWith("(c)", StringComparison.Ordinal));
            var batchedRatio = throughputs.Where(t => t.Target.StartsWith("(c)", StringComparison.Ordinal) && !t.Target.Contains("no batching", StringComparison.Ordinal)).Max(t => t.OverDirect ?? 0);
            finished = true;
            notes.Add($"(c)'s throughput: {PairedRounds} rounds of a (b) slice then a (c) slice, {settings.ThroughputDuration.TotalSeconds / 2:0.#} s each after {PairedWarmup.TotalSeconds:0} s unmeasured; directRequestsPerSecond is (b) over its slices, and the ratio is taken between the two");
            notes.Add("server CPU: (b) the serve-onnx process; (c) the coordinator and node processes together; 100% = one core");
            notes.Add($"closed-loop warm-up before each target, until its processes' tiered JIT rested (at most one 10 ms tick in 5 s; at most 120 s): {string.Join(", ", warmups)}");
            notes.Add("the client, the servers and ONNX Runtime share this machine's cores");
            return new InferenceReport(
                CpuModel(),
                Environment.ProcessorCount,
                modelLabel,
                $"{input.Input.Name} {input.Input.Datatype.ToWireName()} [{string.Join(", ", input.Input.Shape)}]",
                input.Body.Length,
                settings.BinaryInputs ? "binary tensor data" : "JSON",
                settings.Nodes,
                settings.MaxBatch,
                settings.DelayMicroseconds,
                settings.Rate,
                Math.Round(batchRowsPerSecond, 0),
                latencies,
                throughputs,
                Math.Round(c.P50Ms - b.P50Ms, 3),
                Math.Round(c.P99Ms - b.P99Ms, 3),
                batchedRatio,
                notes);
        }
        finally
        {
            if (finished)
            {
                try
                {
                    Directory.Delete(root, recursive: true);
                }
                catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
                {
                    // A temporary folder left behind is harmless.
                }
            }
            else
            {
                // The logs the error message points to stay.
                progress.WriteLine($"logs kept in {root}");
            }
        }
    }

    /// <summary>Rounds of alternated (b) and (c) slices in one (c) throughput figure.</summary>
    private const int PairedRounds = 3;

    /// <summary>Unmeasured load before each slice, as each target was idle during the other's slice.</summary>
    private static readonly TimeSpan PairedWarmup = TimeSpan.FromSeconds(1);

    /// <summary>
    /// (c)'s maximum throughput, measured in <see cref="PairedRounds"/> slices of half the throughput duration,
    /// each right after a slice of (b) of the same length: this machine's speed drifts by ±10 % over minutes,
    /// which measured apart moved the ratio of the two as much as anything EMC does.
    /// </summary>
    private static async Task<ThroughputSummary> PairedThroughputAsync(
        LoadClient load, string label, Uri target, int[] pids, Uri directTarget, int directPid, InferenceBenchSettings settings, CancellationToken cancellationToken)
    {
        var slice = settings.ThroughputDuration / 2;
        var direct = new List<ClosedLoopSamples>();
        var emc = new List<ClosedLoopSamples>();
        for (var round = 0; round < PairedRounds; round++)
        {
            direct.Add(await load.ClosedLoopSamplesAsync(directTarget, settings.Concurrency, PairedWarmup, slice, [directPid], cancellationToken));
            emc.Add(await load.ClosedLoopSamplesAsync(target, settings.Concurrency, PairedWarmup, slice, pids, cancellationToken));
        }

        var b = LoadClient.Summarise("(b)", settings.Concurrency, direct);
        return LoadClient.Summarise(label, settings.Concurrency, emc, b.RequestsPerSecond);
    }

    private static string WriteZooMlp(string path)
    {
        using var model = TrainableModel.Create(new ModelSpec { Name = ModelSpec.Mlp }, [28, 28], 10, false, "cpu", 1);
        File.WriteAllBytes(path, OnnxExporter.Export(model));
        return path;
    }

    private static (LatencySummary Latency, double BatchRowsPerSecond, float[] Reference) MeasureInProcess(
        byte[] model, Workload input, InferenceBenchSettings settings, CancellationToken cancellationToken)
    {
        using var session = OnnxSession.Load(model, new OnnxSessionOptions { IntraOpThreads = settings.Threads });
        InferTensor[] one = [input.Input];
        var reference = session.Run(one, null, cancellationToken)[0].ToFloatArray();
        for (var i = 0; i < 200; i++)
        {
            session.Run(one, null, cancellationToken);
        }

        var ticks = new long[settings.InProcessRuns];
        var cpu = Process.GetCurrentProcess().TotalProcessorTime;
        var watch = Stopwatch.StartNew();
        for (var i = 0; i < ticks.Length; i++)
        {
            cancellationToken.ThrowIfCancellationRequested();
            var start = Stopwatch.GetTimestamp();
            session.Run(one, null, cancellationToken);
            ticks[i] = Stopwatch.GetTimestamp() - start;
        }

        var seconds = watch.Elapsed.TotalSeconds;
        var cpuPercent = 100 * (Process.GetCurrentProcess().TotalProcessorTime - cpu).TotalSeconds / seconds;
        var latency = Summarise("(a) ONNX Runtime in-process", ticks, ticks.Length, 0, seconds, cpuPercent, 0);

        // Batches of max-batch rows: what ONNX Runtime alone does with the rows a batcher would gather.
        var row = input.Input.Data;
        long[] batchShape = [settings.MaxBatch, .. input.Input.Shape.Skip(1)];
        var batchData = new byte[row.Length * settings.MaxBatch];
        for (var r = 0; r < settings.MaxBatch; r++)
        {
            row.CopyTo(batchData.AsMemory(r * row.Length));
        }

        InferTensor[] batch = [InferTensor.FromRaw(input.Input.Name, input.Input.Datatype, batchShape, batchData)];
        for (var i = 0; i < 50; i++)
        {
            session.Run(batch, null, cancellationToken);
        }

        var batchRuns = Math.Max(100, settings.InProcessRuns / settings.MaxBatch);
        watch.Restart();
        for (var i = 0; i < batchRuns; i++)
        {
            session.Run(batch, null, cancellationToken);
        }

        return (latency, batchRuns * settings.MaxBatch / watch.Elapsed.TotalSeconds, reference);
    }

    private static async Task<string> DeployAsync(EmcApiClient api, DeploymentSpec spec, LocalNetwork network, CancellationToken cancellationToken)
    {
        var view = await api.DeployAsync(spec, cancellationToken);
        var deadline = Stopwatch.StartNew();
        while (deadline.Elapsed < TimeSpan.FromSeconds(120))
        {
            if (network.Coordinator.HasExited)
            {
                throw new InvalidOperationException($"the coordinator exited with code {network.Coordinator.ExitCode}; see {network.Logs}");
            }

            view = await api.GetDeploymentAsync(view.Id, cancellationToken);
            if (view.State == "ready" && view.Replicas.Count(r => r.State == "ready") >= spec.MinReplicas)
            {
                return view.Id;
            }

            await Task.Delay(200, cancellationToken);
        }

        throw new InvalidOperationException($"deployment {view.Id} was not ready after 120 s (state {view.State}); see the logs in {network.Logs}");
    }

    private static async Task UndeployAsync(EmcApiClient api, string id, CancellationToken cancellationToken)
    {
        await api.UndeployAsync(id, cancellationToken);
        var deadline = Stopwatch.StartNew();
        while (deadline.Elapsed < TimeSpan.FromSeconds(30))
        {
            try
            {
                var view = await api.GetDeploymentAsync(id, cancellationToken);
                if (view.State == "stopped" || view.Replicas.Count == 0)
                {
                    return;
                }
            }
            catch (EmcApiException ex) when (ex.Status == HttpStatusCode.NotFound)
            {
                // Gone from the list: stopped.
                return;
            }

            await Task.Delay(200, cancellationToken);
        }
    }

    private static async Task WaitForServerAsync(Uri baseUri, Process server, string log, CancellationToken cancellationToken)
    {
        using var http = new HttpClient { BaseAddress = baseUri, Timeout = TimeSpan.FromSeconds(2) };
        var deadline = Stopwatch.StartNew();
        while (deadline.Elapsed < TimeSpan.FromSeconds(60))
        {
            if (server.HasExited)
            {
                throw new InvalidOperationException($"the single-hop server exited with code {server.ExitCode}; see {log}");
            }

            try
            {
                using var response = await http.GetAsync("v2/health/ready", cancellationToken);
                if (response.IsSuccessStatusCode)
                {
                    return;
                }
            }
            catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException && !cancellationToken.IsCancellationRequested)
            {
                // Not listening yet.
            }

            await Task.Delay(100, cancellationToken);
        }

        throw new InvalidOperationException($"the single-hop server did not answer within 60 s; see {log}");
    }

    internal static LatencySummary Summarise(string target, long[] ticks, int count, long errors, double seconds, double clientCpu, double serverCpu)
    {
        Array.Sort(ticks, 0, count);
        double Ms(long t) => t * 1000.0 / Stopwatch.Frequency;
        // No samples (every request failed) reads 0: JSON has no NaN, and the error count tells.
        double At(double q) => count == 0 ? 0 : Math.Round(Ms(ticks[Math.Min(count - 1, (int)(q * count))]), 4);
        long sum = 0;
        for (var i = 0; i < count; i++)
        {
            sum += ticks[i];
        }

        return new LatencySummary(
            target,
            count,
            errors,
            Math.Round(seconds, 2),
            Math.Round(count / seconds, 1),
            count == 0 ? 0 : Math.Round(Ms(sum) / count, 4),
            At(0.50),
            At(0.90),
            At(0.99),
            At(0.999),
            count == 0 ? 0 : Math.Round(Ms(ticks[count - 1]), 3),
            Math.Round(clientCpu, 1),
            Math.Round(serverCpu, 1));
    }

    private static int FreeLoopbackPort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    private static string CpuModel()
    {
        try
        {
            foreach (var line in File.ReadLines("/proc/cpuinfo"))
            {
                if (line.StartsWith("model name", StringComparison.Ordinal))
                {
                    return line[(line.IndexOf(':', StringComparison.Ordinal) + 1)..].Trim();
                }
            }
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            // Not Linux, or not readable.
        }

        return RuntimeInformation.OSDescription;
    }
}

/// <summary>The one request every target gets: the model's input filled with fixed pseudo-random values, serialised once.</summary>
internal sealed class Workload
{
    private Workload(InferTensor input, byte[] body, long? headerLength)
    {
        Input = input;
        Body = body;
        HeaderLength = headerLength;
    }

    /// <summary>The model's one input, batch 1.</summary>
    public InferTensor Input { get; }

    /// <summary>The request body, serialised once.</summary>
    public byte[] Body { get; }

    /// <summary>The Inference-Header-Content-Length of a body with binary data; null for JSON.</summary>
    public long? HeaderLength { get; }

    public static Workload Create(byte[] model, bool binary)
    {
        var info = OnnxModelInfo.Read(model);
        if (info.Inputs is not [var only] || only.Datatype != TensorDatatype.Fp32)
        {
            throw new NotSupportedException("the benchmark takes models with exactly one FP32 input");
        }

        // Symbolic dimensions (the batch) become 1.
        var shape = only.Shape.Select(d => d < 0 ? 1L : d).ToArray();
        var count = (int)shape.Aggregate(1L, (a, d) => checked(a * d));
        var values = new float[count];
        var state = 0x2545F491u;
        for (var i = 0; i < count; i++)
        {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            values[i] = (state & 0xFFFF) / 65536f;
        }

        var input = InferTensor.FromFloats(only.Name, shape, values);
        var request = new InferRequest { Inputs = [input] };
        var buffer = new ArrayBufferWriter<byte>();
        var headerLength = OipCodec.WriteRequest(request, buffer, binary);
        return new Workload(input, buffer.WrittenSpan.ToArray(), headerLength);
    }
}

/// <summary>
/// The load generator: HTTP/1.1 keep-alive connections from one <see cref="SocketsHttpHandler"/>, the
/// body serialised once, latency taken with <see cref="Stopwatch"/> ticks around each request.
/// </summary>
internal sealed class LoadClient : IDisposable
{
    private static readonly MediaTypeHeaderValue Json = new("application/json");
    private static readonly MediaTypeHeaderValue Binary = new("application/octet-stream");

    private readonly HttpClient _http;
    private readonly Workload _workload;
    private readonly string? _headerLength;

    public LoadClient(Workload workload)
    {
        _workload = workload;
        _headerLength = workload.HeaderLength?.ToString(CultureInfo.InvariantCulture);
        _http = new HttpClient(new SocketsHttpHandler
        {
            MaxConnectionsPerServer = 1024,
            PooledConnectionIdleTimeout = TimeSpan.FromMinutes(5),
            PooledConnectionLifetime = Timeout.InfiniteTimeSpan,
            UseProxy = false,
            UseCookies = false,
            AllowAutoRedirect = false,
            AutomaticDecompression = DecompressionMethods.None,
        })
        {
            Timeout = TimeSpan.FromSeconds(30),
            DefaultRequestVersion = HttpVersion.Version11,
            DefaultVersionPolicy = HttpVersionPolicy.RequestVersionExact,
        };
    }

    public void Dispose() => _http.Dispose();

    /// <summary>Sends <paramref name="apiKey"/> with every request from now on (the coordinator wants one).</summary>
    public void Authorize(string? apiKey) =>
        _http.DefaultRequestHeaders.Authorization = apiKey is null ? null : new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", apiKey);

    /// <summary>One request whose answer must be 200 with the outputs ONNX Runtime gave in-process.</summary>
    public async Task CheckAsync(Uri target, float[] reference, string label, CancellationToken cancellationToken)
    {
        using var response = await _http.SendAsync(Request(target), cancellationToken);
        var body = await response.Content.ReadAsByteArrayAsync(cancellationToken);
        if (response.StatusCode != HttpStatusCode.OK)
        {
            throw new InvalidOperationException($"{label} answered {(int)response.StatusCode}: {System.Text.Encoding.UTF8.GetString(body)}");
        }

        var header = OipCodec.ParseHeaderLength(response.Headers.TryGetValues(OipCodec.HeaderLengthName, out var values) ? values.FirstOrDefault() : null);
        var answer = OipCodec.ReadResponse(body, header);
        var outputs = answer.Outputs[0].ToFloatArray();
        if (outputs.Length != reference.Length || outputs.Where((v, i) => Math.Abs(v - reference[i]) > 1e-4 * Math.Max(1, Math.Abs(reference[i]))).Any())
        {
            throw new InvalidOperationException($"{label} answered outputs that differ from ONNX Runtime's in-process ones");
        }
    }

    /// <summary>
    /// Open loop: requests start on a fixed schedule of <paramref name="rate"/> per second whatever the
    /// answers do; each is timed from its start to its last byte.
    /// </summary>
    public async Task<LatencySummary> OpenLoopAsync(string label, Uri target, double rate, TimeSpan warmup, TimeSpan duration, int[] serverPids, CancellationToken cancellationToken)
    {
        if (warmup > TimeSpan.Zero)
        {
            await OpenLoopCoreAsync(target, rate, warmup, new long[(int)(rate * warmup.TotalSeconds) + 16], cancellationToken);
        }

        var ticks = new long[(int)(rate * duration.TotalSeconds) + 16];
        var (cpu, serverCpu) = (Process.GetCurrentProcess().TotalProcessorTime, ServerCpu(serverPids));
        var watch = Stopwatch.StartNew();
        var (count, errors) = await OpenLoopCoreAsync(target, rate, duration, ticks, cancellationToken);
        var seconds = watch.Elapsed.TotalSeconds;
        var clientCpu = 100 * (Process.GetCurrentProcess().TotalProcessorTime - cpu).TotalSeconds / seconds;
        return InferenceBenchmark.Summarise(label, ticks, count, errors, seconds, clientCpu, 100 * (ServerCpu(serverPids) - serverCpu) / seconds);
    }

    /// <summary>Closed loop: <paramref name="concurrency"/> clients each send the next request when the last is answered.</summary>
    public async Task<ThroughputSummary> ClosedLoopAsync(string label, Uri target, int concurrency, TimeSpan warmup, TimeSpan duration, int[] serverPids, CancellationToken cancellationToken) =>
        Summarise(label, concurrency, [await ClosedLoopSamplesAsync(target, concurrency, warmup, duration, serverPids, cancellationToken)]);

    /// <summary>One throughput figure from the samples of one or more closed-loop slices of the same target.</summary>
    public static ThroughputSummary Summarise(string label, int concurrency, IReadOnlyList<ClosedLoopSamples> slices, double? directRequestsPerSecond = null)
    {
        long[] sorted = [.. slices.SelectMany(s => s.Ticks)];
        var seconds = slices.Sum(s => s.Seconds);
        var summary = InferenceBenchmark.Summarise(
            label, sorted, sorted.Length, slices.Sum(s => s.Errors), seconds,
            100 * slices.Sum(s => s.ClientCpuSeconds) / seconds, 100 * slices.Sum(s => s.ServerCpuSeconds) / seconds);
        return new ThroughputSummary(label, concurrency, sorted.Length, summary.Errors, summary.Seconds, summary.RequestsPerSecond, summary.P50Ms, summary.P99Ms, summary.ClientCpuPercent, summary.ServerCpuPercent, directRequestsPerSecond);
    }

    /// <summary>
    /// <paramref name="concurrency"/> clients send requests back to back for <paramref name="warmup"/>
    /// (not recorded), then for <paramref name="duration"/> (recorded).
    /// </summary>
    public async Task<ClosedLoopSamples> ClosedLoopSamplesAsync(Uri target, int concurrency, TimeSpan warmup, TimeSpan duration, int[] serverPids, CancellationToken cancellationToken)
    {
        var recording = 0;
        var stop = 0;
        var workers = new Worker[concurrency];
        var tasks = new Task[concurrency];
        for (var i = 0; i < concurrency; i++)
        {
            var worker = workers[i] = new Worker();
            tasks[i] = Task.Run(
                async () =>
                {
                    while (Volatile.Read(ref stop) == 0)
                    {
                        var start = Stopwatch.GetTimestamp();
                        var ok = await SendAsync(target, cancellationToken);
                        if (Volatile.Read(ref recording) == 1)
                        {
                            worker.Record(Stopwatch.GetTimestamp() - start, ok);
                        }
                    }
                },
                cancellationToken);
        }

        double seconds;
        double clientCpu;
        double serverCpu;
        try
        {
            await Task.Delay(warmup, cancellationToken);
            var (cpu, serverBefore) = (Process.GetCurrentProcess().TotalProcessorTime, ServerCpu(serverPids));
            var watch = Stopwatch.StartNew();
            Volatile.Write(ref recording, 1);
            await Task.Delay(duration, cancellationToken);
            Volatile.Write(ref recording, 0);
            seconds = watch.Elapsed.TotalSeconds;
            clientCpu = (Process.GetCurrentProcess().TotalProcessorTime - cpu).TotalSeconds;
            serverCpu = ServerCpu(serverPids) - serverBefore;
        }
        finally
        {
            Volatile.Write(ref stop, 1);
            await Task.WhenAll(tasks).ContinueWith(_ => { }, TaskScheduler.Default);
        }

        cancellationToken.ThrowIfCancellationRequested();
        return new ClosedLoopSamples([.. workers.SelectMany(w => w.Ticks)], workers.Sum(w => w.Errors), seconds, clientCpu, serverCpu);
    }

    private static double ServerCpu(int[] pids)
    {
        var total = 0.0;
        foreach (var pid in pids)
        {
            try
            {
                total += ProcessStats.CpuSeconds(pid);
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                // Not Linux, or the process is gone.
            }
        }

        return total;
    }

    private async Task<(int Count, long Errors)> OpenLoopCoreAsync(Uri target, double rate, TimeSpan duration, long[] ticks, CancellationToken cancellationToken)
    {
        var total = Math.Min(ticks.Length, (int)(rate * duration.TotalSeconds));
        var interval = Stopwatch.Frequency / rate;
        var pending = new Task[total];
        var errors = 0L;
        var start = Stopwatch.GetTimestamp();
        for (var i = 0; i < total; i++)
        {
            var due = start + (long)(i * interval);
            var wait = due - Stopwatch.GetTimestamp();
            if (wait > Stopwatch.Frequency / 1000)
            {
                // Timers fire on a millisecond grid: sleep to just before the slot, then send on time or a little late.
                await Task.Delay(TimeSpan.FromTicks(wait * TimeSpan.TicksPerSecond / Stopwatch.Frequency) - TimeSpan.FromMilliseconds(0.5), cancellationToken);
            }

            var slot = i;
            pending[i] = TimeOneAsync(slot);
        }

        await Task.WhenAll(pending);
        var count = 0;
        for (var i = 0; i < total; i++)
        {
            if (ticks[i] > 0)
            {
                ticks[count++] = ticks[i];
            }
        }

        return (count, errors);

        async Task TimeOneAsync(int slot)
        {
            var begin = Stopwatch.GetTimestamp();
            if (await SendAsync(target, cancellationToken))
            {
                ticks[slot] = Stopwatch.GetTimestamp() - begin;
            }
            else
            {
                Interlocked.Increment(ref errors);
            }
        }
    }

    private HttpRequestMessage Request(Uri target)
    {
        var content = new ByteArrayContent(_workload.Body);
        content.Headers.ContentType = _headerLength is null ? Json : Binary;
        var request = new HttpRequestMessage(HttpMethod.Post, target) { Content = content, Version = HttpVersion.Version11 };
        if (_headerLength is not null)
        {
            request.Headers.TryAddWithoutValidation(OipCodec.HeaderLengthName, _headerLength);
        }

        return request;
    }

    private async Task<bool> SendAsync(Uri target, CancellationToken cancellationToken)
    {
        try
        {
            using var request = Request(target);
            using var response = await _http.SendAsync(request, HttpCompletionOption.ResponseContentRead, cancellationToken);
            return response.StatusCode == HttpStatusCode.OK;
        }
        catch (HttpRequestException)
        {
            return false;
        }
        catch (TaskCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            return false;
        }
    }

    private sealed class Worker
    {
        private readonly List<long> _ticks = new(1 << 14);

        public long Errors { get; private set; }

        public List<long> Ticks => _ticks;

        public void Record(long ticks, bool ok)
        {
            if (ok)
            {
                _ticks.Add(ticks);
            }
            else
            {
                Errors++;
            }
        }
    }
}

/// <summary>
/// `emc bench serve-onnx`: the single-hop reference. Kestrel on loopback (HTTP/1.1, as the
/// coordinator's API), the body read once, <see cref="OipCodec"/> to parse and write,
/// <see cref="OipValidator"/> and <see cref="OnnxSession"/> to run: the same protocol work the
/// coordinator does, without its router, node stream or batcher.
/// </summary>
internal static class OnnxReferenceServer
{
    private static readonly byte[] ReadyBody = "{\"ready\":true}"u8.ToArray();
    private static readonly byte[] NoopBody = "{}"u8.ToArray();

    public static async Task RunAsync(string modelPath, string name, int port, int threads)
    {
        using var session = OnnxSession.Load(modelPath, new OnnxSessionOptions { IntraOpThreads = threads });
        var metadata = new ModelMetadata
        {
            Name = name,
            Versions = ["1"],
            Platform = "onnx_onnxv1",
            Inputs = [.. session.Info.Inputs.Select(Describe)],
            Outputs = [.. session.Info.Outputs.Select(Describe)],
        };

        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { ContentRootPath = AppContext.BaseDirectory });
        builder.Logging.ClearProviders();
        builder.WebHost.ConfigureKestrel(kestrel => kestrel.Listen(IPAddress.Loopback, port, o => o.Protocols = HttpProtocols.Http1));
        await using var app = builder.Build();
        app.MapGet("/v2/health/ready", context => WriteAsync(context, StatusCodes.Status200OK, ReadyBody, null));
        app.MapPost("/v2/models/{name}/infer", context => InferAsync(context, session, metadata));
        app.MapPost("/bench/noop", async context =>
        {
            var (body, _) = await ReadBodyAsync(context);
            ArrayPool<byte>.Shared.Return(body);
            await WriteAsync(context, StatusCodes.Status200OK, NoopBody, null);
        });
        await app.RunAsync();
    }

    private static TensorMetadata Describe(OnnxTensorInfo tensor) =>
        new(tensor.Name, tensor.Datatype ?? throw new NotSupportedException($"'{tensor.Name}' is {tensor.TypeName}, which the Open Inference Protocol cannot carry"), [.. tensor.Shape]);

    private static async Task InferAsync(HttpContext context, OnnxSession session, ModelMetadata metadata)
    {
        byte[]? body = null;
        try
        {
            if (context.Request.RouteValues["name"] as string != metadata.Name)
            {
                throw OipException.UnknownModel(context.Request.RouteValues["name"] as string ?? "");
            }

            var headerLength = OipCodec.ParseHeaderLength(context.Request.Headers[OipCodec.HeaderLengthName]);
            int length;
            (body, length) = await ReadBodyAsync(context);
            var request = OipCodec.ReadRequest(body.AsMemory(0, length), headerLength);
            OipValidator.EnsureValid(request, metadata);
            string[]? names = request.Outputs.Count == 0 ? null : [.. request.Outputs.Select(o => o.Name)];
            IReadOnlyList<InferTensor> outputs;
            try
            {
                outputs = session.Run(request.Inputs, names, context.RequestAborted);
            }
            catch (Exception ex) when (ex is ArgumentException or InvalidOperationException)
            {
                throw new OipException(OipErrorKind.BadRequest, ex.Message, ex);
            }

            var response = new InferResponse { ModelName = metadata.Name, ModelVersion = "1", Id = request.Id, Outputs = outputs };
            var buffer = new ArrayBufferWriter<byte>(1024);
            var json = OipCodec.WriteResponse(response, buffer, request);
            await WriteAsync(context, StatusCodes.Status200OK, buffer.WrittenMemory, json);
        }
        catch (OipException ex)
        {
            await WriteAsync(context, ex.StatusCode, OipCodec.ErrorBody(ex.Message), null);
        }
        catch (OperationCanceledException) when (context.RequestAborted.IsCancellationRequested)
        {
            // The client left.
        }
        finally
        {
            if (body is not null)
            {
                ArrayPool<byte>.Shared.Return(body);
            }
        }
    }

    private static async Task<(byte[] Buffer, int Length)> ReadBodyAsync(HttpContext context)
    {
        var declared = context.Request.ContentLength ?? 16 * 1024;
        if (declared > 64 << 20)
        {
            throw new OipException(OipErrorKind.PayloadTooLarge, "the request body is larger than 64 MiB");
        }

        var buffer = ArrayPool<byte>.Shared.Rent((int)Math.Max(declared, 1));
        var length = 0;
        try
        {
            while (true)
            {
                if (length == buffer.Length)
                {
                    var larger = ArrayPool<byte>.Shared.Rent(buffer.Length * 2);
                    buffer.AsSpan(0, length).CopyTo(larger);
                    ArrayPool<byte>.Shared.Return(buffer);
                    buffer = larger;
                }

                var read = await context.Request.Body.ReadAsync(buffer.AsMemory(length), context.RequestAborted);
                if (read == 0)
                {
                    return (buffer, length);
                }

                length += read;
            }
        }
        catch
        {
            ArrayPool<byte>.Shared.Return(buffer);
            throw;
        }
    }

    private static Task WriteAsync(HttpContext context, int status, ReadOnlyMemory<byte> body, long? headerLength)
    {
        var response = context.Response;
        response.StatusCode = status;
        if (headerLength is long json)
        {
            response.Headers[OipCodec.HeaderLengthName] = json.ToString(CultureInfo.InvariantCulture);
            response.ContentType = "application/octet-stream";
        }
        else
        {
            response.ContentType = "application/json";
        }

        response.ContentLength = body.Length;
        return response.Body.WriteAsync(body, context.RequestAborted).AsTask();
    }
}
