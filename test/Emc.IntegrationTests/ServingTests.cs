using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Text;
using System.Text.Json;
using Emc.Core;
using Emc.Core.Inference;
using Emc.Core.Training;
using Emc.IntegrationTests.Infrastructure;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;

namespace Emc.IntegrationTests;

/// <summary>
/// Models pushed, deployed and called with the `emc` CLI and over the Open Inference Protocol, served by
/// real `emc node` processes; the answers are checked against ONNX Runtime (and PyTorch's recorded output)
/// run directly in the test.
/// </summary>
public sealed class ServingTests
{
    private static readonly TimeSpan CliTimeout = TimeSpan.FromSeconds(90);
    private static readonly string Fixtures = Path.Combine(AppContext.BaseDirectory, "fixtures");

    /// <summary>How long the coordinator may take to serve from 2 replicas again after a node is SIGKILLed.</summary>
    /// <remarks>
    /// A killed node's stream ends at once (the kernel resets its connections): the gateway marks the node
    /// lost then, the router stops sending to it and the scheduler reissues its lease (about 3 s in all
    /// here). A frozen node keeps its connections open and is marked lost by the heartbeat timeout, within
    /// 15 s of its last beat (12 s timeout, 2 s check). The new replica then loads the model (well under a
    /// second for this one). 45 s leaves room for a loaded machine.
    /// </remarks>
    private static readonly TimeSpan ReplacementBound = TimeSpan.FromSeconds(45);

    /// <summary>The client's own limit on one request; the request asks the server for 5 s (Triton's timeout parameter).</summary>
    private static readonly TimeSpan RequestTimeout = TimeSpan.FromSeconds(15);

    /// <summary>The deadline each request asks the server for.</summary>
    private static readonly TimeSpan ServerDeadline = TimeSpan.FromSeconds(5);

    /// <summary>Concurrent clients, each sending one request after the other.</summary>
    private const int Clients = 4;

    [Fact]
    public async Task Deployment_ReplicaNodeKilledWhileRequestsFlow_EveryRequestAnswersAndTheReplicaIsReplaced()
    {
        await using var network = await EmcNetwork.StartAsync(nodeCount: 3);
        var ids = await Task.WhenAll(Enumerable.Range(0, 3).Select(network.WaitForNodeAsync));
        await CliAsync(network, "model", "push", Path.Combine(Fixtures, "tiny_mlp.onnx"), "--name", "tiny");
        await CliAsync(network, "model", "deploy", "tiny", "--replicas", "2..2", "--max-batch", "8", "--max-delay-us", "500");
        var ready = await WaitForReadyAsync(network, "tiny", 2, TimeSpan.FromSeconds(90), _ => true);
        var replicaNodes = ready.Replicas.Select(r => r.NodeId).ToList();
        Assert.Equal(2, replicaNodes.Distinct().Count());

        using var onnx = new InferenceSession(Path.Combine(Fixtures, "tiny_mlp.onnx"));
        using var http = new HttpClient { BaseAddress = network.ApiUrl, Timeout = Timeout.InfiniteTimeSpan, DefaultRequestHeaders = { Authorization = new("Bearer", EmcProcess.OperatorKey) } };
        var outcomes = new ConcurrentQueue<Outcome>();
        using var stop = new CancellationTokenSource();
        var clock = Stopwatch.StartNew();
        var clients = Enumerable.Range(0, Clients).Select(client => Task.Run(async () =>
        {
            var random = new Random(client);
            while (!stop.IsCancellationRequested)
            {
                var sent = clock.Elapsed;
                outcomes.Enqueue(await CallAsync(http, onnx, random) with { Sent = sent });
            }
        })).ToList();

        await WaitUntilAsync(() => outcomes.Count(o => o.Kind == OutcomeKind.Ok) >= 100, TimeSpan.FromSeconds(60), "requests flowing");
        var victim = Array.IndexOf(ids, replicaNodes[0]);
        Assert.True(victim >= 0, $"replica on unknown node {replicaNodes[0]}");
        var beforeKill = outcomes.Count;
        var killedAt = clock.Elapsed;
        network.Nodes[victim]!.KillHard();

        var replaced = await WaitForReadyAsync(network, "tiny", 2, ReplacementBound, d => d.Replicas.All(r => r.NodeId != ids[victim]));
        var replacedAt = clock.Elapsed;
        var replacedAfter = replacedAt - killedAt;

        // Keep calling on the replacement for a few seconds more.
        var afterReplaced = outcomes.Count;
        await WaitUntilAsync(() => outcomes.Count >= afterReplaced + 100 && clock.Elapsed > replacedAt + TimeSpan.FromSeconds(3), TimeSpan.FromSeconds(60), "requests on the replacement");
        await stop.CancelAsync();
        await Task.WhenAll(clients).WaitAsync(RequestTimeout + TimeSpan.FromSeconds(10));

        var all = outcomes.ToList();
        var report = $"{all.Count} requests ({all.Count - beforeKill} after the kill), replaced after {replacedAfter.TotalSeconds:0.0} s; "
            + string.Join("; ", all.Where(o => o.Kind != OutcomeKind.Ok).GroupBy(o => $"{o.Kind} {o.Detail}").Select(g => $"{g.Count()}× {g.Key}"));
        Assert.DoesNotContain(all, o => o.Kind == OutcomeKind.Hung);
        Assert.DoesNotContain(all, o => o.Kind == OutcomeKind.Wrong);
        var failed = all.Count(o => o.Kind == OutcomeKind.Unavailable);

        // Calls in flight on the killed node are retried on the other replica, so few if any fail: a 503
        // is allowed for a request that was already past its retries, never more than a handful.
        Assert.True(failed <= 10, report);
        Assert.True(all.Count(o => o.Kind == OutcomeKind.Ok) >= 200, report);
        Assert.True(all.Where(o => o.Sent > replacedAt).All(o => o.Kind == OutcomeKind.Ok), "requests sent after the replacement was ready failed: " + report);
        Assert.Contains(replicaNodes[1], replaced.Replicas.Select(r => r.NodeId));
        Console.WriteLine(report);
    }

    [Fact]
    public async Task Deployment_ReplicaNodeFrozenWhileRequestsFlow_CallsToItEndByTheirDeadlineAndTheReplicaIsReplaced()
    {
        await using var network = await EmcNetwork.StartAsync(nodeCount: 3);
        var ids = await Task.WhenAll(Enumerable.Range(0, 3).Select(network.WaitForNodeAsync));
        await CliAsync(network, "model", "push", Path.Combine(Fixtures, "tiny_mlp.onnx"), "--name", "tiny");
        await CliAsync(network, "model", "deploy", "tiny", "--replicas", "2..2");
        var ready = await WaitForReadyAsync(network, "tiny", 2, TimeSpan.FromSeconds(90), _ => true);
        var victim = Array.IndexOf(ids, ready.Replicas[0].NodeId);

        using var onnx = new InferenceSession(Path.Combine(Fixtures, "tiny_mlp.onnx"));
        using var http = new HttpClient { BaseAddress = network.ApiUrl, Timeout = Timeout.InfiniteTimeSpan, DefaultRequestHeaders = { Authorization = new("Bearer", EmcProcess.OperatorKey) } };
        var outcomes = new ConcurrentQueue<Outcome>();
        using var stop = new CancellationTokenSource();
        var clock = Stopwatch.StartNew();
        var clients = Enumerable.Range(0, Clients).Select(client => Task.Run(async () =>
        {
            var random = new Random(client);
            while (!stop.IsCancellationRequested)
            {
                var sent = clock.Elapsed;
                outcomes.Enqueue(await CallAsync(http, onnx, random) with { Sent = sent });
            }
        })).ToList();

        // SIGSTOP: the node's connections stay open and nothing answers on them, so only the
        // heartbeat timeout (12 s, checked every 2 s) tells the coordinator it is gone.
        await WaitUntilAsync(() => outcomes.Count(o => o.Kind == OutcomeKind.Ok) >= 100, TimeSpan.FromSeconds(60), "requests flowing");
        var frozenAt = clock.Elapsed;
        network.Nodes[victim]!.Freeze();
        var replaced = await WaitForReadyAsync(network, "tiny", 2, ReplacementBound, d => d.Replicas.All(r => r.NodeId != ids[victim]));
        var replacedAt = clock.Elapsed;
        var replacedAfter = replacedAt - frozenAt;
        var afterReplaced = outcomes.Count;
        await WaitUntilAsync(() => outcomes.Count >= afterReplaced + 100 && clock.Elapsed > replacedAt + TimeSpan.FromSeconds(3), TimeSpan.FromSeconds(60), "requests on the replacement");

        // Thawed, the node reconnects and finds its lease gone: the deployment keeps the two replicas it has.
        network.Nodes[victim]!.Thaw();
        await network.Nodes[victim]!.WaitForLineAsync(
            _ => network.Nodes[victim]!.Output.Split('\n').Count(l => l.Contains("Connected as ", StringComparison.Ordinal)) >= 2, TimeSpan.FromSeconds(60));
        var afterThaw = outcomes.Count;
        await WaitUntilAsync(() => outcomes.Count >= afterThaw + 100, TimeSpan.FromSeconds(60), "requests after the thaw");
        await stop.CancelAsync();
        await Task.WhenAll(clients).WaitAsync(RequestTimeout + TimeSpan.FromSeconds(10));
        var final = await WaitForReadyAsync(network, "tiny", 2, TimeSpan.FromSeconds(10), _ => true);

        var all = outcomes.ToList();
        var report = $"{all.Count} requests ({all.Count(o => o.Sent >= frozenAt)} after the freeze), replaced after {replacedAfter.TotalSeconds:0.0} s; "
            + string.Join("; ", all.Where(o => o.Kind != OutcomeKind.Ok).GroupBy(o => $"{o.Kind} {o.Detail}").Select(g => $"{g.Count()}× {g.Key}"));
        Assert.DoesNotContain(all, o => o.Kind == OutcomeKind.Hung);
        Assert.DoesNotContain(all, o => o.Kind == OutcomeKind.Wrong);

        // A call sent to the frozen replica more than a deadline before the node is declared lost ends in a
        // 503 at its deadline (nothing tells the router sooner); one still waiting when the node is declared
        // lost is retried on the other replica. So failures come only from requests sent while the node was
        // frozen and not yet lost, at most one per client per deadline.
        var failures = all.Where(o => o.Kind == OutcomeKind.Unavailable).ToList();
        Assert.All(failures, f => Assert.True(f.Sent >= frozenAt - ServerDeadline && f.Sent <= replacedAt, $"a request sent at {f.Sent} failed: {report}"));
        Assert.True(failures.Count <= Clients * ((int)(replacedAfter / ServerDeadline) + 1), report);
        Assert.True(all.Where(o => o.Sent > replacedAt).All(o => o.Kind == OutcomeKind.Ok), "requests sent after the replacement was ready failed: " + report);
        Assert.DoesNotContain(ids[victim], final.Replicas.Select(r => r.NodeId));
        Assert.Equal(replaced.Replicas.Select(r => r.Id).Order(StringComparer.Ordinal), final.Replicas.Select(r => r.Id).Order(StringComparer.Ordinal));
        Console.WriteLine(report);
    }

    [Fact]
    public async Task Deployment_CoordinatorKilledAndRestarted_ItsReplicasAreAdoptedAndServeWithoutLoadingAgain()
    {
        await using var network = await EmcNetwork.StartAsync(nodeCount: 2);
        await Task.WhenAll(Enumerable.Range(0, 2).Select(network.WaitForNodeAsync));
        await CliAsync(network, "model", "push", Path.Combine(Fixtures, "tiny_mlp.onnx"), "--name", "tiny");
        await CliAsync(network, "model", "deploy", "tiny", "--replicas", "2..2");
        var before = await WaitForReadyAsync(network, "tiny", 2, TimeSpan.FromSeconds(90), _ => true);
        using var onnx = new InferenceSession(Path.Combine(Fixtures, "tiny_mlp.onnx"));
        using var http = new HttpClient { BaseAddress = network.ApiUrl, Timeout = Timeout.InfiniteTimeSpan, DefaultRequestHeaders = { Authorization = new("Bearer", EmcProcess.OperatorKey) } };
        Assert.Equal(OutcomeKind.Ok, (await CallAsync(http, onnx, new Random(1))).Kind);

        network.Coordinator.KillHard();
        await network.Coordinator.WaitForExitAsync(TimeSpan.FromSeconds(10));
        await network.StartCoordinatorAsync();

        // The nodes reconnect with their leases; the same two replicas serve again, and no node loaded the model twice.
        var after = await WaitForReadyAsync(network, "tiny", 2, TimeSpan.FromSeconds(90), _ => true);
        Assert.Equal(before.Replicas.Select(r => r.Id).Order(), after.Replicas.Select(r => r.Id).Order());
        Assert.Equal(before.Replicas.Select(r => r.NodeId).Order(), after.Replicas.Select(r => r.NodeId).Order());
        var random = new Random(2);
        for (var i = 0; i < 20; i++)
        {
            var outcome = await CallAsync(http, onnx, random);
            Assert.True(outcome.Kind == OutcomeKind.Ok, outcome.Detail);
        }

        var loads = network.Nodes.Sum(node => node!.Output.Split('\n').Count(line => line.Contains("is ready.", StringComparison.Ordinal) && line.Contains("Replica ", StringComparison.Ordinal)));
        Assert.Equal(2, loads);
        var jobs = await network.Api.GetJobsAsync(null, "deployments", 100, CancellationToken.None);
        Assert.Equal(2, jobs.Count(job => job.State is Core.Scheduling.JobState.Queued or Core.Scheduling.JobState.Running));
    }

    [Fact]
    public async Task PaidDeployment_CoordinatorKilledWhileRequestsFlow_EveryAnsweredRequestIsPaidOnce_AndTheRestRefunded()
    {
        await using var network = await EmcNetwork.StartAsync(nodeCount: 2);
        await Task.WhenAll(Enumerable.Range(0, 2).Select(network.WaitForNodeAsync));
        await CliAsync(network, "model", "push", Path.Combine(Fixtures, "tiny_mlp.onnx"), "--name", "tiny");
        await CliAsync(network, "account", "fund", "operator", "10");

        // A paid deployment is served only by nodes with the minimum stake: first none has it, and it waits saying so.
        var waiting = Parse<DeploymentView>(await CliAsync(network, "model", "deploy", "tiny", "--replicas", "2..2", "--budget", "1", "--json"));
        var reason = await WaitForAsync(async () => (await network.Api.GetDeploymentAsync(waiting.Id, CancellationToken.None)).Reason, r => r?.Contains("stake", StringComparison.Ordinal) == true, TimeSpan.FromSeconds(30));
        Assert.Contains("emc stake", reason, StringComparison.Ordinal);
        await CliAsync(network, "model", "undeploy", waiting.Id);
        foreach (var node in await network.Api.GetNodesAsync(null, CancellationToken.None))
        {
            await CliAsync(network, "stake", node.Id, "10", "--deposit");
        }

        var deployed = Parse<DeploymentView>(await CliAsync(network, "model", "deploy", "tiny", "--replicas", "2..2", "--budget", "5", "--json"));
        await WaitForReadyAsync(network, "tiny", 2, TimeSpan.FromSeconds(90), _ => true);
        using var onnx = new InferenceSession(Path.Combine(Fixtures, "tiny_mlp.onnx"));
        using var http = new HttpClient { BaseAddress = network.ApiUrl, Timeout = Timeout.InfiniteTimeSpan, DefaultRequestHeaders = { Authorization = new("Bearer", EmcProcess.OperatorKey) } };

        // Clients call until the coordinator dies under them: each counts the answers it got.
        const int Clients = 4;
        var answered = new long[Clients];
        var clients = Enumerable.Range(0, Clients).Select(c => Task.Run(async () =>
        {
            var random = new Random(c);
            while ((await CallAsync(http, onnx, random)).Kind == OutcomeKind.Ok)
            {
                answered[c]++;
            }
        })).ToArray();
        while (answered.Sum() < 300)
        {
            await Task.Delay(20);
        }

        network.Coordinator.KillHard();
        await network.Coordinator.WaitForExitAsync(TimeSpan.FromSeconds(10));
        await Task.WhenAll(clients);
        await network.StartCoordinatorAsync();
        await WaitForReadyAsync(network, "tiny", 2, TimeSpan.FromSeconds(90), _ => true);
        var random = new Random(9);
        for (var i = 0; i < 20; i++)
        {
            var outcome = await CallAsync(http, onnx, random);
            Assert.True(outcome.Kind == OutcomeKind.Ok, outcome.Detail);
        }

        await CliAsync(network, "model", "undeploy", deployed.Id);

        // Every answer a client got is paid, once; at most the answers on their way when the coordinator died are paid
        // without reaching their client (they were metered before they left). The rest of the budget came back.
        var journal = new List<Core.Accounts.LedgerTransactionView>();
        for (var page = await network.Api.GetLedgerAsync(null, 0, 1000, CancellationToken.None); page.Count > 0; page = await network.Api.GetLedgerAsync(null, journal[^1].Sequence, 1000, CancellationToken.None))
        {
            journal.AddRange(page);
        }

        var payments = journal.Where(t => t.Kind == "Pay" && t.JobId == deployed.Id).ToList();
        var paidRequests = payments.Sum(p => long.Parse(p.Memo![..p.Memo!.IndexOf(' ', StringComparison.Ordinal)], CultureInfo.InvariantCulture));
        var got = answered.Sum() + 20;
        Assert.True(paidRequests >= got && paidRequests <= got + Clients, $"{got} answers, {paidRequests} paid");
        Assert.Equal(payments.Count, payments.Select(p => p.Key).Distinct().Count());
        var escrow = $"escrow:deployment:{deployed.Spec.Escrow}";
        var balances = journal.SelectMany(t => t.Entries).GroupBy(e => e.Account).ToDictionary(g => g.Key, g => g.Sum(e => e.Amount));
        Assert.Equal(0, balances.Values.Sum());
        Assert.Equal(0, balances.GetValueOrDefault(escrow));
        var gross = payments.Sum(p => -p.Entries.Single(e => e.Account == escrow).Amount);
        Assert.Equal(paidRequests * 100, gross);
        Assert.Equal(10_000_000 - gross, balances["user:operator"]);
        Assert.Single(journal, t => t.Kind == "Refund" && t.Entries.Any(e => e.Account == escrow));
        Assert.Single(journal, t => t.Kind == "Refund" && t.Entries.Any(e => e.Account == $"escrow:deployment:{waiting.Spec.Escrow}"));
    }

    [Fact]
    public async Task Cli_PushDeployInferUndeployRemove_AnswersEqualOnnxRuntimeAndPyTorch_AndBadInputChangesNothing()
    {
        // Two nodes for two deployments; replicas share a node's device, so either may hold both.
        await using var network = await EmcNetwork.StartAsync(nodeCount: 2);
        var onnxFile = Path.Combine(Fixtures, "tiny_mlp.onnx");
        var scriptFile = Path.Combine(Fixtures, "tiny_mlp.pt");

        // Push: ONNX reads its signature from the file; TorchScript is told it.
        var onnx = Parse<ModelDescriptor>(await CliAsync(network, "model", "push", onnxFile, "--name", "tiny", "--json"));
        Assert.Equal(("tiny", 1, "onnx"), (onnx.Name, onnx.Version, onnx.Format));
        Assert.Equal("x", Assert.Single(onnx.Inputs!).Name);
        Assert.Equal("y", Assert.Single(onnx.Outputs!).Name);
        var script = Parse<ModelDescriptor>(await CliAsync(network, "model", "push", scriptFile, "--name", "tiny-ts", "--input", "x:FP32:-1,4", "--output", "y:FP32:-1,2", "--json"));
        Assert.Equal(("tiny-ts", 1, "torchscript"), (script.Name, script.Version, script.Format));

        await FailsAsync(network, 2, "does not exist", "model", "push", Path.Combine(network.Root, "absent.onnx"), "--name", "x");
        await FailsAsync(network, 2, "is not a model name", "model", "push", onnxFile, "--name", "bad name!");
        await FailsAsync(network, 2, "", "model", "push", scriptFile, "--name", "ts2", "--input", "x:FP33:-1,4", "--output", "y:FP32:-1,2");
        await FailsAsync(network, 1, "", "model", "push", scriptFile, "--name", "ts2");
        await FailsAsync(network, 1, "", "model", "push", Path.Combine(Fixtures, "tiny_mlp.json"), "--name", "ts2");
        await FailsAsync(network, 1, "", "model", "push", onnxFile, "--name", "tiny", "--version", "1");
        Assert.Equal(["tiny-ts:1", "tiny:1"], await ModelsAsync(network));

        // List and show.
        var shown = Parse<ModelDescriptor>(await CliAsync(network, "model", "show", "tiny", "--json"));
        Assert.Equal(onnx.File, shown.File);
        Assert.Equal(script.File, Parse<ModelDescriptor>(await CliAsync(network, "model", "show", "tiny-ts:1", "--json")).File);
        await FailsAsync(network, 1, "", "model", "show", "tiny:7");
        await FailsAsync(network, 1, "", "model", "show", "absent");
        await FailsAsync(network, 2, "is not NAME or NAME:VERSION", "model", "show", "tiny:x");

        // Deploy both.
        await FailsAsync(network, 1, "", "model", "deploy", "absent");
        await FailsAsync(network, 2, "--replicas must be", "model", "deploy", "tiny", "--replicas", "two");
        await FailsAsync(network, 1, "replicas", "model", "deploy", "tiny", "--replicas", "3..1");
        await FailsAsync(network, 1, "device", "model", "deploy", "tiny", "--device", "tpu");
        await FailsAsync(network, 1, "maxBatch", "model", "deploy", "tiny", "--max-batch", "0");
        Assert.Empty(await DeploymentsAsync(network));
        var deployed = Parse<DeploymentView>(await CliAsync(network, "model", "deploy", "tiny", "--replicas", "1", "--json"));
        Assert.Equal("tiny-v1", deployed.Id);
        await FailsAsync(network, 1, "already deployed", "model", "deploy", "tiny");
        await CliAsync(network, "model", "deploy", "tiny-ts", "--max-batch", "4");
        await WaitForReadyAsync(network, "tiny", 1, TimeSpan.FromSeconds(90), _ => true);
        await WaitForReadyAsync(network, "tiny-ts", 1, TimeSpan.FromSeconds(90), _ => true);
        Assert.Equal(2, (await DeploymentsAsync(network)).Count);

        // Infer: the ONNX model answers what ONNX Runtime does; the TorchScript model what PyTorch did.
        using var session = new InferenceSession(onnxFile);
        var input = new float[] { 0.5f, -1.25f, 2f, 0.125f, -0.75f, 1.5f, 0f, -2f };
        var answer = await CliAsync(network, "infer", "tiny", "--input", InferBody(input, 2), "--json");
        AssertClose(RunOnnx(session, input, 2), Output(answer, "y", [2, 2]));

        using var recorded = JsonDocument.Parse(await File.ReadAllTextAsync(Path.Combine(Fixtures, "tiny_mlp.json")));
        var pyInput = recorded.RootElement.GetProperty("input").EnumerateArray().Select(e => e.GetSingle()).ToArray();
        var pyOutput = recorded.RootElement.GetProperty("output").EnumerateArray().Select(e => e.GetSingle()).ToArray();
        var bodyFile = Path.Combine(network.Root, "request.json");
        await File.WriteAllTextAsync(bodyFile, InferBody(pyInput, pyInput.Length / 4));
        AssertClose(pyOutput, Output(await CliAsync(network, "infer", "tiny-ts:1", "--input", bodyFile, "--json"), "y", [pyInput.Length / 4, 2]));

        var plain = await CliAsync(network, "infer", "tiny", "--input", InferBody(input[..4], 1));
        Assert.StartsWith("y [1×2] FP32: [", plain.Trim(), StringComparison.Ordinal);

        await FailsAsync(network, 2, "neither a JSON object nor a file", "infer", "tiny", "--input", "no-such-file.json");
        await FailsAsync(network, 1, "", "infer", "tiny", "--input", "{\"inputs\": [");
        await FailsAsync(network, 1, "", "infer", "tiny", "--input", InferBody(new float[5], 1, features: 5));
        await FailsAsync(network, 1, "", "infer", "absent", "--input", InferBody(input, 2));
        await FailsAsync(network, 1, "", "infer", "tiny:3", "--input", InferBody(input, 2));
        AssertClose(RunOnnx(session, input, 2), Output(await CliAsync(network, "infer", "tiny", "--input", InferBody(input, 2), "--json"), "y", [2, 2]));

        // A served model cannot be removed; undeploy, then remove.
        await FailsAsync(network, 1, "", "model", "rm", "tiny");
        Assert.Equal(["tiny-ts:1", "tiny:1"], await ModelsAsync(network));
        await FailsAsync(network, 1, "", "model", "undeploy", "absent");
        Assert.Contains("Undeployed tiny-v1", await CliAsync(network, "model", "undeploy", "tiny"), StringComparison.Ordinal);
        await FailsAsync(network, 1, "", "model", "undeploy", "tiny");
        await FailsAsync(network, 1, "", "infer", "tiny", "--input", InferBody(input, 2));
        Assert.Equal("tiny-ts-v1", Assert.Single(await DeploymentsAsync(network)).Id);
        await CliAsync(network, "model", "rm", "tiny");
        await FailsAsync(network, 1, "", "model", "rm", "tiny");
        await FailsAsync(network, 2, "is not NAME or NAME:VERSION", "model", "rm", "tiny-ts:0x");
        await CliAsync(network, "model", "undeploy", "tiny-ts-v1");
        await CliAsync(network, "model", "rm", "tiny-ts:1");
        Assert.Empty(await ModelsAsync(network));
        Assert.Empty(await DeploymentsAsync(network));
    }

    // ------------------------------------------------------------ helpers

    private enum OutcomeKind
    {
        Ok,
        Unavailable,
        Wrong,
        Hung,
    }

    /// <summary>How one request ended, and when it was sent (on the test's clock).</summary>
    private sealed record Outcome(OutcomeKind Kind, string Detail, TimeSpan Sent = default);

    /// <summary>One OIP call with a random row: right answer, a 503 with an error body, or what went wrong.</summary>
    private static async Task<Outcome> CallAsync(HttpClient http, InferenceSession onnx, Random random)
    {
        var input = Enumerable.Range(0, 4).Select(_ => (float)(random.NextDouble() * 4 - 2)).ToArray();
        using var timeout = new CancellationTokenSource(RequestTimeout);
        try
        {
            using var content = new StringContent(InferBody(input, 1, timeoutMicroseconds: (long)ServerDeadline.TotalMicroseconds), Encoding.UTF8, "application/json");
            using var response = await http.PostAsync("v2/models/tiny/infer", content, timeout.Token);
            var body = await response.Content.ReadAsStringAsync(timeout.Token);
            if (response.StatusCode == HttpStatusCode.ServiceUnavailable)
            {
                using var error = JsonDocument.Parse(body);
                return error.RootElement.TryGetProperty("error", out var message) && message.GetString() is { Length: > 0 } text
                    ? new Outcome(OutcomeKind.Unavailable, text)
                    : new Outcome(OutcomeKind.Wrong, "503 without an error: " + body);
            }

            if (response.StatusCode != HttpStatusCode.OK)
            {
                return new Outcome(OutcomeKind.Wrong, $"{(int)response.StatusCode}: {body}");
            }

            var got = Output(body, "y", [1, 2]);
            var want = RunOnnx(onnx, input, 1);
            return got.Zip(want).All(p => Math.Abs(p.First - p.Second) <= 1e-5f)
                ? new Outcome(OutcomeKind.Ok, "")
                : new Outcome(OutcomeKind.Wrong, $"[{string.Join(", ", got)}] instead of [{string.Join(", ", want)}]");
        }
        catch (OperationCanceledException) when (timeout.IsCancellationRequested)
        {
            return new Outcome(OutcomeKind.Hung, $"no answer within {RequestTimeout.TotalSeconds} s");
        }
        catch (HttpRequestException ex)
        {
            return new Outcome(OutcomeKind.Wrong, "transport: " + ex.Message);
        }
    }

    private static string InferBody(float[] values, int rows, int features = 4, long? timeoutMicroseconds = null)
    {
        var request = new Dictionary<string, object>
        {
            ["inputs"] = new[] { new { name = "x", shape = new[] { rows, features }, datatype = "FP32", data = values } },
        };
        if (timeoutMicroseconds is { } micros)
        {
            request["parameters"] = new { timeout = micros };
        }

        return JsonSerializer.Serialize(request);
    }

    private static float[] RunOnnx(InferenceSession session, float[] values, int rows)
    {
        using var results = session.Run([NamedOnnxValue.CreateFromTensor("x", new DenseTensor<float>(values, [rows, 4]))]);
        return [.. results.Single(r => r.Name == "y").AsEnumerable<float>()];
    }

    /// <summary>The data of output <paramref name="name"/> of an OIP JSON answer, checked to have <paramref name="shape"/>.</summary>
    private static float[] Output(string answer, string name, long[] shape)
    {
        using var document = JsonDocument.Parse(answer);
        var output = Assert.Single(document.RootElement.GetProperty("outputs").EnumerateArray());
        Assert.Equal(name, output.GetProperty("name").GetString());
        Assert.Equal("FP32", output.GetProperty("datatype").GetString());
        Assert.Equal(shape, output.GetProperty("shape").EnumerateArray().Select(e => e.GetInt64()).ToArray());
        return [.. output.GetProperty("data").EnumerateArray().Select(e => e.GetSingle())];
    }

    private static void AssertClose(float[] expected, float[] actual)
    {
        Assert.Equal(expected.Length, actual.Length);
        for (var i = 0; i < expected.Length; i++)
        {
            Assert.True(Math.Abs(expected[i] - actual[i]) <= 1e-5f, $"element {i}: {actual[i]} instead of {expected[i]}");
        }
    }

    /// <summary>Runs an `emc` command against the network that must succeed, and returns its output.</summary>
    private static async Task<T> WaitForAsync<T>(Func<Task<T>> read, Func<T, bool> condition, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (true)
        {
            var value = await read();
            if (condition(value))
            {
                return value;
            }

            Assert.True(DateTime.UtcNow < deadline, $"timed out; last seen: {value}");
            await Task.Delay(200);
        }
    }

    private static async Task<string> CliAsync(EmcNetwork network, params string[] arguments)
    {
        var (exit, output) = await EmcProcess.RunAsync(CliTimeout, [.. arguments, "--coordinator", network.ApiUrl.ToString()]);
        Assert.True(exit == 0, $"emc {string.Join(' ', arguments)} exited with {exit}:\n{output}");
        return output;
    }

    /// <summary>Runs an `emc` command that must fail with <paramref name="exitCode"/> and a message of its own.</summary>
    private static async Task FailsAsync(EmcNetwork network, int exitCode, string message, params string[] arguments)
    {
        var (exit, output) = await EmcProcess.RunAsync(CliTimeout, [.. arguments, "--coordinator", network.ApiUrl.ToString()]);
        var what = $"emc {string.Join(' ', arguments)} exited with {exit}:\n{output}";
        Assert.True(exit == exitCode, what);
        Assert.Contains(arguments[0] == "model" ? $"emc model {arguments[1]}: " : $"emc {arguments[0]}: ", output, StringComparison.Ordinal);
        Assert.Contains(message, output, StringComparison.Ordinal);
        Assert.DoesNotContain("   at ", output, StringComparison.Ordinal);
    }

    private static async Task<List<string>> ModelsAsync(EmcNetwork network) =>
        [.. Parse<List<ModelDescriptor>>(await CliAsync(network, "model", "list", "--json")).Select(m => string.Create(CultureInfo.InvariantCulture, $"{m.Name}:{m.Version}")).Order(StringComparer.Ordinal)];

    private static async Task<List<DeploymentView>> DeploymentsAsync(EmcNetwork network) =>
        Parse<List<DeploymentView>>(await CliAsync(network, "deployments", "--json"));

    /// <summary>Polls `emc deployments --json` until the model's deployment has <paramref name="replicas"/> ready replicas that satisfy <paramref name="where"/>.</summary>
    private static async Task<DeploymentView> WaitForReadyAsync(EmcNetwork network, string model, int replicas, TimeSpan timeout, Func<DeploymentView, bool> where)
    {
        var deadline = Stopwatch.StartNew();
        DeploymentView? last = null;
        while (deadline.Elapsed < timeout)
        {
            last = (await DeploymentsAsync(network)).SingleOrDefault(d => d.Spec.Model == model);
            if (last is not null && last.State == "ready" && last.Replicas.Count == replicas && last.Replicas.All(r => r.State == "ready") && where(last))
            {
                return last;
            }

            await Task.Delay(200);
        }

        throw new TimeoutException($"{model} did not have {replicas} ready replicas within {timeout}: {JsonSerializer.Serialize(last, EmcJson.Options)}");
    }

    private static async Task WaitUntilAsync(Func<bool> condition, TimeSpan timeout, string what)
    {
        var deadline = Stopwatch.StartNew();
        while (!condition())
        {
            if (deadline.Elapsed > timeout)
            {
                throw new TimeoutException($"timed out waiting for {what}");
            }

            await Task.Delay(50);
        }
    }

    private static T Parse<T>(string json) => JsonSerializer.Deserialize<T>(json, EmcJson.Options)!;
}
