using System.Collections.Concurrent;
using System.Threading.Channels;
using Emc.Coordinator.Inference;
using Emc.Core.Inference;
using Emc.Core.Verification;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Emc.Coordinator.Verification;

/// <summary>A deployment as the auditor sees it: where its checks run and what they are recorded under.</summary>
/// <param name="DeploymentId">The deployment.</param>
/// <param name="Scope">The trust scope of its answers: <c>model:NAME:VERSION</c>, so a node's record follows the model version, not the deployment.</param>
/// <param name="Metadata">The model's metadata, to rebuild a request for another replica.</param>
/// <param name="Router">The deployment's replicas.</param>
/// <param name="Referee">
/// Runs a request inside the coordinator — a trusted execution — when no third node can settle a
/// disagreement; null when the model cannot run here.
/// </param>
public sealed record AuditTarget(
    string DeploymentId,
    string Scope,
    ModelMetadata Metadata,
    ReplicaRouter<RoutedCall, InferResponse> Router,
    Func<InferRequest, CancellationToken, Task<InferResponse>>? Referee);

/// <summary>A node proven to have answered wrongly.</summary>
/// <param name="DeploymentId">The deployment whose request it answered.</param>
/// <param name="Scope">The trust scope.</param>
/// <param name="Node">The node at fault.</param>
/// <param name="ReplicaId">Its replica.</param>
/// <param name="Evidence">How its answer differed from the others', in words.</param>
/// <param name="Witnesses">The nodes (or "coordinator") whose answers agreed against it.</param>
public sealed record AuditFinding(string DeploymentId, string Scope, string Node, string ReplicaId, string Evidence, IReadOnlyList<string> Witnesses);

/// <summary>
/// Sampled redundant execution for inference. After a replica answers a request (and the caller has the
/// answer), the request is re-run, with a probability from the node's record (<see cref="AuditPolicy"/>),
/// on a replica on another node, and the two answers are compared (<see cref="OutputComparer"/>). When they
/// differ, a referee — a replica on a third node, else the coordinator itself when it can run the model —
/// settles which is wrong; the node whose answer the other two contradict is at fault
/// (<see cref="FaultProven"/>). Every verdict goes into the <see cref="TrustBook"/>, which sets the next
/// audit rates and the nodes' reputations. Checks run in the background, with spare capacity only: they
/// never queue behind or ahead of callers.
/// </summary>
public sealed partial class InferenceAuditor : BackgroundService
{
    private readonly TrustBook _trust;
    private readonly InferenceAuditOptions _options;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly Channel<Check> _queue;
    private readonly ConcurrentDictionary<string, Counters> _counters = new(StringComparer.Ordinal);
    private readonly Lock _randomLock = new();
    private readonly Random _random;

    public InferenceAuditor(TrustBook trust, InferenceAuditOptions options, TimeProvider timeProvider, ILogger<InferenceAuditor> logger)
    {
        ArgumentNullException.ThrowIfNull(options);
        var errors = options.Validate();
        if (errors.Count > 0)
        {
            throw new ArgumentException(string.Join("; ", errors), nameof(options));
        }

        _trust = trust;
        _options = options;
        _time = timeProvider;
        _logger = logger;
        _random = options.Seed is { } seed ? new Random(seed) : new Random();
        _queue = Channel.CreateBounded<Check>(new BoundedChannelOptions(options.MaxQueued) { FullMode = BoundedChannelFullMode.Wait });
    }

    /// <summary>Raised on an auditor thread for every proven fault. Handlers must not block.</summary>
    public event Action<AuditFinding>? FaultProven;

    /// <summary>
    /// Shows the auditor one answered request. It decides at once whether to check it and, if so, copies
    /// the request (the caller may reuse its buffers) and queues the check. Cheap when it does not.
    /// </summary>
    public void Consider(AuditTarget target, InferRequest request, InferResponse response, string replicaId)
    {
        ArgumentNullException.ThrowIfNull(target);
        ArgumentNullException.ThrowIfNull(request);
        ArgumentNullException.ThrowIfNull(response);
        if (!_options.Enabled)
        {
            return;
        }

        var counters = _counters.GetOrAdd(target.DeploymentId, static _ => new Counters());
        Interlocked.Increment(ref counters.Answers);
        var node = target.Router.NodeOf(replicaId);
        if (node is null)
        {
            return;
        }

        double draw;
        lock (_randomLock)
        {
            draw = _random.NextDouble();
        }

        if (draw >= _trust.AuditRate(node, target.Scope, _options.Policy))
        {
            return;
        }

        Interlocked.Increment(ref counters.Sampled);
        var check = new Check(target, Copy(request), response, node, replicaId, _time.GetUtcNow() + _options.Timeout);
        if (!_queue.Writer.TryWrite(check))
        {
            Interlocked.Increment(ref counters.Dropped);
        }
    }

    /// <summary>The auditor's counts for one deployment.</summary>
    public DeploymentAudit GetStats(string deploymentId)
    {
        if (!_counters.TryGetValue(deploymentId, out var c))
        {
            return new DeploymentAudit();
        }

        return new DeploymentAudit
        {
            Answers = Interlocked.Read(ref c.Answers),
            Sampled = Interlocked.Read(ref c.Sampled),
            Checked = Interlocked.Read(ref c.Checked),
            Agreed = Interlocked.Read(ref c.Agreed),
            Faults = Interlocked.Read(ref c.Faults),
            Disputes = Interlocked.Read(ref c.Disputes),
            Skipped = Interlocked.Read(ref c.Skipped),
            Dropped = Interlocked.Read(ref c.Dropped),
            Executions = Interlocked.Read(ref c.Executions),
        };
    }

    /// <summary>Waits until every check queued so far has finished (for tests and benchmarks).</summary>
    public async Task DrainAsync(CancellationToken cancellationToken)
    {
        while (_queue.Reader.Count > 0 || Volatile.Read(ref _running) > 0)
        {
            await Task.Delay(TimeSpan.FromMilliseconds(10), _time, cancellationToken);
        }
    }

    private int _running;

    protected override Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var workers = new Task[_options.Concurrency];
        for (var i = 0; i < workers.Length; i++)
        {
            workers[i] = WorkAsync(stoppingToken);
        }

        return Task.WhenAll(workers);
    }

    private async Task WorkAsync(CancellationToken stoppingToken)
    {
        try
        {
            while (await _queue.Reader.WaitToReadAsync(stoppingToken))
            {
                while (_queue.Reader.TryRead(out var check))
                {
                    Interlocked.Increment(ref _running);
                    try
                    {
                        await RunAsync(check, stoppingToken);
                    }
                    catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
                    {
                        return;
                    }
                    catch (Exception ex) when (ex is not OutOfMemoryException)
                    {
                        Interlocked.Increment(ref Counter(check).Skipped);
                        Log.CheckFailed(_logger, check.Target.DeploymentId, ex);
                    }
                    finally
                    {
                        Interlocked.Decrement(ref _running);
                    }
                }
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }
    }

    private async Task RunAsync(Check check, CancellationToken stoppingToken)
    {
        var counters = Counter(check);
        var target = check.Target;
        using var timeout = new CancellationTokenSource(check.Deadline - _time.GetUtcNow() is var left && left > TimeSpan.Zero ? left : TimeSpan.Zero, _time);
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(timeout.Token, stoppingToken);
        var token = linked.Token;

        // The second execution: a replica on another node, else (none exists) the coordinator itself.
        var second = await RunElsewhereAsync(check, [check.Node], token);
        if (second is null)
        {
            if (token.IsCancellationRequested)
            {
                stoppingToken.ThrowIfCancellationRequested();
                Interlocked.Increment(ref counters.Skipped);
                return;
            }

            if (target.Referee is null)
            {
                Interlocked.Increment(ref counters.Skipped);
                return;
            }

            var trusted = await RunRefereeAsync(check, counters, token);
            if (trusted is null)
            {
                Interlocked.Increment(ref counters.Skipped);
                return;
            }

            Settle(check, counters, [(check.Node, check.ReplicaId, check.Response)], (Coordinator, trusted));
            return;
        }

        var (auditNode, auditReplica, auditAnswer) = second.Value;
        Interlocked.Increment(ref counters.Executions);
        var problem = Disagreement(check.Response, auditAnswer);
        if (problem is null)
        {
            Interlocked.Increment(ref counters.Checked);
            Interlocked.Increment(ref counters.Agreed);
            _trust.Record(check.Node, target.Scope, VerifiedOutcome.Valid);
            _trust.Record(auditNode, target.Scope, VerifiedOutcome.Valid);
            return;
        }

        Log.Disagreement(_logger, target.DeploymentId, check.Node, auditNode, problem);

        // A referee: a replica on a third node, else the coordinator.
        var third = await RunElsewhereAsync(check, [check.Node, auditNode], token);
        (string Node, InferResponse? Answer)? referee = null;
        if (third is { } t)
        {
            Interlocked.Increment(ref counters.Executions);
            referee = (t.Node, t.Answer);
        }
        else if (!token.IsCancellationRequested && target.Referee is not null && await RunRefereeAsync(check, counters, token) is { } trusted)
        {
            referee = (Coordinator, trusted);
        }

        if (referee is null)
        {
            Interlocked.Increment(ref counters.Checked);
            Interlocked.Increment(ref counters.Disputes);
            _trust.Record(check.Node, target.Scope, VerifiedOutcome.Disputed);
            _trust.Record(auditNode, target.Scope, VerifiedOutcome.Disputed);
            return;
        }

        Settle(check, counters, [(check.Node, check.ReplicaId, check.Response), (auditNode, auditReplica, auditAnswer)], referee.Value);
    }

    /// <summary>
    /// Judges the <paramref name="answers"/> of nodes against a referee's. With the coordinator as referee
    /// (trusted), every answer that differs from it is a fault. With a node as referee, the majority of the
    /// three decides: the one answer the other two agree against is the fault; when all three differ, all
    /// are disputed.
    /// </summary>
    private void Settle(Check check, Counters counters, (string Node, string Replica, InferResponse? Answer)[] answers, (string Node, InferResponse? Answer) referee)
    {
        var scope = check.Target.Scope;
        Interlocked.Increment(ref counters.Checked);
        var trusted = referee.Node == Coordinator;
        var agreeing = new List<string>();
        var disagreeing = new List<(string Node, string Replica, string Problem)>();
        foreach (var (node, replica, answer) in answers)
        {
            var problem = Disagreement(answer, referee.Answer);
            if (problem is null)
            {
                agreeing.Add(node);
            }
            else
            {
                disagreeing.Add((node, replica, problem));
            }
        }

        if (!trusted && agreeing.Count == 0)
        {
            Interlocked.Increment(ref counters.Disputes);
            foreach (var (node, _, _) in answers)
            {
                _trust.Record(node, scope, VerifiedOutcome.Disputed);
            }

            _trust.Record(referee.Node, scope, VerifiedOutcome.Disputed);
            return;
        }

        var witnesses = new List<string>(agreeing) { referee.Node };
        foreach (var node in agreeing)
        {
            _trust.Record(node, scope, VerifiedOutcome.Valid);
        }

        if (!trusted)
        {
            _trust.Record(referee.Node, scope, VerifiedOutcome.Valid);
        }

        foreach (var (node, replica, problem) in disagreeing)
        {
            Interlocked.Increment(ref counters.Faults);
            _trust.Record(node, scope, VerifiedOutcome.Fault);
            var finding = new AuditFinding(check.Target.DeploymentId, scope, node, replica, problem, witnesses);
            Log.FaultProven(_logger, finding.DeploymentId, node, replica, problem, string.Join(", ", witnesses));
            FaultProven?.Invoke(finding);
        }
    }

    private async Task<(string Node, string Replica, InferResponse? Answer)?> RunElsewhereAsync(Check check, string[] excluded, CancellationToken token)
    {
        var call = new RoutedCall(check.Request, check.Target.Metadata, check.Deadline);
        var avoid = new List<string>(excluded);
        while (!token.IsCancellationRequested)
        {
            var result = await check.Target.Router.SendElsewhereAsync(call, avoid, token);
            switch (result.Outcome)
            {
                case RouteOutcome.Success:
                    return (result.NodeId!, result.ReplicaId!, result.Response);
                case RouteOutcome.Rejected:
                    // The other node refused a request the first one answered: an answer too, to be judged.
                    return (result.NodeId!, result.ReplicaId!, null);
                case RouteOutcome.NoReplicas:
                    return null;
                case RouteOutcome.Unavailable:
                    // That node could not answer (gone, broken, malformed): not a verdict; try another one.
                    avoid.Add(result.NodeId!);
                    break;
                default:
                    // Busy: wait for spare capacity rather than take it from callers.
                    try
                    {
                        await Task.Delay(_options.BusyRetry, _time, token);
                    }
                    catch (OperationCanceledException)
                    {
                        return null;
                    }

                    break;
            }
        }

        return null;
    }

    private async Task<InferResponse?> RunRefereeAsync(Check check, Counters counters, CancellationToken token)
    {
        try
        {
            var answer = await check.Target.Referee!(check.Request, token);
            Interlocked.Increment(ref counters.Executions);
            return answer;
        }
        catch (Exception ex) when (ex is OipException or InvalidOperationException or NotSupportedException or IOException)
        {
            Log.RefereeFailed(_logger, check.Target.DeploymentId, ex);
            return null;
        }
        catch (OperationCanceledException) when (token.IsCancellationRequested)
        {
            return null;
        }
    }

    private string? Disagreement(InferResponse? a, InferResponse? b) =>
        (a, b) switch
        {
            (null, null) => null,
            (null, _) => "refused a request the other answered",
            (_, null) => "answered a request the other refused",
            _ => _options.Comparer.Disagreement(a.Outputs, b.Outputs),
        };

    private Counters Counter(Check check) => _counters.GetOrAdd(check.Target.DeploymentId, static _ => new Counters());

    /// <summary>A deep copy: the caller's tensors may point into a pooled request body.</summary>
    private static InferRequest Copy(InferRequest request)
    {
        var inputs = new InferTensor[request.Inputs.Count];
        for (var i = 0; i < inputs.Length; i++)
        {
            var input = request.Inputs[i];
            inputs[i] = input.Datatype == TensorDatatype.Bytes
                ? InferTensor.FromBinaryBytes(input.Name, input.Shape.ToArray(), input.ToBinary().ToArray(), input.Parameters)
                : InferTensor.FromRaw(input.Name, input.Datatype, input.Shape.ToArray(), input.Data.ToArray(), input.Parameters);
        }

        return new InferRequest { Id = request.Id, Parameters = request.Parameters, Inputs = inputs, Outputs = request.Outputs };
    }

    /// <summary>The name the coordinator's own executions are recorded under.</summary>
    public const string Coordinator = "coordinator";

    private sealed record Check(AuditTarget Target, InferRequest Request, InferResponse Response, string Node, string ReplicaId, DateTimeOffset Deadline);

    private sealed class Counters
    {
        public long Answers;
        public long Sampled;
        public long Dropped;
        public long Checked;
        public long Agreed;
        public long Faults;
        public long Disputes;
        public long Skipped;
        public long Executions;
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 1, Level = LogLevel.Warning, Message = "Deployment {Deployment}: node {Node} and node {Auditor} disagree on a checked request: {Problem}")]
        public static partial void Disagreement(ILogger logger, string deployment, string node, string auditor, string problem);

        [LoggerMessage(EventId = 2, Level = LogLevel.Warning, Message = "Deployment {Deployment}: node {Node} (replica {Replica}) answered wrongly ({Problem}); {Witnesses} agreed against it")]
        public static partial void FaultProven(ILogger logger, string deployment, string node, string replica, string problem, string witnesses);

        [LoggerMessage(EventId = 3, Level = LogLevel.Warning, Message = "Deployment {Deployment}: the coordinator could not referee a check")]
        public static partial void RefereeFailed(ILogger logger, string deployment, Exception exception);

        [LoggerMessage(EventId = 4, Level = LogLevel.Error, Message = "Deployment {Deployment}: a check failed")]
        public static partial void CheckFailed(ILogger logger, string deployment, Exception exception);
    }
}
