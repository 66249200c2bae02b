using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Emc.Cli.Infrastructure;
using Emc.Compute.Inference;
using Emc.Compute.Training;
using Emc.Coordinator.Hosting;
using Emc.Coordinator.Inference;
using Emc.Coordinator.Models;
using Emc.Coordinator.Verification;
using Emc.Core;
using Emc.Core.Inference;
using Emc.Core.Training;
using Emc.Core.Verification;
using Emc.Node.Agent;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Emc.Cli.Commands;

/// <summary>
/// `emc bench audit`: how well sampled redundant execution catches a node that returns wrong outputs, and
/// what the checks cost. A coordinator and node agents run in this process on loopback with the real
/// gRPC stream, batcher and ONNX Runtime; one node runs with <c>--simulate-fault wrong-output:F</c>.
/// </summary>
internal static class AuditBenchmark
{
    private const string ModelName = "audit-bench";

    public static void AddTo(Command bench)
    {
        var fraction = new Option<double>("--fraction") { Description = "Share of its answers the faulty node corrupts. Default 0.1.", DefaultValueFactory = _ => 0.1 };
        var budget = new Option<int>("--within") { Description = "Answers of the faulty node a trial allows before it counts as missed. Default 1000.", DefaultValueFactory = _ => 1000 };
        var trials = new Option<int>("--trials") { Description = "Trials per case. Default 100.", DefaultValueFactory = _ => 100 };
        var honest = new Option<int>("--honest-requests") { Description = "Requests of the overhead phase (honest nodes only). Default 5000.", DefaultValueFactory = _ => 5000 };
        var json = CommonOptions.Json();
        var command = new Command("audit", "Inference audits: detection of a node returning wrong outputs, and the checks' overhead.") { fraction, budget, trials, honest, json };
        command.SetAction(async (result, _) =>
        {
            var settings = new Settings(result.GetValue(fraction), result.GetValue(budget), result.GetValue(trials), result.GetValue(honest));
            if (!(settings.Fraction > 0 && settings.Fraction <= 1) || settings.Within is < 1 or > 1_000_000 || settings.Trials is < 1 or > 10_000 || settings.HonestRequests is < 100 or > 10_000_000)
            {
                await Console.Error.WriteLineAsync("emc bench audit: --fraction in (0, 1], --within 1-1000000, --trials 1-10000, --honest-requests 100-10000000.");
                return 2;
            }

            var (stop, registrations) = Signals.OnTermination();
            using (stop)
            using (registrations)
            {
                try
                {
                    var report = await RunAsync(settings, result.GetValue(json), stop.Token);
                    if (result.GetValue(json))
                    {
                        Console.WriteLine(JsonSerializer.Serialize(report, EmcJson.Indented));
                    }
                    else
                    {
                        Print(report);
                    }

                    return 0;
                }
                catch (OperationCanceledException) when (stop.IsCancellationRequested)
                {
                    return 130;
                }
            }
        });
        bench.Subcommands.Add(command);
    }

    private static async Task<AuditReport> RunAsync(Settings settings, bool json, CancellationToken stop)
    {
        var progress = json ? Console.Error : Console.Out;
        var root = Directory.CreateTempSubdirectory("emc-bench-audit-").FullName;
        var host = CoordinatorHost.Create(
            new CoordinatorOptions { DataDirectory = Path.Combine(root, "coordinator"), Urls = "http://127.0.0.1:0", GrpcUrls = "http://127.0.0.1:0" },
            _ => { },
            logging => logging.SetMinimumLevel(LogLevel.Error));
        await host.StartAsync(stop);
        var agents = new List<(NodeAgent Agent, Task Run, CancellationTokenSource Stop)>();
        using var loggers = LoggerFactory.Create(b => b.SetMinimumLevel(LogLevel.Error));
        try
        {
            var services = host.Services;
            var registry = services.GetRequiredService<ModelRegistry>();
            var deployments = services.GetRequiredService<DeploymentService>();
            var auditor = services.GetRequiredService<InferenceAuditor>();
            var trust = services.GetRequiredService<TrustBook>();
            var probe = new TorchDeviceProbe();

            NodeAgent Start(string name, FaultSimulation? fault)
            {
                var agent = new NodeAgent(
                    new NodeAgentOptions
                    {
                        Coordinator = host.Endpoints.ApiUrl,
                        Name = name,
                        DataDirectory = Path.Combine(root, name),
                        InferenceThreads = 1,
                        TrainingThreads = 1,
                        SimulateFault = fault,
                    },
                    probe,
                    TimeProvider.System,
                    loggers.CreateLogger<NodeAgent>());
                var cancel = new CancellationTokenSource();
                agents.Add((agent, Task.Run(() => agent.RunAsync(cancel.Token), CancellationToken.None), cancel));
                return agent;
            }

            progress.WriteLine("starting a coordinator and two honest nodes ...");
            var honestAgents = new[] { Start("honest-1", null), Start("honest-2", null) };
            await Task.WhenAll(honestAgents.Select(a => a.Registered)).WaitAsync(TimeSpan.FromMinutes(3), stop);
            byte[] onnx;
            using (var model = TrainableModel.Create(new ModelSpec { Name = ModelSpec.Mlp }, [28, 28], 10, false, "cpu", 1))
            {
                onnx = OnnxExporter.Export(model);
            }

            // Overhead: honest nodes only, from a fresh record (every node starts untrusted).
            progress.WriteLine($"overhead: {settings.HonestRequests} requests on two honest nodes ...");
            var version = await PushAsync(registry, onnx, stop);
            var router = await DeployAsync(deployments, version, 2, stop);
            var random = new Random(1);
            var watch = Stopwatch.StartNew();
            await SendAsync(deployments, version, settings.HonestRequests, random, () => false, stop);
            await auditor.DrainAsync(stop);
            var overhead = (await deployments.GetAsync(DeploymentId(version), stop))!.Audit;
            progress.WriteLine($"    {overhead.Executions} check executions for {overhead.Answers} answers: overhead {overhead.Overhead:P2}; {overhead.Faults} faults, {overhead.Disputes} disputes");
            await deployments.UndeployAsync(DeploymentId(version), stop);

            progress.WriteLine($"starting a node that corrupts {settings.Fraction:P0} of its answers ...");
            var liar = Start("faulty", new FaultSimulation(FaultMode.WrongOutput, settings.Fraction));
            await liar.Registered.WaitAsync(TimeSpan.FromMinutes(3), stop);
            var liarId = liar.NodeId!.Value.ToString();

            var fresh = await TrialsAsync("a new faulty node (checked on every answer until it has 10 verified)", established: false);
            var established = await TrialsAsync("a faulty node with 10,000 verified answers behind it (checked at the 5 % floor)", established: true);
            return new AuditReport
            {
                Fraction = settings.Fraction,
                Within = settings.Within,
                Floor = AuditPolicy.Inference.Floor,
                Warmup = AuditPolicy.Inference.Warmup,
                HonestAnswers = overhead.Answers,
                HonestChecks = overhead.Executions,
                HonestOverhead = overhead.Overhead,
                HonestFalseFaults = overhead.Faults + overhead.Disputes,
                HonestSeconds = Math.Round(watch.Elapsed.TotalSeconds, 1),
                NewNode = fresh,
                EstablishedNode = established,
                AnalyticFloorDetection = AuditPolicy.Inference.DetectionProbability(settings.Fraction, settings.Within),
                BoincTrustedDetection = 1 - Math.Pow(1 - (0.01 * settings.Fraction), settings.Within),
                CpuModel = Environment.ProcessorCount.ToString(CultureInfo.InvariantCulture) + " cores",
            };

            async Task<TrialSummary> TrialsAsync(string what, bool established)
            {
                progress.WriteLine($"{settings.Trials} trials: {what} ...");
                var answersToDetection = new List<long>();
                long missed = 0;
                long answers = 0;
                long executions = 0;
                for (var trial = 0; trial < settings.Trials; trial++)
                {
                    stop.ThrowIfCancellationRequested();
                    var v = await PushAsync(registry, onnx, stop);
                    var trialRouter = await DeployAsync(deployments, v, 3, stop);
                    var scope = $"model:{ModelName}:{v.ToString(CultureInfo.InvariantCulture)}";
                    if (established)
                    {
                        // The same as 10,000 checked answers that all agreed: the audit rate is at its floor.
                        var records = trust.Records().Where(r => r.Scope != scope).ToList();
                        foreach (var load in trialRouter.GetReplicaLoads())
                        {
                            records.Add(new TrustRecord(load.NodeId, scope, 10_000, 10_000, 0, 0));
                        }

                        trust.Restore(records, trust.Reputations());
                    }

                    long detectedAt = -1;
                    void OnFault(AuditFinding finding)
                    {
                        if (finding.Node == liarId && finding.DeploymentId == DeploymentId(v) && Interlocked.Read(ref detectedAt) < 0)
                        {
                            var served = trialRouter.GetReplicaLoads().Where(l => l.ReplicaId == finding.ReplicaId).Sum(l => l.Served);
                            Interlocked.CompareExchange(ref detectedAt, served, -1);
                        }
                    }

                    auditor.FaultProven += OnFault;
                    try
                    {
                        long LiarServed() => trialRouter.GetReplicaLoads().Where(l => l.NodeId == liarId).Sum(l => l.Served);
                        await SendAsync(deployments, v, int.MaxValue, random, () => Interlocked.Read(ref detectedAt) >= 0 || LiarServed() >= settings.Within, stop);
                        await auditor.DrainAsync(stop);
                    }
                    finally
                    {
                        auditor.FaultProven -= OnFault;
                    }

                    var stats = (await deployments.GetAsync(DeploymentId(v), stop))!.Audit;
                    answers += stats.Answers;
                    executions += stats.Executions;
                    if (detectedAt >= 0 && detectedAt <= settings.Within)
                    {
                        answersToDetection.Add(Math.Max(1, detectedAt));
                    }
                    else
                    {
                        missed++;
                    }

                    await deployments.UndeployAsync(DeploymentId(v), stop);
                }

                answersToDetection.Sort();
                var summary = new TrialSummary
                {
                    Trials = settings.Trials,
                    Caught = answersToDetection.Count,
                    Missed = missed,
                    DetectionRate = (double)answersToDetection.Count / settings.Trials,
                    MedianAnswersToDetection = Percentile(answersToDetection, 0.5),
                    P90AnswersToDetection = Percentile(answersToDetection, 0.9),
                    MaxAnswersToDetection = answersToDetection.Count == 0 ? 0 : answersToDetection[^1],
                    Answers = answers,
                    CheckExecutions = executions,
                    Overhead = answers == 0 ? 0 : (double)executions / answers,
                };
                progress.WriteLine($"    caught in {summary.Caught} of {summary.Trials} trials within {settings.Within} of its answers (median {summary.MedianAnswersToDetection}, p90 {summary.P90AnswersToDetection}); overhead {summary.Overhead:P2}");
                return summary;
            }
        }
        finally
        {
            foreach (var (_, _, cancel) in agents)
            {
                await cancel.CancelAsync();
            }

            try
            {
                await Task.WhenAll(agents.Select(a => a.Run)).WaitAsync(TimeSpan.FromSeconds(30), CancellationToken.None);
            }
            catch (Exception ex) when (ex is OperationCanceledException or TimeoutException)
            {
                // Stopped as asked.
            }

            foreach (var (_, _, cancel) in agents)
            {
                cancel.Dispose();
            }

            await host.StopAsync(CancellationToken.None);
            await host.DisposeAsync();
            try
            {
                Directory.Delete(root, recursive: true);
            }
            catch (IOException)
            {
                // A temp folder left behind.
            }
        }
    }

    private static string DeploymentId(int version) => $"{ModelName}-v{version.ToString(CultureInfo.InvariantCulture)}";

    private static async Task<int> PushAsync(ModelRegistry registry, byte[] onnx, CancellationToken stop)
    {
        var pushed = await registry.PushAsync(new ModelPush(ModelName, null, ModelRegistry.OnnxFormat, onnx, [], []), stop);
        return pushed.Value?.Version ?? throw new InvalidOperationException($"the model could not be pushed: {pushed.Error}");
    }

    private static async Task<ReplicaRouter<RoutedCall, InferResponse>> DeployAsync(DeploymentService deployments, int version, int replicas, CancellationToken stop)
    {
        await deployments.DeployAsync(new DeploymentSpec { Model = ModelName, Version = version, MinReplicas = replicas, MaxReplicas = replicas }, stop);
        var router = deployments.GetRouter(DeploymentId(version))!;
        var deadline = DateTime.UtcNow.AddMinutes(2);
        while (router.ReplicaCount < replicas)
        {
            if (DateTime.UtcNow > deadline)
            {
                throw new InvalidOperationException($"{replicas} replicas of {DeploymentId(version)} did not become ready");
            }

            await Task.Delay(50, stop);
        }

        return router;
    }

    /// <summary>Sends up to <paramref name="count"/> requests from 4 clients, until <paramref name="done"/> holds.</summary>
    private static async Task SendAsync(DeploymentService deployments, int version, int count, Random random, Func<bool> done, CancellationToken stop)
    {
        var next = 0;
        var inputs = new float[64][];
        for (var i = 0; i < inputs.Length; i++)
        {
            inputs[i] = new float[28 * 28];
            for (var j = 0; j < inputs[i].Length; j++)
            {
                inputs[i][j] = (float)random.NextDouble();
            }
        }

        var versionText = version.ToString(CultureInfo.InvariantCulture);
        async Task ClientAsync()
        {
            while (!done())
            {
                var n = Interlocked.Increment(ref next);
                if (n > count)
                {
                    return;
                }

                var request = new InferRequest { Inputs = [InferTensor.Create<float>("input", [1, 28, 28], inputs[n % inputs.Length])] };
                try
                {
                    await deployments.InferAsync(ModelName, versionText, request, DateTimeOffset.UtcNow.AddSeconds(30), stop);
                }
                catch (OipException)
                {
                    // A replica evicted under the request: the router retried or the deployment is being replaced.
                    await Task.Delay(10, stop);
                }
            }
        }

        await Task.WhenAll(Enumerable.Range(0, 4).Select(_ => ClientAsync()));
    }

    private static long Percentile(List<long> sorted, double q) =>
        sorted.Count == 0 ? 0 : sorted[Math.Min(sorted.Count - 1, (int)Math.Ceiling(q * sorted.Count) - 1)];

    private static void Print(AuditReport report)
    {
        Console.WriteLine();
        Console.WriteLine($"Inference audits (floor {report.Floor:P0}, warm-up {report.Warmup} answers), a node corrupting {report.Fraction:P0} of its answers, {report.CpuModel}:");
        Console.WriteLine($"  overhead on honest nodes:   {report.HonestOverhead:P2} ({report.HonestChecks} check executions for {report.HonestAnswers} paid answers; {report.HonestFalseFaults} false faults)");
        Console.WriteLine($"  new faulty node:            caught in {report.NewNode.Caught}/{report.NewNode.Trials} trials within {report.Within} of its answers (median {report.NewNode.MedianAnswersToDetection}, p90 {report.NewNode.P90AnswersToDetection}, max {report.NewNode.MaxAnswersToDetection}); overhead {report.NewNode.Overhead:P2}");
        Console.WriteLine($"  established faulty node:    caught in {report.EstablishedNode.Caught}/{report.EstablishedNode.Trials} trials within {report.Within} of its answers (median {report.EstablishedNode.MedianAnswersToDetection}, p90 {report.EstablishedNode.P90AnswersToDetection}, max {report.EstablishedNode.MaxAnswersToDetection}); overhead {report.EstablishedNode.Overhead:P2}");
        Console.WriteLine($"  the floor's guarantee:      {report.AnalyticFloorDetection:P2} within {report.Within}; BOINC's trusted host (1 % audits): {report.BoincTrustedDetection:P2}");
    }

    private sealed record Settings(double Fraction, int Within, int Trials, int HonestRequests);

    private sealed record AuditReport
    {
        public double Fraction { get; init; }

        public int Within { get; init; }

        public double Floor { get; init; }

        public int Warmup { get; init; }

        public long HonestAnswers { get; init; }

        public long HonestChecks { get; init; }

        public double HonestOverhead { get; init; }

        public long HonestFalseFaults { get; init; }

        public double HonestSeconds { get; init; }

        public required TrialSummary NewNode { get; init; }

        public required TrialSummary EstablishedNode { get; init; }

        public double AnalyticFloorDetection { get; init; }

        public double BoincTrustedDetection { get; init; }

        public required string CpuModel { get; init; }
    }

    private sealed record TrialSummary
    {
        public int Trials { get; init; }

        public int Caught { get; init; }

        public long Missed { get; init; }

        public double DetectionRate { get; init; }

        public long MedianAnswersToDetection { get; init; }

        public long P90AnswersToDetection { get; init; }

        public long MaxAnswersToDetection { get; init; }

        public long Answers { get; init; }

        public long CheckExecutions { get; init; }

        public double Overhead { get; init; }
    }
}
