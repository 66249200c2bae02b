using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Emc.Cli.Infrastructure;
using Emc.Client;
using Emc.Contracts.Node.V1;
using Emc.Core;
using Emc.Core.Identity;
using Emc.Core.Data;
using Emc.Core.Registry;
using Emc.Core.Training;
using Emc.Node.Connection;
using Grpc.Net.Client;

namespace Emc.Cli.Commands;

/// <summary>`emc bench ...`: benchmarks anyone can run against a real coordinator.</summary>
internal static class BenchCommand
{
    public static Command Create()
    {
        var command = new Command("bench", "Benchmarks of the network's hot paths.");
        command.Subcommands.Add(CreateConnect());
        command.Subcommands.Add(CreateScheduler());
        command.Subcommands.Add(CreateTrainLocal());
        InferenceBenchmark.AddTo(command);
        AuditBenchmark.AddTo(command);
        return command;
    }

    private static Command CreateTrainLocal()
    {
        var model = new Option<string>("--model") { Description = "Zoo model: mlp or cnn (default), with the zoo's default hyper-parameters.", DefaultValueFactory = _ => ModelSpec.Cnn };
        var data = new Option<string>("--data") { Description = "Folder of IDX files with a train and a test split. Default /usr/share/datasets/fashion-mnist.", DefaultValueFactory = _ => DemoCommand.FashionMnistDirectory };
        var steps = new Option<int>("--steps") { Description = "Training steps (AdamW lr 1e-3, weight decay 0.01). Default 500.", DefaultValueFactory = _ => 500 };
        var batch = new Option<int>("--batch-size") { Description = "Examples per step. Default 64.", DefaultValueFactory = _ => 64 };
        var threads = new Option<int>("--threads") { Description = "Torch threads; 0 keeps libtorch's default. Default 0.", DefaultValueFactory = _ => 0 };
        var hidden = new Option<string?>("--hidden") { Description = "Hidden widths, comma-separated (mlp: every layer; cnn: the fully connected layer). Default: the zoo's." };
        var json = CommonOptions.Json();
        var command = new Command(
            "train-local",
            "Single-process training of a zoo model on an IDX dataset through the node's own code, without network or coordinator: the reference for a node's speed and memory.")
        { model, data, steps, batch, threads, hidden, json };
        command.SetAction(async result =>
        {
            var name = result.GetValue(model) ?? "";
            var stepCount = result.GetValue(steps);
            var batchSize = result.GetValue(batch);
            var threadCount = result.GetValue(threads);
            if (name is not (ModelSpec.Mlp or ModelSpec.Cnn) || stepCount is < 1 or > 10_000_000 || batchSize is < 1 or > 65_536 || threadCount is < 0 or > 1024)
            {
                await Console.Error.WriteLineAsync("emc bench train-local: --model mlp|cnn, --steps 1-10000000, --batch-size 1-65536, --threads 0-1024.");
                return 2;
            }

            int[]? widths = null;
            if (result.GetValue(hidden) is { } text)
            {
                var parts = text.Split(',', StringSplitOptions.TrimEntries);
                widths = new int[parts.Length];
                for (var i = 0; i < parts.Length; i++)
                {
                    if (!int.TryParse(parts[i], NumberStyles.None, CultureInfo.InvariantCulture, out widths[i]) || widths[i] is < 1 or > 65_536)
                    {
                        await Console.Error.WriteLineAsync($"emc bench train-local: --hidden takes widths 1-65536 separated by commas, not '{text}'.");
                        return 2;
                    }
                }
            }

            var directory = result.GetValue(data) ?? "";
            if (!Directory.Exists(directory))
            {
                await Console.Error.WriteLineAsync($"emc bench train-local: {directory} does not exist.");
                return 2;
            }

            try
            {
                var report = TrainLocalBenchmark.Run(name, widths, directory, stepCount, batchSize, threadCount, seed: 1);
                Console.WriteLine(result.GetValue(json) ? JsonSerializer.Serialize(report, EmcJson.Indented) : report.ToText());
                return 0;
            }
            catch (Exception ex) when (ex is IOException or InvalidDataException or DatasetFormatException or UnauthorizedAccessException)
            {
                await Console.Error.WriteLineAsync($"emc bench train-local: {ex.Message}");
                return 1;
            }
        });
        return command;
    }

    private static Command CreateScheduler()
    {
        var nodes = new Option<int>("--nodes") { Description = "Simulated nodes (one slot each). Default 5000.", DefaultValueFactory = _ => 5000 };
        var tasks = new Option<int>("--tasks") { Description = "Tasks queued, then placed. Default 100000.", DefaultValueFactory = _ => 100_000 };
        var gangs = new Option<int>("--gangs") { Description = "Gang jobs run after the tasks. Default 1000.", DefaultValueFactory = _ => 1000 };
        var gangSize = new Option<int>("--gang-size") { Description = "Nodes per gang. Default 8.", DefaultValueFactory = _ => 8 };
        var json = CommonOptions.Json();
        var command = new Command(
            "scheduler",
            "The coordinator's scheduler service with its SQLite store, against in-process simulated nodes that complete every lease at once.")
        { nodes, tasks, gangs, gangSize, json };
        command.SetAction(async (result, cancellationToken) =>
        {
            var nodeCount = result.GetValue(nodes);
            var taskCount = result.GetValue(tasks);
            var gangCount = result.GetValue(gangs);
            var size = result.GetValue(gangSize);
            if (nodeCount is < 1 or > 1_000_000 || taskCount is < 1 or > 10_000_000 || gangCount is < 0 or > 1_000_000 || size < 1 || size > nodeCount)
            {
                await Console.Error.WriteLineAsync("emc bench scheduler: --nodes 1-1000000, --tasks 1-10000000, --gangs 0-1000000, --gang-size 1 to --nodes.");
                return 2;
            }

            var report = await SchedulerBenchmark.RunAsync(nodeCount, taskCount, gangCount, size, result.GetValue(json) ? null : Console.Out, cancellationToken);
            Console.WriteLine(result.GetValue(json) ? JsonSerializer.Serialize(report, EmcJson.Indented) : report.ToText());
            return 0;
        });
        return command;
    }

    private static Command CreateConnect()
    {
        var nodes = new Option<int>("--nodes") { Description = "Simulated nodes. Default 1000.", DefaultValueFactory = _ => 1000 };
        var seconds = new Option<int>("--seconds") { Description = "Seconds of steady heartbeating measured after all nodes connected. Default 60.", DefaultValueFactory = _ => 60 };
        var concurrency = new Option<int>("--concurrency") { Description = "Handshakes in flight at once while connecting. Default 200.", DefaultValueFactory = _ => 200 };
        var json = CommonOptions.Json();
        var command = new Command(
            "connect",
            "Simulated nodes (light in-process clients speaking the real protocol with real signatures) connect to a fresh coordinator process and heartbeat every 5 s.")
        { nodes, seconds, concurrency, json };
        command.SetAction(async (result, cancellationToken) =>
        {
            var count = result.GetValue(nodes);
            var duration = result.GetValue(seconds);
            var parallel = result.GetValue(concurrency);
            if (count is < 1 or > 100_000 || duration is < 1 or > 3600 || parallel is < 1 or > 10_000)
            {
                await Console.Error.WriteLineAsync("emc bench connect: --nodes 1-100000, --seconds 1-3600, --concurrency 1-10000.");
                return 2;
            }

            var report = await ConnectBenchmark.RunAsync(count, TimeSpan.FromSeconds(duration), parallel, result.GetValue(json) ? null : Console.Out, cancellationToken);
            Console.WriteLine(result.GetValue(json) ? JsonSerializer.Serialize(report, EmcJson.Indented) : report.ToText());
            return report.Connected == count && report.Errors == 0 ? 0 : 1;
        });
        return command;
    }
}

/// <summary>What `emc bench connect` measured.</summary>
internal sealed record ConnectReport(
    int Nodes,
    int Connected,
    double ConnectSeconds,
    double MeasuredSeconds,
    long HeartbeatsAcked,
    double HeartbeatsPerSecond,
    double ExpectedHeartbeatsPerSecond,
    double HeartbeatAckP50Ms,
    double HeartbeatAckP99Ms,
    double CoordinatorCpuPercentConnect,
    double CoordinatorCpuPercentSteady,
    double CoordinatorPeakRssMiB,
    double CoordinatorRssMiBAtEnd,
    int RegistryConnected,
    long Errors,
    int MachineCores)
{
    public string ToText() => string.Create(CultureInfo.InvariantCulture, $"""
        nodes connected        {Connected}/{Nodes} in {ConnectSeconds:0.00} s (registry says {RegistryConnected} connected)
        heartbeats acked       {HeartbeatsPerSecond:0.0}/s over {MeasuredSeconds:0} s (expected {ExpectedHeartbeatsPerSecond:0.0}/s)
        heartbeat ack latency  p50 {HeartbeatAckP50Ms:0.00} ms, p99 {HeartbeatAckP99Ms:0.00} ms
        coordinator CPU        {CoordinatorCpuPercentConnect:0}% while connecting, {CoordinatorCpuPercentSteady:0.0}% steady (100% = one core; {MachineCores} cores)
        coordinator memory     peak RSS {CoordinatorPeakRssMiB:0} MiB, {CoordinatorRssMiBAtEnd:0} MiB at the end
        errors                 {Errors}
        """);
}

/// <summary>Runs the connection benchmark against a coordinator in its own process, so its CPU and memory are its own.</summary>
internal static class ConnectBenchmark
{
    public static async Task<ConnectReport> RunAsync(int count, TimeSpan duration, int concurrency, TextWriter? progress, CancellationToken cancellationToken)
    {
        var root = Path.Combine(Path.GetTempPath(), "emc-bench-connect-" + Guid.NewGuid().ToString("N")[..8]);
        var coordinator = SelfProcess.Start(
            ["coordinator", "--data", Path.Combine(root, "coordinator"), "--urls", "http://127.0.0.1:0", "--grpc-urls", "http://127.0.0.1:0"],
            Path.Combine(root, "coordinator.log"));
        var sessions = new List<SimulatedNode>(count);
        try
        {
            var endpoints = await WaitForEndpointsAsync(Path.Combine(root, "coordinator", "endpoints.json"), coordinator, cancellationToken);
            progress?.WriteLine($"coordinator pid {coordinator.Id} at {endpoints.Api}; making {count} keys ...");
            var keys = Enumerable.Range(0, count).Select(_ => NodeKey.Create()).ToList();

            var errors = 0L;
            var cpuBefore = ProcessStats.CpuSeconds(coordinator.Id);
            var connectWatch = Stopwatch.StartNew();
            using var gate = new SemaphoreSlim(concurrency);
            var connectTasks = keys.Select(async (key, i) =>
            {
                await gate.WaitAsync(cancellationToken);
                try
                {
                    var node = await SimulatedNode.ConnectAsync(endpoints.Grpc, key, i, cancellationToken);
                    lock (sessions)
                    {
                        sessions.Add(node);
                    }
                }
                catch (Exception ex) when (ex is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
                {
                    Interlocked.Increment(ref errors);
                    progress?.WriteLine($"connect failed: {ex.Message}");
                }
                finally
                {
                    gate.Release();
                }
            }).ToList();
            await Task.WhenAll(connectTasks);
            var connectSeconds = connectWatch.Elapsed.TotalSeconds;
            var cpuAfterConnect = ProcessStats.CpuSeconds(coordinator.Id);
            progress?.WriteLine($"{sessions.Count} connected in {connectSeconds:0.00} s; heartbeating for {duration.TotalSeconds:0} s ...");

            // Measure a steady window: first let every node send its first scheduled beat.
            var interval = TimeSpan.FromMilliseconds(sessions.Count > 0 ? sessions[0].IntervalMs : 5000);
            await Task.Delay(interval, cancellationToken);
            var ackedBefore = sessions.Sum(s => s.Acked);
            foreach (var session in sessions)
            {
                session.ResetLatencies();
            }

            var cpuBefore2 = ProcessStats.CpuSeconds(coordinator.Id);
            var window = Stopwatch.StartNew();
            await Task.Delay(duration, cancellationToken);
            var measured = window.Elapsed.TotalSeconds;
            var cpuAfter = ProcessStats.CpuSeconds(coordinator.Id);
            var acked = sessions.Sum(s => s.Acked) - ackedBefore;
            errors += sessions.Sum(s => s.Errors);
            var latencies = sessions.SelectMany(s => s.Latencies()).Order().ToArray();

            var operatorKey = Environment.GetEnvironmentVariable("EMC_OPERATOR_KEY") is { Length: > 0 } configured
                ? configured
                : (await File.ReadAllTextAsync(Path.Combine(root, "coordinator", "operator.key"), cancellationToken)).Trim();
            var registry = await EmcApiClient.Create(endpoints.Api, apiKey: operatorKey).GetNodesAsync(NodeStatus.Connected, cancellationToken);
            var peak = ProcessStats.PeakRssMiB(coordinator.Id);
            var current = ProcessStats.RssMiB(coordinator.Id);
            return new ConnectReport(
                count,
                sessions.Count,
                Math.Round(connectSeconds, 3),
                Math.Round(measured, 1),
                acked,
                Math.Round(acked / measured, 1),
                Math.Round(sessions.Count / interval.TotalSeconds, 1),
                Math.Round(Percentile(latencies, 0.50), 3),
                Math.Round(Percentile(latencies, 0.99), 3),
                Math.Round(100 * (cpuAfterConnect - cpuBefore) / connectSeconds, 1),
                Math.Round(100 * (cpuAfter - cpuBefore2) / measured, 2),
                Math.Round(peak, 1),
                Math.Round(current, 1),
                registry.Count,
                errors,
                Environment.ProcessorCount);
        }
        finally
        {
            await Task.WhenAll(sessions.Select(s => s.DisposeAsync().AsTask()));
            await SelfProcess.StopAsync(coordinator, TimeSpan.FromSeconds(20));
            try
            {
                Directory.Delete(root, recursive: true);
            }
            catch (IOException)
            {
                // A temporary folder left behind is harmless.
            }
        }
    }

    private static double Percentile(double[] sorted, double q) =>
        sorted.Length == 0 ? double.NaN : sorted[Math.Min(sorted.Length - 1, (int)(q * sorted.Length))];

    private static async Task<(Uri Api, Uri Grpc)> WaitForEndpointsAsync(string file, Process coordinator, CancellationToken cancellationToken)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(TimeSpan.FromSeconds(60));
        while (true)
        {
            if (coordinator.HasExited)
            {
                throw new InvalidOperationException($"the coordinator exited with code {coordinator.ExitCode}");
            }

            if (File.Exists(file))
            {
                try
                {
                    using var document = JsonDocument.Parse(await File.ReadAllTextAsync(file, timeout.Token));
                    return (new Uri(document.RootElement.GetProperty("api").GetString()!), new Uri(document.RootElement.GetProperty("grpc").GetString()!));
                }
                catch (JsonException)
                {
                    // Being written.
                }
            }

            await Task.Delay(100, timeout.Token);
        }
    }

    /// <summary>One simulated node: its own HTTP/2 connection, a real signed registration, heartbeats on the schedule it is given.</summary>
    private sealed class SimulatedNode : IAsyncDisposable
    {
        private readonly GrpcChannel _channel;
        private readonly NodeConnection _connection;
        private readonly CancellationTokenSource _stop = new();
        private readonly Task _heartbeats;
        private readonly Task _reader;
        private readonly Dictionary<ulong, long> _sent = [];
        private readonly List<double> _latencies = [];
        private long _acked;
        private long _errors;

        private SimulatedNode(GrpcChannel channel, NodeConnection connection, int index)
        {
            _channel = channel;
            _connection = connection;
            IntervalMs = Math.Max(50, connection.Welcome.HeartbeatIntervalMs);
            _reader = Task.Run(ReadAsync);
            _heartbeats = Task.Run(() => HeartbeatAsync(index));
        }

        public int IntervalMs { get; }

        public long Acked => Interlocked.Read(ref _acked);

        public long Errors => Interlocked.Read(ref _errors);

        public static async Task<SimulatedNode> ConnectAsync(Uri grpc, NodeKey key, int index, CancellationToken cancellationToken)
        {
            var channel = GrpcChannel.ForAddress(grpc, new GrpcChannelOptions { HttpHandler = new SocketsHttpHandler { PooledConnectionIdleTimeout = Timeout.InfiniteTimeSpan } });
            try
            {
                var connection = await NodeConnection.OpenAsync(channel, key, Registration(index), "bench", cancellationToken);
                return new SimulatedNode(channel, connection, index);
            }
            catch
            {
                channel.Dispose();
                throw;
            }
        }

        public void ResetLatencies()
        {
            lock (_latencies)
            {
                _latencies.Clear();
            }
        }

        public double[] Latencies()
        {
            lock (_latencies)
            {
                return [.. _latencies];
            }
        }

        public async ValueTask DisposeAsync()
        {
            await _stop.CancelAsync();
            try
            {
                await _heartbeats;
                await _connection.SendGoodbyeAsync(CancellationToken.None);
                await Task.WhenAny(_reader, Task.Delay(5000));
            }
            catch (Exception ex) when (ex is OperationCanceledException or IOException or Grpc.Core.RpcException or InvalidOperationException)
            {
                // Leaving anyway.
            }

            await _connection.DisposeAsync();
            _channel.Dispose();
            _stop.Dispose();
        }

        private async Task HeartbeatAsync(int index)
        {
            // Spread the beats over the interval, as independent nodes would be.
            try
            {
                await Task.Delay(TimeSpan.FromMilliseconds(index * 7919 % IntervalMs), _stop.Token);
                using var timer = new PeriodicTimer(TimeSpan.FromMilliseconds(IntervalMs));
                do
                {
                    var now = Stopwatch.GetTimestamp();
                    var seq = await _connection.SendHeartbeatAsync(0, DateTimeOffset.UtcNow.ToUnixTimeMilliseconds(), _stop.Token);
                    lock (_sent)
                    {
                        _sent[seq] = now;
                    }
                }
                while (await timer.WaitForNextTickAsync(_stop.Token));
            }
            catch (OperationCanceledException)
            {
            }
            catch (Exception ex) when (ex is IOException or Grpc.Core.RpcException or InvalidOperationException)
            {
                Interlocked.Increment(ref _errors);
            }
        }

        private async Task ReadAsync()
        {
            try
            {
                while (await _connection.ReadAsync(CancellationToken.None) is { } message)
                {
                    if (message.BodyCase != CoordinatorMessage.BodyOneofCase.HeartbeatAck)
                    {
                        continue;
                    }

                    long sentAt;
                    lock (_sent)
                    {
                        if (!_sent.Remove(message.HeartbeatAck.Seq, out sentAt))
                        {
                            continue;
                        }
                    }

                    Interlocked.Increment(ref _acked);
                    lock (_latencies)
                    {
                        _latencies.Add(Stopwatch.GetElapsedTime(sentAt).TotalMilliseconds);
                    }
                }
            }
            catch (Exception ex) when (ex is OperationCanceledException or IOException or Grpc.Core.RpcException or RegistrationRefusedException or InvalidOperationException)
            {
                if (!_stop.IsCancellationRequested)
                {
                    Interlocked.Increment(ref _errors);
                }
            }
        }

        private static NodeRegistration Registration(int index)
        {
            var registration = new NodeRegistration
            {
                Name = $"sim-{index:D5}",
                AgentVersion = "bench",
                Hardware = new HardwareProfile
                {
                    Hostname = $"sim-{index:D5}",
                    OperatingSystem = "Linux",
                    CpuModel = "simulated",
                    LogicalCores = 8,
                    MemoryBytes = 32L << 30,
                    DiskBytes = 1L << 40,
                    DiskFreeBytes = 1L << 39,
                },
                Benchmark = new BenchmarkReport { LinkRttMs = 20, LinkDownloadMbps = 100, LinkUploadMbps = 20 },
            };
            registration.Devices.Add("cpu");
            registration.Benchmark.Devices.Add(new DeviceBenchmark { Device = "cpu", MatmulGflops = 100, MemoryBandwidthGbps = 20 });
            return registration;
        }
    }
}

/// <summary>CPU time and memory of another process, from /proc.</summary>
internal static class ProcessStats
{
    public static double CpuSeconds(int pid)
    {
        // Fields 14 and 15 of /proc/PID/stat are user and system time in clock ticks (100 per second on Linux).
        var stat = File.ReadAllText($"/proc/{pid}/stat");
        var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
        return (long.Parse(fields[11], CultureInfo.InvariantCulture) + long.Parse(fields[12], CultureInfo.InvariantCulture)) / 100.0;
    }

    public static double PeakRssMiB(int pid) => StatusKiB(pid, "VmHWM:") / 1024.0;

    public static double RssMiB(int pid) => StatusKiB(pid, "VmRSS:") / 1024.0;

    private static long StatusKiB(int pid, string field)
    {
        foreach (var line in File.ReadLines($"/proc/{pid}/status"))
        {
            if (line.StartsWith(field, StringComparison.Ordinal))
            {
                return long.Parse(line[field.Length..].Trim().Split(' ')[0], CultureInfo.InvariantCulture);
            }
        }

        return 0;
    }
}
