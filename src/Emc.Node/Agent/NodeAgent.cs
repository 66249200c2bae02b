using System.Reflection;
using Emc.Contracts.Node.V1;
using DeviceBenchmark = Emc.Core.Hardware.DeviceBenchmark;
using HardwareProfile = Emc.Core.Hardware.HardwareProfile;
using Emc.Core.Hardware;
using Emc.Core.Identity;
using Emc.Core.Registry;
using Emc.Node.Connection;
using Emc.Node.Hardware;
using Emc.Node.Inference;
using Emc.Node.Training;
using Emc.Node.Work;
using Grpc.Core;
using Grpc.Net.Client;
using Microsoft.Extensions.Logging;

namespace Emc.Node.Agent;

/// <summary>
/// The node agent: proves who it is and what it has, keeps its stream to the coordinator alive
/// (reconnecting with backoff), runs the work leased to it (see <see cref="LeaseRunner"/>), and
/// drains cleanly when asked to stop.
/// </summary>
public sealed partial class NodeAgent(NodeAgentOptions options, IDeviceProbe probe, TimeProvider time, ILogger<NodeAgent> logger)
{
    /// <summary>The agent's version, sent at registration.</summary>
    public static readonly string AgentVersion = typeof(NodeAgent).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion.Split('+')[0] ?? "0.0.0";

    private static readonly Task Never = new TaskCompletionSource().Task;

    private readonly TaskCompletionSource<Welcome> _firstWelcome = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>Completes when the node is first accepted by the coordinator.</summary>
    public Task<Welcome> Registered => _firstWelcome.Task;

    /// <summary>The node's id, known once the key is loaded.</summary>
    public EthAddress? NodeId { get; private set; }

    /// <summary>The node's serving side (replicas of deployments), once the agent runs.</summary>
    public InferenceHost? Inference { get; private set; }

    /// <summary>
    /// Runs until <paramref name="drain"/> fires and the node has drained (then says goodbye), or the
    /// coordinator refuses the node for good (then throws <see cref="RegistrationRefusedException"/>).
    /// Draining rejects new work, lets running work finish and waits for its results to be
    /// acknowledged, reconnecting if need be, for at most <see cref="NodeAgentOptions.DrainTimeout"/>.
    /// </summary>
    public async Task RunAsync(CancellationToken drain)
    {
        options.Validate();
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
        if (options.SimulateFault?.Mode == Core.Verification.FaultMode.OverstatedHardware)
        {
            // The simulated fault: claim ten times what was measured.
            deviceBenchmarks = [.. deviceBenchmarks.Select(b => b with
            {
                MatmulGflops = b.MatmulGflops * Core.Verification.FaultSimulation.OverstateFactor,
                MemoryBandwidthGBps = b.MemoryBandwidthGBps * Core.Verification.FaultSimulation.OverstateFactor,
            })];
        }
        foreach (var result in deviceBenchmarks)
        {
            Log.DeviceBenchmarked(logger, result.Device, result.MatmulGflops, result.MemoryBandwidthGBps);
        }

        // The leases outlive sessions: results finished while disconnected are handed in on the next one.
        // Every HTTP request to the coordinator is signed with the node's key (blobs, link tests, info).
        var signer = new NodeRequestSigner(key, time);
        using var blobHttp = new HttpClient(signer.CreateHandler()) { BaseAddress = options.Coordinator, Timeout = Timeout.InfiniteTimeSpan };
        var blobs = new BlobCache(blobHttp, Path.Combine(options.DataDirectory, "blobs"));
        using var splits = new SplitCache(blobs);
        var states = new TrainStateStore(Path.Combine(options.DataDirectory, "train-states")) { Forgetful = options.SimulateFault?.Mode == Core.Verification.FaultMode.WithholdState };
        using var training = new TrainRoundExecutor(key, blobs, splits, states, logger) { Threads = options.TrainingThreads, Fault = options.SimulateFault };
        using var replays = new TrainReplayExecutor(blobs, splits, training, logger) { Threads = options.TrainingThreads, Fault = options.SimulateFault };
        using var challenges = new ChallengeExecutor(blobs, logger) { Threads = options.TrainingThreads };
        using var models = new ModelCache((input, device, ct) => ModelCache.LoadAsync(blobs, input, device, options.InferenceThreads, ct));
        var engines = options.Engines.Select(e => new ExternalEngine(e)).ToList();
        using var disposeEngines = new EngineList(engines);
        await CheckEnginesAsync(engines, drain);
        await using var inference = new InferenceHost(models, logger, time, engines) { Fault = options.SimulateFault };
        Inference = inference;
        var executors = options.Executors ?? TaskExecutors.CreateDefault(probe, time);
        foreach (var executor in new ITaskExecutor[] { training, replays, new TrainStateExecutor(states, blobs), challenges })
        {
            if (!executors.TryGet(executor.Kind, out _))
            {
                executors.Add(executor);
            }
        }

        if (!executors.TryGet(Core.Inference.ServeTaskInput.Kind, out _))
        {
            executors.Add(new ServeExecutor(inference));
        }

        await using var leases = new LeaseRunner(executors, devices, logger);

        // `leave` ends the drain: DrainTimeout after the stop signal, the node goes whatever it still holds.
        using var leave = new CancellationTokenSource(Timeout.InfiniteTimeSpan, time);
        using var leaveOnTimeout = drain.Register(() => leave.CancelAfter(options.DrainTimeout));

        using var http = new HttpClient(signer.CreateHandler()) { BaseAddress = options.Coordinator, Timeout = TimeSpan.FromSeconds(60) };
        var client = new CoordinatorClient(http);
        var backoff = new ExponentialBackoff(options.ReconnectInitialDelay, options.ReconnectMaxDelay);
        while (!leave.IsCancellationRequested && !(drain.IsCancellationRequested && leases.IsIdle))
        {
            // With nothing in hand a stop signal ends connecting at once; with work in hand the node
            // keeps trying, until the drain timeout, so that its results reach the coordinator.
            // (Work can only be taken on while connected, so idleness cannot change in between.)
            var attempt = leases.IsIdle ? drain : leave.Token;
            try
            {
                var info = await client.GetInfoAsync(attempt);
                var link = await client.MeasureLinkAsync(options.LinkBenchmarkBytes, attempt);
                var registration = BuildRegistration(hardware, deviceBenchmarks, devices, link);
                using var channel = GrpcChannel.ForAddress(info.GrpcUrl, new GrpcChannelOptions
                {
                    // Inference calls and replies carry tensors; larger ones are refused before they are sent.
                    MaxReceiveMessageSize = Core.Inference.ServingLimits.MaxMessageBytes,
                    MaxSendMessageSize = Core.Inference.ServingLimits.MaxMessageBytes,
                    HttpHandler = new SocketsHttpHandler
                    {
                        KeepAlivePingDelay = TimeSpan.FromSeconds(20),
                        KeepAlivePingTimeout = TimeSpan.FromSeconds(20),
                        PooledConnectionIdleTimeout = Timeout.InfiniteTimeSpan,
                        ConnectTimeout = TimeSpan.FromSeconds(10),
                    },
                });
                await RunSessionAsync(channel, key, registration, leases, inference, backoff, attempt, drain, leave.Token);
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
            catch (OperationCanceledException) when (leave.IsCancellationRequested || (drain.IsCancellationRequested && leases.IsIdle))
            {
                break;
            }
            catch (Exception ex) when (ex is RpcException or HttpRequestException or IOException or RegistrationRefusedException
                                           or OperationCanceledException or System.Text.Json.JsonException or InvalidDataException)
            {
                var delay = backoff.NextDelay();
                Log.ConnectionFailed(logger, options.Coordinator.ToString(), ex.Message, delay.TotalSeconds);
                try
                {
                    await Task.Delay(delay, time, leases.IsIdle ? drain : leave.Token);
                }
                catch (OperationCanceledException)
                {
                    // The loop's condition decides whether to try again.
                }
            }
        }

        if (!leases.IsIdle)
        {
            Log.LeftWithWork(logger, leases.HeldLeaseIds.Count, options.DrainTimeout.TotalSeconds);
        }
    }

    private async Task RunSessionAsync(
        GrpcChannel channel,
        NodeKey key,
        NodeRegistration registration,
        LeaseRunner leases,
        InferenceHost inference,
        ExponentialBackoff backoff,
        CancellationToken handshake,
        CancellationToken drain,
        CancellationToken leave)
    {
        using var sessionCancel = new CancellationTokenSource();
        await using var connection = await NodeConnection.OpenAsync(channel, key, registration, AgentVersion, handshake);
        backoff.Reset();
        var welcome = connection.Welcome;
        Log.Connected(logger, welcome.NodeId, welcome.SessionId);
        _firstWelcome.TrySetResult(welcome);

        // Every message of the session goes through this one writer: see NodeOutbox.
        await using var outbox = new NodeOutbox(connection.SendAsync);
        var interval = TimeSpan.FromMilliseconds(Math.Max(50, welcome.HeartbeatIntervalMs));
        var silenceLimit = TimeSpan.FromMilliseconds(Math.Max(interval.TotalMilliseconds * 2, welcome.HeartbeatTimeoutMs));
        var lastHeard = time.GetTimestamp();
        Task reader = Task.CompletedTask;
        try
        {
            // Attached before the first read, so that answers to offers have a way out.
            await leases.AttachAsync(outbox, leave);
            await inference.AttachAsync(outbox, leave);
            reader = Task.Run(
                async () =>
                {
                    while (await connection.ReadAsync(sessionCancel.Token) is { } message)
                    {
                        Interlocked.Exchange(ref lastHeard, time.GetTimestamp());
                        if (message.BodyCase == CoordinatorMessage.BodyOneofCase.InferCall)
                        {
                            // Queued, never waited for: the reader must keep reading.
                            inference.Dispatch(message.InferCall);
                        }
                        else if (message.BodyCase == CoordinatorMessage.BodyOneofCase.InferCalls)
                        {
                            foreach (var call in message.InferCalls.Calls)
                            {
                                inference.Dispatch(call);
                            }
                        }
                        else if (message.BodyCase == CoordinatorMessage.BodyOneofCase.GenerateCall)
                        {
                            inference.Dispatch(message.GenerateCall);
                        }
                        else if (message.BodyCase == CoordinatorMessage.BodyOneofCase.EngineCall)
                        {
                            inference.Dispatch(message.EngineCall);
                        }
                        else if (message.BodyCase == CoordinatorMessage.BodyOneofCase.GenerateCancel)
                        {
                            inference.Cancel(message.GenerateCancel);
                        }
                        else
                        {
                            await leases.HandleAsync(message, sessionCancel.Token);
                        }
                    }
                },
                CancellationToken.None);

            using var timer = new PeriodicTimer(interval, time);
            ulong sequence = 0;
            Task? idle = null;
            while (true)
            {
                if (idle is null && drain.IsCancellationRequested)
                {
                    Log.Draining(logger, leases.HeldLeaseIds.Count);
                    inference.BeginDrain();
                    await leases.BeginDrainAsync(leave);
                    await outbox.SendAsync(new NodeMessage { Drain = new Drain { Reason = "the node agent is stopping" } }, leave);
                    idle = leases.WhenIdleAsync(CancellationToken.None);
                }

                if (idle is { IsCompleted: true } || leave.IsCancellationRequested)
                {
                    break;
                }

                // A heartbeat may be dropped when the queue is full: the next one says the same.
                var heartbeat = new Heartbeat { Seq = ++sequence, SentUnixMs = time.GetUtcNow().ToUnixTimeMilliseconds() };
                leases.FillHeartbeat(heartbeat);
                outbox.TrySend(new NodeMessage { Heartbeat = heartbeat });

                // Serving, the tick also ends on the stop signal; draining, on the drain timeout or when the work is done.
                var tick = timer.WaitForNextTickAsync(idle is null ? drain : leave).AsTask();
                var woke = await Task.WhenAny(tick, reader, outbox.Completion, idle ?? Never);
                if (woke == reader)
                {
                    await reader; // surfaces the refusal or stream error; a clean end is a lost coordinator
                    throw new IOException("The coordinator ended the stream.");
                }

                if (woke == outbox.Completion)
                {
                    throw StreamBroken(outbox.Completion);
                }

                if (woke == tick && tick.IsCompletedSuccessfully && time.GetElapsedTime(Interlocked.Read(ref lastHeard)) > silenceLimit)
                {
                    throw new IOException($"No answer from the coordinator for {silenceLimit.TotalSeconds:0} s.");
                }
            }

            if (idle is not { IsCompleted: true })
            {
                Log.DrainTimedOut(logger, leases.HeldLeaseIds.Count);
            }

            // Nothing more may be queued after the goodbye: results finishing now wait (in vain) for another session.
            leases.Detach(outbox);
            inference.Detach(outbox);
            using var goodbyeTimeout = new CancellationTokenSource(TimeSpan.FromSeconds(5), time);
            await outbox.CloseAsync(goodbyeTimeout.Token);
            await connection.SendGoodbyeAsync(goodbyeTimeout.Token);
            await Task.WhenAny(reader, Task.Delay(TimeSpan.FromSeconds(5), time, CancellationToken.None));
            Log.Left(logger);
        }
        finally
        {
            leases.Detach(outbox);
            inference.Detach(outbox);
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

    /// <summary>
    /// Asks each engine for its models once at start: one that answers with no model that fits is a
    /// mistake in the node's settings (an <see cref="ArgumentException"/>); one that does not answer may
    /// be starting, and is asked again before each replica is announced.
    /// </summary>
    private async Task CheckEnginesAsync(IReadOnlyList<ExternalEngine> engines, CancellationToken cancellationToken)
    {
        foreach (var engine in engines)
        {
            try
            {
                var model = await engine.ResolveModelAsync(cancellationToken);
                Log.EngineFound(logger, engine.Name, engine.Endpoint.BaseUrl.ToString(), model);
            }
            catch (EngineException ex) when (ex.Transient)
            {
                Log.EngineNotAnswering(logger, ex.Message);
            }
            catch (EngineException ex)
            {
                throw new ArgumentException(ex.Message, ex);
            }
        }
    }

    /// <summary>The writer stopped: an IOException (which the reconnect loop handles) carrying why.</summary>
    private static IOException StreamBroken(Task completion) =>
        completion.Exception?.InnerException is { } cause
            ? new IOException($"Writing to the coordinator failed: {cause.Message}", cause)
            : new IOException("Writing to the coordinator stopped.");

    private NodeRegistration BuildRegistration(
        HardwareProfile hardware,
        IReadOnlyList<DeviceBenchmark> benchmarks,
        IReadOnlyList<string> devices,
        (double RttMs, double DownloadMbps, double UploadMbps) link)
    {
        var registration = new NodeRegistration
        {
            Features = { ProtocolFeatures.InferBatches },
            Name = options.Name,
            AgentVersion = AgentVersion,
            Price = options.Price,
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
        foreach (var (name, value) in options.Labels)
        {
            registration.Labels.Add(name, value);
        }

        // Engine deployments place their replicas by these labels.
        foreach (var engine in options.Engines)
        {
            registration.Labels[Core.Inference.EngineNames.LabelKey(engine.Name)] = Core.Inference.EngineNames.LabelValue;
        }

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

    /// <summary>Disposes the engines' HTTP clients when the agent stops.</summary>
    private sealed class EngineList(List<ExternalEngine> engines) : IDisposable
    {
        public void Dispose()
        {
            foreach (var engine in engines)
            {
                engine.Dispose();
            }
        }
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 2009, Level = LogLevel.Information, Message = "Engine {Engine} at {Url} serves model '{Model}'.")]
        public static partial void EngineFound(ILogger logger, string engine, string url, string model);

        [LoggerMessage(EventId = 2010, Level = LogLevel.Warning, Message = "{Reason}; its replicas wait until it answers.")]
        public static partial void EngineNotAnswering(ILogger logger, string reason);

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

        [LoggerMessage(EventId = 2005, Level = LogLevel.Information, Message = "Draining: taking no new work; waiting for {Count} leases to finish and their results to be acknowledged.")]
        public static partial void Draining(ILogger logger, int count);

        [LoggerMessage(EventId = 2006, Level = LogLevel.Information, Message = "Drained; left the network.")]
        public static partial void Left(ILogger logger);

        [LoggerMessage(EventId = 2007, Level = LogLevel.Warning, Message = "The drain timed out with {Count} leases still held; leaving anyway.")]
        public static partial void DrainTimedOut(ILogger logger, int count);

        [LoggerMessage(EventId = 2008, Level = LogLevel.Warning, Message = "Left without handing in {Count} leases: the coordinator could not be reached within the {Seconds:0} s drain timeout.")]
        public static partial void LeftWithWork(ILogger logger, int count, double seconds);
    }
}
