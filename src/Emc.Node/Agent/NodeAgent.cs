using System.Reflection;
using Emc.Contracts.Node.V1;
using DeviceBenchmark = Emc.Core.Hardware.DeviceBenchmark;
using HardwareProfile = Emc.Core.Hardware.HardwareProfile;
using Emc.Core.Hardware;
using Emc.Core.Identity;
using Emc.Node.Connection;
using Emc.Node.Hardware;
using Grpc.Core;
using Grpc.Net.Client;
using Microsoft.Extensions.Logging;

namespace Emc.Node.Agent;

/// <summary>
/// The node agent: proves who it is and what it has, keeps its stream to the coordinator alive
/// (reconnecting with backoff), and drains cleanly when asked to stop.
/// </summary>
public sealed partial class NodeAgent(NodeAgentOptions options, IDeviceProbe probe, TimeProvider time, ILogger<NodeAgent> logger)
{
    /// <summary>The agent's version, sent at registration.</summary>
    public static readonly string AgentVersion = typeof(NodeAgent).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion.Split('+')[0] ?? "0.0.0";

    private readonly TaskCompletionSource<Welcome> _firstWelcome = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>Completes when the node is first accepted by the coordinator.</summary>
    public Task<Welcome> Registered => _firstWelcome.Task;

    /// <summary>The node's id, known once the key is loaded.</summary>
    public EthAddress? NodeId { get; private set; }

    /// <summary>
    /// Runs until <paramref name="drain"/> fires (then drains and says goodbye) or the coordinator
    /// refuses the node for good (then throws <see cref="RegistrationRefusedException"/>).
    /// </summary>
    public async Task RunAsync(CancellationToken drain)
    {
        using var key = NodeKeyStore.LoadOrCreate(options.DataDirectory);
        NodeId = key.Address;
        var devices = options.Devices.Select(DeviceName.Normalize).Distinct().ToList();
        foreach (var device in devices)
        {
            if (DeviceName.TryParse(device, out var kind, out var index) && kind == DeviceKind.Cuda && index >= probe.CudaDeviceCount)
            {
                throw new ArgumentException($"Device {device} was asked for, but this machine has {probe.CudaDeviceCount} CUDA devices.");
            }
        }

        Log.Starting(logger, key.Address.ToString(), options.Name, string.Join(",", devices));
        var hardware = HardwareDetector.Detect(options.DataDirectory, probe.CudaDeviceCount);
        var deviceBenchmarks = devices.Select(d => probe.Benchmark(d, drain)).ToList();
        foreach (var result in deviceBenchmarks)
        {
            Log.DeviceBenchmarked(logger, result.Device, result.MatmulGflops, result.MemoryBandwidthGBps);
        }

        using var http = new HttpClient { BaseAddress = options.Coordinator, Timeout = TimeSpan.FromSeconds(60) };
        var client = new CoordinatorClient(http);
        var backoff = new ExponentialBackoff(options.ReconnectInitialDelay, options.ReconnectMaxDelay);
        while (!drain.IsCancellationRequested)
        {
            try
            {
                var info = await client.GetInfoAsync(drain);
                var link = await client.MeasureLinkAsync(options.LinkBenchmarkBytes, drain);
                var registration = BuildRegistration(hardware, deviceBenchmarks, devices, link);
                using var channel = GrpcChannel.ForAddress(info.GrpcUrl, new GrpcChannelOptions
                {
                    HttpHandler = new SocketsHttpHandler
                    {
                        KeepAlivePingDelay = TimeSpan.FromSeconds(20),
                        KeepAlivePingTimeout = TimeSpan.FromSeconds(20),
                        PooledConnectionIdleTimeout = Timeout.InfiniteTimeSpan,
                        ConnectTimeout = TimeSpan.FromSeconds(10),
                    },
                });
                await RunSessionAsync(channel, key, registration, backoff, drain);
                if (drain.IsCancellationRequested)
                {
                    return;
                }
            }
            catch (RegistrationRefusedException ex) when (!ex.IsRetryable)
            {
                Log.Refused(logger, ex.Code.ToString(), ex.Reason);
                throw;
            }
            catch (OperationCanceledException) when (drain.IsCancellationRequested)
            {
                return;
            }
            catch (Exception ex) when (ex is RpcException or HttpRequestException or IOException or RegistrationRefusedException
                                           or OperationCanceledException or System.Text.Json.JsonException or InvalidDataException)
            {
                var delay = backoff.NextDelay();
                Log.ConnectionFailed(logger, options.Coordinator.ToString(), ex.Message, delay.TotalSeconds);
                try
                {
                    await Task.Delay(delay, time, drain);
                }
                catch (OperationCanceledException)
                {
                    return;
                }
            }
        }
    }

    private async Task RunSessionAsync(GrpcChannel channel, NodeKey key, NodeRegistration registration, ExponentialBackoff backoff, CancellationToken drain)
    {
        using var sessionCancel = new CancellationTokenSource();
        await using var connection = await NodeConnection.OpenAsync(channel, key, registration, AgentVersion, drain);
        backoff.Reset();
        var welcome = connection.Welcome;
        Log.Connected(logger, welcome.NodeId, welcome.SessionId);
        _firstWelcome.TrySetResult(welcome);

        var interval = TimeSpan.FromMilliseconds(Math.Max(50, welcome.HeartbeatIntervalMs));
        var silenceLimit = TimeSpan.FromMilliseconds(Math.Max(interval.TotalMilliseconds * 2, welcome.HeartbeatTimeoutMs));
        var lastHeard = time.GetTimestamp();
        var reader = Task.Run(
            async () =>
            {
                while (await connection.ReadAsync(sessionCancel.Token) is not null)
                {
                    Interlocked.Exchange(ref lastHeard, time.GetTimestamp());
                }
            },
            CancellationToken.None);

        try
        {
            using var timer = new PeriodicTimer(interval, time);
            while (!drain.IsCancellationRequested)
            {
                await connection.SendHeartbeatAsync(runningTasks: 0, time.GetUtcNow().ToUnixTimeMilliseconds(), sessionCancel.Token);
                var tick = timer.WaitForNextTickAsync(drain).AsTask();
                if (await Task.WhenAny(tick, reader) == reader)
                {
                    await reader; // surfaces the refusal or stream error; a clean end is a lost coordinator
                    throw new IOException("The coordinator ended the stream.");
                }

                try
                {
                    await tick;
                }
                catch (OperationCanceledException)
                {
                    break;
                }

                if (time.GetElapsedTime(Interlocked.Read(ref lastHeard)) > silenceLimit)
                {
                    throw new IOException($"No answer from the coordinator for {silenceLimit.TotalSeconds:0} s.");
                }
            }

            // Drain: no work is running yet, so the node can leave as soon as the coordinator knows.
            Log.Draining(logger);
            using var drainTimeout = new CancellationTokenSource(options.DrainTimeout);
            await connection.SendDrainAsync("the node agent is stopping", drainTimeout.Token);
            await connection.SendGoodbyeAsync(drainTimeout.Token);
            await Task.WhenAny(reader, Task.Delay(TimeSpan.FromSeconds(5), time, CancellationToken.None));
            Log.Left(logger);
        }
        finally
        {
            await sessionCancel.CancelAsync();
            try
            {
                await reader;
            }
            catch (Exception ex) when (ex is OperationCanceledException or RpcException or IOException or RegistrationRefusedException)
            {
                // The session is over either way; the reason, if any, was already surfaced above.
            }
        }
    }

    private NodeRegistration BuildRegistration(
        HardwareProfile hardware,
        IReadOnlyList<DeviceBenchmark> benchmarks,
        IReadOnlyList<string> devices,
        (double RttMs, double DownloadMbps, double UploadMbps) link)
    {
        var registration = new NodeRegistration
        {
            Name = options.Name,
            AgentVersion = AgentVersion,
            Hardware = new Contracts.Node.V1.HardwareProfile
            {
                Hostname = hardware.Hostname,
                OperatingSystem = hardware.OperatingSystem,
                CpuModel = hardware.CpuModel,
                LogicalCores = hardware.LogicalCores,
                MemoryBytes = hardware.MemoryBytes,
                DiskBytes = hardware.DiskBytes,
                DiskFreeBytes = hardware.DiskFreeBytes,
                CudaAvailable = hardware.CudaAvailable,
                CudaDeviceCount = hardware.CudaDeviceCount,
            },
            Benchmark = new Contracts.Node.V1.BenchmarkReport
            {
                LinkRttMs = link.RttMs,
                LinkDownloadMbps = link.DownloadMbps,
                LinkUploadMbps = link.UploadMbps,
            },
        };
        registration.Devices.AddRange(devices);
        registration.Hardware.Gpus.AddRange(hardware.Gpus.Select(g => new Contracts.Node.V1.GpuInfo
        {
            Index = g.Index,
            Name = g.Name,
            MemoryBytes = g.MemoryBytes,
            DriverVersion = g.DriverVersion,
            CudaVersion = g.CudaVersion,
            Uuid = g.Uuid,
        }));
        registration.Benchmark.Devices.AddRange(benchmarks.Select(b => new Contracts.Node.V1.DeviceBenchmark
        {
            Device = b.Device,
            MatmulGflops = b.MatmulGflops,
            MemoryBandwidthGbps = b.MemoryBandwidthGBps,
        }));
        return registration;
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 2000, Level = LogLevel.Information, Message = "Node {NodeId} ({Name}) starting with devices {Devices}.")]
        public static partial void Starting(ILogger logger, string nodeId, string name, string devices);

        [LoggerMessage(EventId = 2001, Level = LogLevel.Information, Message = "Benchmark {Device}: {Gflops:0.0} GFLOP/s matmul, {Bandwidth:0.0} GB/s memory.")]
        public static partial void DeviceBenchmarked(ILogger logger, string device, double gflops, double bandwidth);

        [LoggerMessage(EventId = 2002, Level = LogLevel.Information, Message = "Connected as {NodeId}, session {SessionId}.")]
        public static partial void Connected(ILogger logger, string nodeId, string sessionId);

        [LoggerMessage(EventId = 2003, Level = LogLevel.Warning, Message = "Connection to {Coordinator} failed: {Reason}. Retrying in {Seconds:0.0} s.")]
        public static partial void ConnectionFailed(ILogger logger, string coordinator, string reason, double seconds);

        [LoggerMessage(EventId = 2004, Level = LogLevel.Error, Message = "Registration refused ({Code}): {Reason}")]
        public static partial void Refused(ILogger logger, string code, string reason);

        [LoggerMessage(EventId = 2005, Level = LogLevel.Information, Message = "Draining: taking no new work.")]
        public static partial void Draining(ILogger logger);

        [LoggerMessage(EventId = 2006, Level = LogLevel.Information, Message = "Drained; left the network.")]
        public static partial void Left(ILogger logger);
    }
}
