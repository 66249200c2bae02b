using System.Collections.Concurrent;
using System.Globalization;
using System.Text.Json;
using System.Threading.Channels;
using Emc.Coordinator.Accounts;
using Emc.Coordinator.Ledger;
using Emc.Coordinator.Scheduling;
using Emc.Coordinator.Training;
using Emc.Coordinator.Verification;
using Emc.Core;
using Emc.Core.Hardware;
using Emc.Core.Inference;
using Emc.Core.Scheduling;
using Emc.Core.Training;
using Emc.Ledger;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Emc.Coordinator.Inference;

/// <summary>
/// Serves the stored deployments. Each replica is a one-task scheduler job of kind "serve" (high
/// priority, many retries) placed on a node that fits the deployment's device and prefers nodes that
/// cache the model; the scheduler keeps its lease alive through heartbeats and reissues it elsewhere
/// when the node is lost. A replica joins its deployment's <see cref="ReplicaRouter{TRequest, TResponse}"/>
/// when its node says it is ready and leaves when the lease ends, the node says it stopped or the
/// node's stream ends. Every second each deployment's load is sampled into its <see cref="Autoscaler"/>,
/// and jobs are submitted or cancelled until they match the replica count it wants.
/// </summary>
/// <remarks>
/// All changes to the deployments run on one control loop (an inbox of actions); the request path
/// only reads an immutable snapshot of deployments by model name and calls the router.
/// </remarks>
public sealed partial class DeploymentService : BackgroundService, IInferenceBackend
{
    private const string JobPrefix = "serve:";
    private const string Account = "deployments";

    private readonly IDeploymentStore _store;
    private readonly TrainingStore _registry;
    private readonly SchedulerService _scheduler;
    private readonly NodeCallHub _hub;
    private readonly IUsageMeter _usage;
    private readonly InferenceAuditor _auditor;
    private readonly LocalReferee _referee;
    private readonly InferenceBilling _billing;
    private readonly DeploymentOptions _options;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly ILoggerFactory _loggers;
    private readonly Channel<Func<Task>> _inbox = Channel.CreateUnbounded<Func<Task>>(new UnboundedChannelOptions { SingleReader = true });
    private readonly Dictionary<string, Deployment> _deployments = new(StringComparer.Ordinal);
    private readonly Dictionary<string, (Deployment Deployment, ReplicaJob Job)> _byTask = new(StringComparer.Ordinal);
    private readonly Dictionary<string, (string NodeId, string ReplicaId)> _earlyReady = new(StringComparer.Ordinal);
    private readonly TaskCompletionSource _started = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private volatile Dictionary<string, Deployment[]> _byModel = new(StringComparer.Ordinal);

    public DeploymentService(
        IDeploymentStore store,
        TrainingStore registry,
        SchedulerService scheduler,
        NodeCallHub hub,
        IUsageMeter usage,
        InferenceAuditor auditor,
        LocalReferee referee,
        InferenceBilling billing,
        DeploymentOptions options,
        TimeProvider timeProvider,
        ILoggerFactory loggers)
    {
        _store = store;
        _registry = registry;
        _scheduler = scheduler;
        _hub = hub;
        _usage = usage;
        _auditor = auditor;
        _referee = referee;
        _billing = billing;
        _options = options;
        _time = timeProvider;
        _loggers = loggers;
        _logger = loggers.CreateLogger<DeploymentService>();
        _scheduler.Committed += OnCommitted;
        _hub.ReplicaStatusChanged += OnReplicaStatus;
        _hub.NodeGone += OnNodeGone;
        _auditor.FaultProven += OnFaultProven;
    }

    /// <summary>Completes when the stored deployments have been loaded.</summary>
    public Task Started => _started.Task;

    // ------------------------------------------------------------ IInferenceBackend

    public async ValueTask<ModelMetadata?> GetMetadataAsync(string model, string? version, CancellationToken cancellationToken)
    {
        if (ResolveModel(model, version) is { } deployment)
        {
            return deployment.Metadata;
        }

        if (!TryParseVersion(version, out var number))
        {
            return null;
        }

        var row = await _registry.GetModelAsync(model, number, cancellationToken);
        return row is null ? null : BuildMetadata(JsonSerializer.Deserialize<ModelDescriptor>(row.DescriptorJson, EmcJson.Options)!);
    }

    public ValueTask<bool> IsReadyAsync(string model, string? version, CancellationToken cancellationToken) =>
        ValueTask.FromResult(ResolveModel(model, version) is { } deployment && deployment.Router.ReplicaCount > 0);

    public async Task<InferResponse> InferAsync(string model, string? version, InferRequest request, DateTimeOffset deadline, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(request);
        var deployment = ResolveModel(model, version) ?? throw OipException.UnknownModel(model, version);
        OipValidator.EnsureValid(request, deployment.Metadata);
        long bytes = 0;
        foreach (var input in request.Inputs)
        {
            bytes += input.BinaryByteCount;
        }

        if (bytes > ServingLimits.MaxTensorBytes)
        {
            throw new OipException(OipErrorKind.PayloadTooLarge, $"the inputs hold {bytes} bytes; a request may carry at most {ServingLimits.MaxTensorBytes}");
        }

        BillingTicket ticket;
        try
        {
            ticket = _billing.Admit(deployment.Record.Id, _billing.RequestCharge);
        }
        catch (BudgetSpentException ex)
        {
            throw new OipException(OipErrorKind.PaymentRequired, ex.Message);
        }

        RouteResult<InferResponse> result;
        try
        {
            result = await deployment.Router.RouteAsync(new RoutedCall(request, deployment.Metadata, deadline), deadline, cancellationToken);
        }
        catch
        {
            _billing.Cancel(ticket);
            throw;
        }

        if (result.Outcome == RouteOutcome.Success)
        {
            // Metered before the answer leaves: a coordinator killed after this has the request in its journal.
            try
            {
                _billing.Complete(ticket, result.NodeId ?? deployment.Router.NodeOf(result.ReplicaId!), 0);
            }
            catch (IOException ex)
            {
                throw OipException.Unavailable($"the answer could not be metered: {ex.Message}");
            }

            _auditor.Consider(deployment.Audit, request, result.Response!, result.ReplicaId!);
            return result.Response!;
        }

        _billing.Cancel(ticket);

        return result.Outcome switch
        {
            RouteOutcome.Rejected => throw new OipException(OipErrorKind.BadRequest, result.Error!.Message),
            RouteOutcome.Overloaded => throw OipException.Unavailable($"model '{model}' is overloaded: every replica is busy and the queue is full"),
            RouteOutcome.NoReplicas => throw OipException.Unavailable($"model '{model}' has no ready replica"),
            RouteOutcome.DeadlineExceeded => throw OipException.Unavailable("deadline exceeded"),
            RouteOutcome.Unavailable => throw OipException.Unavailable($"model '{model}' is unavailable: {result.Error?.Message}"),
            RouteOutcome.Canceled => throw new OperationCanceledException(cancellationToken),
            _ => throw OipException.Unavailable($"model '{model}' failed: {result.Error?.Message}"),
        };
    }

    // ------------------------------------------------------------ text generation

    /// <summary>
    /// The deployed language models that have a ready replica: a byte-level model (registered input INT64
    /// tokens [-1, -1], output logits [-1, -1, 256]), newest version of each name, or an external engine.
    /// </summary>
    public IReadOnlyList<LanguageModelInfo> ListLanguageModels()
    {
        var models = new List<LanguageModelInfo>();
        foreach (var (name, deployments) in _byModel)
        {
            for (var i = deployments.Length - 1; i >= 0; i--)
            {
                var deployment = deployments[i];
                if (deployment.IsEngine)
                {
                    if (deployment.Router.ReplicaCount > 0)
                    {
                        models.Add(new LanguageModelInfo(name, 0, deployment.Record.CreatedAt, 0, Engine: true));
                    }

                    break;
                }

                if (IsLanguageModel(deployment.Metadata) && deployment.Router.ReplicaCount > 0)
                {
                    models.Add(new LanguageModelInfo(name, deployment.Record.Version, deployment.Record.CreatedAt, TextContext(deployment.Descriptor!)));
                    break;
                }
            }
        }

        return [.. models.OrderBy(m => m.Name, StringComparer.Ordinal)];
    }

    /// <summary>
    /// Starts a generation on a replica of <paramref name="model"/> (its newest deployed version, or
    /// "NAME:VERSION") and returns once the first text came: a replica that fails before that is replaced
    /// by another, as a plain request's would be. Throws <see cref="GenerationException"/> when it cannot start.
    /// </summary>
    public async Task<GenerationResult> GenerateAsync(string model, GenerationRequest request, DateTimeOffset deadline, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(request);
        var colon = model.LastIndexOf(':');
        var deployment = Resolve(model, null)
            ?? (colon > 0 ? Resolve(model[..colon], model[(colon + 1)..]) : null)
            ?? throw new GenerationException(GenerationFailure.NotFound, $"The model '{model}' does not exist or is not deployed.");
        if (deployment.IsEngine || !IsLanguageModel(deployment.Metadata))
        {
            throw new GenerationException(GenerationFailure.BadRequest, $"The model '{model}' is not a byte-level language model (INT64 tokens [-1, -1] in, logits [-1, -1, 256] out).");
        }

        var ticket = Admit(deployment, _billing.TokenCharge((long)request.Prompt.Length + request.MaxTokens));
        var sink = new GenerationSink(request.MaxTokens + 2);
        var text = await StartStreamAsync(
            deployment, new RoutedCall(request, deployment.Metadata, deadline, sink), sink.Started, () => sink.HasStarted, sink.Complete, model, "the first token", deadline,
            _billing, ticket, () => (long)request.Prompt.Length + sink.CompletionTokens, cancellationToken);
        return new GenerationResult(sink.Reader, request.Prompt.Length, text) { DeploymentId = deployment.Record.Id };
    }

    /// <summary>Whether <paramref name="model"/> names an external engine's deployment (then OpenAI requests pass through to it).</summary>
    public bool IsEngine(string model) =>
        _byModel.TryGetValue(model, out var deployments) && deployments[^1].IsEngine;

    /// <summary>
    /// Passes one OpenAI request to a replica of the engine deployment <paramref name="model"/> and returns
    /// once its answer started (the status of a whole answer, or a stream's first event): a replica that
    /// fails before that, or whose node sends something malformed, is replaced by another. Throws
    /// <see cref="GenerationException"/> when no replica could answer.
    /// </summary>
    public async Task<EngineResponse> CallEngineAsync(string model, EngineRequest request, DateTimeOffset deadline, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(request);
        var deployment = Resolve(model, null) is { IsEngine: true } found
            ? found
            : throw new GenerationException(GenerationFailure.NotFound, $"The model '{model}' is not an engine deployment.");
        var ticket = Admit(deployment, _billing.EngineCharge(request.Body.Length, request.MaxTokens));
        var sink = new EngineSink();
        var start = await StartStreamAsync(
            deployment, new RoutedCall(request, deployment.Metadata, deadline, sink), sink.Started, () => sink.HasStarted, sink.Complete, model, "the engine answered", deadline,
            _billing, ticket, () => sink.Usage is { } usage ? usage.PromptTokens + usage.CompletionTokens : 0, cancellationToken);
        return new EngineResponse(sink, start, deployment.Record.Id);
    }

    private BillingTicket Admit(Deployment deployment, long charge)
    {
        try
        {
            return _billing.Admit(deployment.Record.Id, charge);
        }
        catch (BudgetSpentException ex)
        {
            throw new GenerationException(GenerationFailure.BudgetSpent, ex.Message);
        }
    }

    /// <summary>
    /// Routes a streaming call (a generation, or an engine call) and returns once its sink started: a
    /// replica that fails before that is replaced by another, as a plain request's would be. A stream that
    /// started and then stopped without finishing (deadline, client gone, fault) ends its sink with an
    /// error. Throws <see cref="GenerationException"/> when no replica started it. A stream the node finished
    /// is metered (<paramref name="tokens"/>) before its sink ends, so before the client has all of it.
    /// </summary>
    private static async Task<T> StartStreamAsync<T>(
        Deployment deployment,
        RoutedCall call,
        Task<T> started,
        Func<bool> hasStarted,
        Action<Exception?> complete,
        string model,
        string before,
        DateTimeOffset deadline,
        InferenceBilling billing,
        BillingTicket ticket,
        Func<long> tokens,
        CancellationToken cancellationToken)
    {
        Task<RouteResult<InferResponse>> routing;
        try
        {
            routing = deployment.Router.RouteAsync(call, deadline, cancellationToken).AsTask();
        }
        catch
        {
            billing.Cancel(ticket);
            throw;
        }

        _ = routing.ContinueWith(
            task =>
            {
                var result = task.Result;
                Exception? error = null;
                if (result.Outcome == RouteOutcome.Success)
                {
                    try
                    {
                        billing.Complete(ticket, result.NodeId ?? deployment.Router.NodeOf(result.ReplicaId!), tokens());
                    }
                    catch (IOException ex)
                    {
                        error = new GenerationException(GenerationFailure.Unavailable, $"the answer could not be metered: {ex.Message}");
                    }
                }
                else
                {
                    billing.Cancel(ticket);
                    error = new GenerationException(GenerationFailure.Unavailable, RouteText(result));
                }

                complete(error);
            },
            CancellationToken.None,
            TaskContinuationOptions.ExecuteSynchronously,
            TaskScheduler.Default);
        var first = await Task.WhenAny(started, routing);
        if (first == started || hasStarted())
        {
            return await started;
        }

        var outcome = await routing;
        throw outcome.Outcome switch
        {
            RouteOutcome.Rejected => new GenerationException(GenerationFailure.BadRequest, outcome.Error!.Message),
            RouteOutcome.Overloaded => new GenerationException(GenerationFailure.Overloaded, $"The model '{model}' is overloaded: every replica is busy and the queue is full. Retry later."),
            RouteOutcome.NoReplicas => new GenerationException(GenerationFailure.Unavailable, $"The model '{model}' has no ready replica."),
            RouteOutcome.DeadlineExceeded => new GenerationException(GenerationFailure.DeadlineExceeded, $"The request timed out before {before}."),
            RouteOutcome.Canceled => new OperationCanceledException(cancellationToken),
            _ => new GenerationException(GenerationFailure.Unavailable, $"The model '{model}' is unavailable: {outcome.Error?.Message}"),
        };
    }

    /// <summary>Whether a model's signature is a byte-level language model's.</summary>
    public static bool IsLanguageModel(ModelMetadata metadata)
    {
        ArgumentNullException.ThrowIfNull(metadata);
        return metadata.Inputs is [{ Datatype: TensorDatatype.Int64, Shape: [-1, -1] }]
            && metadata.Outputs is [{ Datatype: TensorDatatype.Fp32, Shape: [_, _, var vocabulary] }]
            && (vocabulary == ModelSpec.ByteVocabulary || vocabulary < 0);
    }

    private static int TextContext(ModelDescriptor descriptor) =>
        descriptor.Model.WithDefaults().Context is > 0 and var context ? context : 128;

    private static string RouteText(RouteResult<InferResponse> result) => result.Outcome switch
    {
        RouteOutcome.DeadlineExceeded => "the request timed out",
        RouteOutcome.Canceled => "the request was cancelled",
        _ => $"the generation failed: {result.Error?.Message ?? result.Outcome.ToString()}",
    };

    // ------------------------------------------------------------ deploy, undeploy, list

    /// <summary>Deploys a registered model version as the operator; throws <see cref="DeploymentException"/> (400, 404, 409).</summary>
    public Task<DeploymentView> DeployAsync(DeploymentSpec spec, CancellationToken cancellationToken) =>
        DeployAsync(spec, Caller.Operator, cancellationToken);

    /// <summary>
    /// Deploys a registered model version of <paramref name="caller"/>'s (the operator may deploy anyone's;
    /// the deployment belongs to the model's owner), or an external engine under a name no other account
    /// holds; throws <see cref="DeploymentException"/> (400, 403, 404, 409).
    /// </summary>
    public async Task<DeploymentView> DeployAsync(DeploymentSpec spec, Caller caller, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(spec);
        ArgumentNullException.ThrowIfNull(caller);
        var problems = Validate(spec);
        if (problems.Count > 0)
        {
            throw new DeploymentException(400, string.Join("; ", problems));
        }

        if (spec.Engine)
        {
            var holder = await _registry.ModelOwnerAsync(spec.Model, cancellationToken);
            if (holder is not null && !caller.MayAccess(holder))
            {
                throw new DeploymentException(409, $"the name '{spec.Model}' is taken by another account's model; deploy the engine under another name");
            }

            return await DeployEngineAsync(spec, holder ?? caller.AccountId, caller, cancellationToken);
        }

        if (await RunAsync(() => Task.FromResult(_deployments.Values.FirstOrDefault(d => d.IsEngine && d.Record.Spec.Model == spec.Model)), cancellationToken) is { } engine)
        {
            throw new DeploymentException(409, $"'{spec.Model}' is deployed as the external engine '{engine.Record.Id}'; undeploy it first");
        }

        var row = await _registry.GetModelAsync(spec.Model, spec.Version, cancellationToken)
            ?? throw new DeploymentException(404, spec.Version is null ? $"no model named '{spec.Model}'" : $"model '{spec.Model}' has no version {spec.Version}");
        if (!caller.MayAccess(row.Owner))
        {
            throw new DeploymentException(403, AccessProblems.Message(caller, $"the model '{spec.Model}'"));
        }

        var descriptor = JsonSerializer.Deserialize<ModelDescriptor>(row.DescriptorJson, EmcJson.Options)!;
        if (descriptor.Format is not ("onnx" or "emc-zoo" or "torchscript"))
        {
            throw new DeploymentException(400, $"model format '{descriptor.Format}' cannot be served");
        }

        // Refused here rather than by every node that would try to load it, over and over.
        if (descriptor.Format == "torchscript" && ServeTaskInput.TorchScriptShape(descriptor, out var problem) is null)
        {
            throw new DeploymentException(400, problem!);
        }

        var record = new DeploymentRecord($"{row.Name}-v{row.Version}", spec with { Version = row.Version }, row.Version, _time.GetUtcNow()) { Owner = row.Owner };
        if (await _store.GetAsync(record.Id, cancellationToken) is not null)
        {
            // Refused before any budget moves; the store's own check below covers a race with another deploy.
            throw new DeploymentException(409, $"model {row.Name}:{row.Version} is already deployed as '{record.Id}'");
        }

        record = await ReserveBudgetAsync(record, caller, cancellationToken);
        if (!await _store.AddAsync(record, cancellationToken))
        {
            await RefundUnstoredAsync(record);
            throw new DeploymentException(409, $"model {row.Name}:{row.Version} is already deployed as '{record.Id}'");
        }

        await RunAsync(() => Activate(record, descriptor), cancellationToken);
        return await GetAsync(record.Id, cancellationToken) ?? throw new DeploymentException(404, $"deployment '{record.Id}' was removed");
    }

    /// <summary>
    /// Deploys an external engine: no registry entry, replicas only on nodes labelled engine:NAME=openai.
    /// One deployment per name, engine or model.
    /// </summary>
    private async Task<DeploymentView> DeployEngineAsync(DeploymentSpec spec, string owner, Caller caller, CancellationToken cancellationToken)
    {
        var record = new DeploymentRecord(spec.Model + "-engine", spec with { Version = null }, 0, _time.GetUtcNow()) { Owner = owner };
        if (await RunAsync(() => Task.FromResult(_deployments.Values.FirstOrDefault(d => d.Record.Spec.Model == spec.Model)), cancellationToken) is { } taken)
        {
            throw new DeploymentException(409, $"'{spec.Model}' is already deployed as '{taken.Record.Id}'");
        }

        record = await ReserveBudgetAsync(record, caller, cancellationToken);
        var stored = false;
        try
        {
            await RunAsync(
                async () =>
                {
                    if (_deployments.Values.FirstOrDefault(d => d.Record.Spec.Model == spec.Model) is { } existing)
                    {
                        throw new DeploymentException(409, $"'{spec.Model}' is already deployed as '{existing.Record.Id}'");
                    }

                    if (!await _store.AddAsync(record, cancellationToken))
                    {
                        throw new DeploymentException(409, $"engine '{spec.Model}' is already deployed as '{record.Id}'");
                    }

                    stored = true;
                    await Activate(record, null);
                },
                cancellationToken);
        }
        catch (DeploymentException) when (!stored)
        {
            await RefundUnstoredAsync(record);
            throw;
        }

        return await GetAsync(record.Id, cancellationToken) ?? throw new DeploymentException(404, $"deployment '{record.Id}' was removed");
    }

    /// <summary>Stops a deployment as the operator, by id or by model name; throws <see cref="DeploymentException"/> 404 when none matches.</summary>
    public Task<string> UndeployAsync(string idOrName, CancellationToken cancellationToken) =>
        UndeployAsync(idOrName, Caller.Operator, cancellationToken);

    /// <summary>
    /// Stops a deployment, by id or by model name; throws <see cref="DeploymentException"/> 404 when none
    /// matches and 403 when it is another account's (then nothing changes).
    /// </summary>
    public async Task<string> UndeployAsync(string idOrName, Caller caller, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(caller);
        var id = await RunAsync(
            () =>
            {
                if (_deployments.ContainsKey(idOrName))
                {
                    return Task.FromResult<string?>(idOrName);
                }

                var named = _deployments.Values.Where(d => d.Record.Spec.Model == idOrName).ToList();
                return Task.FromResult(named.Count switch
                {
                    1 => named[0].Record.Id,
                    > 1 => throw new DeploymentException(409, $"model '{idOrName}' has {named.Count} deployments ({string.Join(", ", named.Select(d => d.Record.Id))}); name one by id"),
                    _ => null,
                });
            },
            cancellationToken) ?? throw new DeploymentException(404, $"no deployment '{idOrName}'");

        var owner = await RunAsync(() => Task.FromResult(_deployments.TryGetValue(id, out var found) ? found.Record.Owner : null), cancellationToken);
        if (owner is not null && !caller.MayAccess(owner))
        {
            throw new DeploymentException(403, AccessProblems.Message(caller, $"the deployment '{id}'"));
        }

        await _store.RemoveAsync(id, cancellationToken);
        await RunAsync(() => DeactivateAsync(id, "undeployed", cancellationToken), cancellationToken);

        // After the replicas are gone: what ran is posted, then the rest of the budget goes back.
        await _billing.CloseAsync(id, CancellationToken.None);
        return id;
    }

    public Task<IReadOnlyList<DeploymentView>> ListAsync(CancellationToken cancellationToken) => ListAsync(null, cancellationToken);

    /// <summary>The deployments, only <paramref name="owner"/>'s when given, oldest first.</summary>
    public Task<IReadOnlyList<DeploymentView>> ListAsync(string? owner, CancellationToken cancellationToken) =>
        RunAsync<IReadOnlyList<DeploymentView>>(
            async () =>
            {
                var views = new List<DeploymentView>(_deployments.Count);
                foreach (var deployment in _deployments.Values.Where(d => owner is null || d.Record.Owner == owner).OrderBy(d => d.Record.CreatedAt).ToList())
                {
                    views.Add(await ViewAsync(deployment, cancellationToken));
                }

                return views;
            },
            cancellationToken);

    public Task<DeploymentView?> GetAsync(string id, CancellationToken cancellationToken) =>
        RunAsync<DeploymentView?>(async () => _deployments.TryGetValue(id, out var d) ? await ViewAsync(d, cancellationToken) : null, cancellationToken);

    /// <summary>
    /// The account a model name is served for: the owner of its deployments, else of its registry entry;
    /// null when the name is neither deployed nor registered. The inference front ends let only that
    /// account and the operator see and call it.
    /// </summary>
    public async ValueTask<string?> ModelOwnerAsync(string model, CancellationToken cancellationToken) =>
        _byModel.TryGetValue(model, out var deployments) ? deployments[^1].Record.Owner : await _registry.ModelOwnerAsync(model, cancellationToken);

    /// <summary>The owner of the deployed name <paramref name="model"/>; null when it is not deployed. Reads memory only.</summary>
    public string? DeployedOwner(string model) =>
        _byModel.TryGetValue(model, out var deployments) ? deployments[^1].Record.Owner : null;

    /// <summary>The router of a deployment, for stats and tests; null when not deployed.</summary>
    public ReplicaRouter<RoutedCall, InferResponse>? GetRouter(string id) =>
        _byModel.Values.SelectMany(d => d).FirstOrDefault(d => d.Record.Id == id)?.Router;

    // ------------------------------------------------------------ control loop

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        try
        {
            await _scheduler.Restored.WaitAsync(stoppingToken);
            await RestoreAsync(stoppingToken);
        }
        finally
        {
            _started.TrySetResult();
        }

        using var timer = new PeriodicTimer(_options.ScaleInterval, _time);
        var tick = timer.WaitForNextTickAsync(stoppingToken).AsTask();
        while (!stoppingToken.IsCancellationRequested)
        {
            var read = _inbox.Reader.WaitToReadAsync(stoppingToken).AsTask();
            try
            {
                var woke = await Task.WhenAny(tick, read);
                while (_inbox.Reader.TryRead(out var action))
                {
                    await action();
                }

                if (woke == tick)
                {
                    if (!await tick)
                    {
                        break;
                    }

                    await ScaleAllAsync(stoppingToken);
                    tick = timer.WaitForNextTickAsync(stoppingToken).AsTask();
                }
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                break;
            }
            catch (Exception ex)
            {
                Log.StepFailed(_logger, ex);
            }
        }
    }

    public override void Dispose()
    {
        _scheduler.Committed -= OnCommitted;
        _hub.ReplicaStatusChanged -= OnReplicaStatus;
        _hub.NodeGone -= OnNodeGone;
        base.Dispose();
    }

    private async Task<T> RunAsync<T>(Func<Task<T>> action, CancellationToken cancellationToken)
    {
        var done = new TaskCompletionSource<T>(TaskCreationOptions.RunContinuationsAsynchronously);
        _inbox.Writer.TryWrite(async () =>
        {
            try
            {
                done.TrySetResult(await action());
            }
            catch (Exception ex)
            {
                done.TrySetException(ex);
            }
        });
        return await done.Task.WaitAsync(cancellationToken);
    }

    private Task<bool> RunAsync(Func<Task> action, CancellationToken cancellationToken) =>
        RunAsync(
            async () =>
            {
                await action();
                return true;
            },
            cancellationToken);

    /// <summary>
    /// Loads the stored deployments and adopts the replica jobs a previous run left: a replica still
    /// leased on its node goes on serving once the node, reconnected, says it is ready again — nothing is
    /// loaded twice. Replica jobs of deployments that are gone are cancelled.
    /// </summary>
    private async Task RestoreAsync(CancellationToken cancellationToken)
    {
        var left = new Dictionary<string, List<JobView>>(StringComparer.Ordinal);
        foreach (var job in await _scheduler.ListJobsAsync(null, Account, 10_000, cancellationToken))
        {
            if (!job.State.IsTerminal() && job.Name.StartsWith(JobPrefix, StringComparison.Ordinal))
            {
                var id = job.Name[JobPrefix.Length..];
                if (!left.TryGetValue(id, out var jobs))
                {
                    left[id] = jobs = [];
                }

                jobs.Add(job);
            }
        }

        foreach (var record in await _store.ListAsync(cancellationToken))
        {
            if (record.Spec.Engine)
            {
                left.Remove(record.Id, out var adoptedEngine);
                await Activate(record, null, adoptedEngine);
                continue;
            }

            var row = await _registry.GetModelAsync(record.Spec.Model, record.Version, cancellationToken);
            if (row is null)
            {
                Log.ModelMissing(_logger, record.Id, record.Spec.Model, record.Version);
                continue;
            }

            left.Remove(record.Id, out var adopted);
            await Activate(record, JsonSerializer.Deserialize<ModelDescriptor>(row.DescriptorJson, EmcJson.Options)!, adopted);
        }

        foreach (var job in left.Values.SelectMany(jobs => jobs))
        {
            await _scheduler.CancelAsync(job.Id, "its deployment no longer exists", cancellationToken);
        }

        // Budgets of deployments removed (or never stored) before a refund went through.
        var live = new HashSet<string>(StringComparer.Ordinal);
        foreach (var record in await _store.ListAsync(cancellationToken))
        {
            if (record.Spec.Escrow is { } escrow)
            {
                live.Add(escrow);
            }
        }

        await _billing.RefundOrphansAsync(live, cancellationToken);
    }

    private async Task Activate(DeploymentRecord record, ModelDescriptor? descriptor, List<JobView>? adopted = null)
    {
        var spec = record.Spec;
        var deployment = new Deployment(
            record,
            descriptor,
            descriptor is null ? EngineMetadata(spec.Model) : BuildMetadata(descriptor),
            new ReplicaRouter<RoutedCall, InferResponse>(record.Id, _options.Router, _time, _loggers.CreateLogger("Emc.Coordinator.Inference.Router")),
            new Autoscaler(new AutoscalerOptions
            {
                MinReplicas = spec.MinReplicas,
                MaxReplicas = spec.MaxReplicas,
                TargetOngoingRequests = _options.TargetOngoingRequests,
                UpscaleWindow = _options.UpscaleWindow,
                DownscaleWindow = _options.DownscaleWindow,
            }))
        {
            Desired = Math.Max(1, spec.MinReplicas),
        };
        deployment.Router.ReplicaMisbehaving = (replica, node, problem) => _inbox.Writer.TryWrite(() => EvictAsync(deployment, replica, node, problem));
        deployment.Audit = new AuditTarget(record.Id, $"model:{spec.Model}:{record.Version.ToString(CultureInfo.InvariantCulture)}", deployment.Metadata, deployment.Router, _referee.For(descriptor));
        if (spec.Escrow is { } escrowName)
        {
            await _billing.AttachAsync(record.Id, escrowName, CancellationToken.None);
        }

        _deployments[record.Id] = deployment;
        PublishByModel();
        Log.Deployed(_logger, record.Id, spec.Model, record.Version, spec.MinReplicas, spec.MaxReplicas);
        if (adopted is { Count: > 0 })
        {
            // The scale the previous run had reached, within MIN..MAX.
            deployment.Desired = Math.Clamp(adopted.Count, Math.Max(1, spec.MinReplicas), Math.Max(1, spec.MaxReplicas));
            foreach (var view in adopted.OrderBy(v => v.Id, StringComparer.Ordinal))
            {
                var job = new ReplicaJob(view.Id, view.Id + ".0", ++deployment.Submitted);
                deployment.Jobs.Add(job);
                _byTask[job.TaskId] = (deployment, job);
                if (_earlyReady.Remove(job.TaskId, out var early))
                {
                    await ReadyAsync(early.NodeId, early.ReplicaId, CancellationToken.None);
                }
            }

            Log.Adopted(_logger, record.Id, adopted.Count);
        }

        await ReconcileAsync(deployment, CancellationToken.None);
    }

    private async Task DeactivateAsync(string id, string reason, CancellationToken cancellationToken)
    {
        if (!_deployments.Remove(id, out var deployment))
        {
            return;
        }

        PublishByModel();
        foreach (var job in deployment.Jobs.ToList())
        {
            await RemoveJobAsync(deployment, job, reason, cancellationToken);
        }

        Log.Undeployed(_logger, id, reason);
    }

    private async Task ScaleAllAsync(CancellationToken cancellationToken)
    {
        var now = _time.GetUtcNow();
        foreach (var deployment in _deployments.Values.ToList())
        {
            deployment.Autoscaler.Record(deployment.Router.Sample());
            var decision = deployment.Autoscaler.Decide(deployment.Desired, now);
            if (decision.Direction != ScaleDirection.None && decision.Replicas != deployment.Desired)
            {
                Log.Scaled(_logger, deployment.Record.Id, deployment.Desired, decision.Replicas, decision.Reason);
                deployment.Desired = decision.Replicas;
            }

            await ReconcileAsync(deployment, cancellationToken);
        }
    }

    /// <summary>Submits or cancels replica jobs until the deployment has as many as it wants.</summary>
    private async Task ReconcileAsync(Deployment deployment, CancellationToken cancellationToken)
    {
        while (deployment.Jobs.Count < deployment.Desired)
        {
            var job = await SubmitReplicaAsync(deployment, cancellationToken);
            if (job is null)
            {
                return;
            }
        }

        while (deployment.Jobs.Count > deployment.Desired)
        {
            // Replicas not serving yet go first, then the newest.
            var surplus = deployment.Jobs.OrderBy(j => j.ReplicaId is null ? 0 : 1).ThenByDescending(j => j.Number).First();
            await RemoveJobAsync(deployment, surplus, "scaled down", cancellationToken);
        }
    }

    private async Task<ReplicaJob?> SubmitReplicaAsync(Deployment deployment, CancellationToken cancellationToken)
    {
        var spec = deployment.Record.Spec;
        ServeTaskInput input;
        ResourceDemand demand;
        if (deployment.Descriptor is { } descriptor)
        {
            input = new ServeTaskInput
            {
                Deployment = deployment.Record.Id,
                Model = descriptor with { Metrics = null },
                MaxBatch = spec.MaxBatch,
                MaxDelayMicroseconds = spec.MaxDelayMicroseconds,
                MaxQueue = spec.MaxQueue,
            };
            var key = ServeTaskInput.ModelKey(descriptor);
            demand = new ResourceDemand
            {
                Device = string.Equals(spec.Device, "cuda", StringComparison.OrdinalIgnoreCase) ? DeviceKind.Cuda : DeviceKind.Cpu,
                // Weights, a copy for the runtime and room for activations.
                DeviceMemoryBytes = descriptor.Bytes * 3,
                CacheKeys = key.Length > 0 ? [key] : [],
            };
        }
        else
        {
            // The engine runs on its own devices: the replica needs only a node that has it.
            input = new ServeTaskInput { Deployment = deployment.Record.Id, Engine = spec.Model, MaxQueue = spec.MaxQueue };
            demand = new ResourceDemand { Labels = new Dictionary<string, string> { [EngineNames.LabelKey(spec.Model)] = EngineNames.LabelValue } };
        }

        // A replica shares its device with training and other replicas (it needs memory, not a task
        // slot), and a deployment's replicas spread over distinct nodes while there are any.
        demand = demand with { Shared = true, SpreadGroup = deployment.Record.Id };
        if (spec.Escrow is not null)
        {
            // Paid work goes only to nodes with the minimum stake; until one has it, the replica is not submitted
            // (the control loop tries again).
            var staked = await _billing.StakedNodesAsync(cancellationToken);
            if (staked.Count == 0)
            {
                deployment.WaitReason = "no node has the stake paid work needs (emc stake)";
                return null;
            }

            deployment.WaitReason = null;
            demand = demand with { Nodes = staked };
        }

        JobView view;
        try
        {
            view = await _scheduler.SubmitAsync(
                new JobSpec
                {
                    Name = JobPrefix + deployment.Record.Id,
                    Account = Account,
                    Priority = PriorityClass.High,
                    Demand = demand,
                    MaxRetries = JobSpecValidator.MaxRetriesLimit,
                    Tasks = [new TaskSpec { Kind = ServeTaskInput.Kind, Input = JsonSerializer.Serialize(input, EmcJson.Options) }],
                },
                cancellationToken);
        }
        catch (Exception ex) when (ex is SchedulingException or ArgumentException)
        {
            Log.SubmitFailed(_logger, deployment.Record.Id, ex.Message);
            return null;
        }

        var job = new ReplicaJob(view.Id, view.Id + ".0", ++deployment.Submitted);
        deployment.Jobs.Add(job);
        _byTask[job.TaskId] = (deployment, job);
        if (_earlyReady.Remove(job.TaskId, out var early))
        {
            await ReadyAsync(early.NodeId, early.ReplicaId, cancellationToken);
        }

        return job;
    }

    private async Task RemoveJobAsync(Deployment deployment, ReplicaJob job, string reason, CancellationToken cancellationToken)
    {
        deployment.Jobs.Remove(job);
        _byTask.Remove(job.TaskId);
        if (job.ReplicaId is { } replica)
        {
            deployment.Router.RemoveReplica(replica);
            job.ReplicaId = null;
        }

        if (!job.Ended)
        {
            await _scheduler.CancelAsync(job.JobId, reason, cancellationToken);
        }
    }

    // ------------------------------------------------------------ events (queued onto the loop)

    private void OnCommitted(SchedulerChanges changes)
    {
        List<TaskRecord>? mine = null;
        foreach (var task in changes.Tasks)
        {
            if (task.Kind == ServeTaskInput.Kind)
            {
                (mine ??= []).Add(task);
            }
        }

        if (mine is not null)
        {
            _inbox.Writer.TryWrite(() => OnTasksAsync(mine));
        }
    }

    private async Task OnTasksAsync(List<TaskRecord> tasks)
    {
        foreach (var task in tasks)
        {
            if (!_byTask.TryGetValue(task.Id, out var entry))
            {
                continue;
            }

            var (deployment, job) = entry;
            // A lost lease puts the task back in the queue under the same attempt number until it is
            // leased again, which may be never when no node is free: anything but the replica's own
            // attempt, leased or running, ends the replica.
            var serving = task.State is TaskState.Leased or TaskState.Running && task.Attempt == job.Attempt;
            if (job.ReplicaId is { } replica && !serving)
            {
                // The lease the replica ran under ended (node lost, revoked, failed): it serves no more. A node
                // lost by its heartbeats may keep its stream open, so the calls in flight on the replica are
                // failed here, to be retried on another, instead of waiting for their deadlines.
                deployment.Router.RemoveReplica(replica);
                if (job.NodeId is { } node)
                {
                    _hub.AbandonReplica(node, replica, "its lease ended");
                }

                job.ReplicaId = null;
            }

            if (task.State.IsTerminal())
            {
                job.Ended = true;
                Log.ReplicaJobEnded(_logger, deployment.Record.Id, job.JobId, task.State.ToString(), task.Reason ?? "");
                await RemoveJobAsync(deployment, job, "ended", CancellationToken.None);
                await ReconcileAsync(deployment, CancellationToken.None);
            }
        }
    }

    private void OnReplicaStatus(string nodeId, string replicaId, bool ready, string reason) =>
        _inbox.Writer.TryWrite(() => ready ? ReadyAsync(nodeId, replicaId, CancellationToken.None) : StoppedAsync(replicaId));

    private void OnNodeGone(string nodeId) => _inbox.Writer.TryWrite(() =>
    {
        foreach (var deployment in _deployments.Values)
        {
            deployment.Router.RemoveNode(nodeId);
            foreach (var job in deployment.Jobs.Where(j => j.NodeId == nodeId))
            {
                job.ReplicaId = null;
            }
        }

        return Task.CompletedTask;
    });

    private async Task ReadyAsync(string nodeId, string replicaId, CancellationToken cancellationToken)
    {
        var hash = replicaId.LastIndexOf('#');
        if (hash <= 0 || !int.TryParse(replicaId.AsSpan(hash + 1), NumberStyles.None, CultureInfo.InvariantCulture, out var attempt))
        {
            return;
        }

        var taskId = replicaId[..hash];
        if (!_byTask.TryGetValue(taskId, out var entry))
        {
            // Its job may be being submitted right now; anything else is forgotten with the next one.
            if (_earlyReady.Count < 1024)
            {
                _earlyReady[taskId] = (nodeId, replicaId);
            }

            return;
        }

        // Only the node holding the task's current lease may serve it.
        var task = await _scheduler.GetTaskAsync(taskId, cancellationToken);
        if (task is null || task.NodeId != nodeId || task.Attempt != attempt || task.State.IsTerminal())
        {
            Log.ReadyIgnored(_logger, replicaId, nodeId);
            return;
        }

        var (deployment, job) = entry;
        if (!_byTask.ContainsKey(taskId))
        {
            return;
        }

        if (job.ReplicaId is { } previous && previous != replicaId)
        {
            deployment.Router.RemoveReplica(previous);
        }

        job.ReplicaId = replicaId;
        job.NodeId = nodeId;
        job.Attempt = attempt;
        deployment.Router.AddReplica(new NodeReplica(replicaId, nodeId, Math.Max(1, deployment.Record.Spec.EffectiveMaxOngoing), _hub));
    }

    /// <summary>
    /// A replica whose node keeps answering with malformed replies: it leaves the router at once, and its
    /// lease is evicted, so the scheduler lowers the node's reputation and places the replica elsewhere.
    /// </summary>
    private Task EvictAsync(Deployment deployment, string replicaId, string nodeId, string problem) =>
        EvictAsync(deployment, replicaId, nodeId, problem, $"its replica of {deployment.Record.Id} answered with malformed replies ({problem})");

    /// <summary>A node proven by an audit to have answered wrongly: its replica is evicted as a misbehaving one is.</summary>
    private void OnFaultProven(AuditFinding finding) =>
        _inbox.Writer.TryWrite(() =>
            _deployments.TryGetValue(finding.DeploymentId, out var deployment)
                ? EvictAsync(deployment, finding.ReplicaId, finding.Node, finding.Evidence, $"its replica of {finding.DeploymentId} answered wrongly ({finding.Evidence}); {string.Join(", ", finding.Witnesses)} agreed against it")
                : Task.CompletedTask);

    private async Task EvictAsync(Deployment deployment, string replicaId, string nodeId, string problem, string reason)
    {
        deployment.Router.RemoveReplica(replicaId);
        Log.ReplicaEvicted(_logger, deployment.Record.Id, replicaId, nodeId, problem);
        try
        {
            await _scheduler.EvictAsync(nodeId, replicaId, reason, CancellationToken.None);
        }
        catch (Exception ex) when (ex is SchedulingException or InvalidOperationException or OperationCanceledException)
        {
            // The scheduler is stopping; the lease ends with it.
            Log.SubmitFailed(_logger, deployment.Record.Id, ex.Message);
        }
    }

    private Task StoppedAsync(string replicaId)
    {
        var hash = replicaId.LastIndexOf('#');
        if (hash > 0 && _byTask.TryGetValue(replicaId[..hash], out var entry) && entry.Job.ReplicaId == replicaId)
        {
            entry.Deployment.Router.RemoveReplica(replicaId);
            entry.Job.ReplicaId = null;
        }

        return Task.CompletedTask;
    }

    // ------------------------------------------------------------ helpers

    private Deployment? Resolve(string model, string? version)
    {
        if (!_byModel.TryGetValue(model, out var deployments))
        {
            return null;
        }

        if (string.IsNullOrEmpty(version))
        {
            return deployments[^1];
        }

        foreach (var deployment in deployments)
        {
            if (deployment.Version == version)
            {
                return deployment;
            }
        }

        return null;
    }

    /// <summary>A deployment of a registered model (not an engine), for the Open Inference Protocol.</summary>
    private Deployment? ResolveModel(string model, string? version) => Resolve(model, version) is { IsEngine: false } deployment ? deployment : null;

    private void PublishByModel() =>
        _byModel = _deployments.Values
            .GroupBy(d => d.Record.Spec.Model, StringComparer.Ordinal)
            .ToDictionary(g => g.Key, g => g.OrderBy(d => d.Record.Version).ToArray(), StringComparer.Ordinal);

    private static bool TryParseVersion(string? version, out int? number)
    {
        number = null;
        if (string.IsNullOrEmpty(version))
        {
            return true;
        }

        if (int.TryParse(version, NumberStyles.None, CultureInfo.InvariantCulture, out var parsed))
        {
            number = parsed;
            return true;
        }

        return false;
    }

    /// <summary>
    /// The deployment as the API shows it. A replica not serving yet is "waiting" (no node has taken it;
    /// the scheduler's reason says why, such as "no node with ≥ 2 GiB device memory on a cuda device")
    /// or "starting" (its node is loading the model); a deployment with none serving repeats the first
    /// reason, so a pending deployment says what it waits for.
    /// </summary>
    private async Task<DeploymentView> ViewAsync(Deployment deployment, CancellationToken cancellationToken)
    {
        var loads = deployment.Router.GetReplicaLoads().ToDictionary(l => l.ReplicaId, StringComparer.Ordinal);
        var replicas = new List<ReplicaView>(deployment.Jobs.Count);
        foreach (var job in deployment.Jobs.ToList())
        {
            if (job.ReplicaId is { } id && loads.TryGetValue(id, out var load))
            {
                replicas.Add(new ReplicaView(id, load.NodeId, "ready", load.Outstanding, load.Served));
                continue;
            }

            var task = await _scheduler.GetTaskAsync(job.TaskId, cancellationToken);
            replicas.Add(task?.State == TaskState.Queued
                ? new ReplicaView(job.TaskId, "", "waiting", 0, 0, task.Reason)
                : new ReplicaView(job.TaskId, task?.NodeId ?? job.NodeId ?? "", "starting", 0, 0, task?.NodeId is { } node ? $"node {node} is loading the model" : null));
        }

        var ready = replicas.Count(r => r.State == "ready");
        return new DeploymentView
        {
            Id = deployment.Record.Id,
            Spec = deployment.Record.Spec,
            Version = deployment.Record.Version,
            State = ready == 0 ? "pending" : ready < deployment.Record.Spec.MinReplicas ? "degraded" : "ready",
            Reason = ready < Math.Max(1, deployment.Record.Spec.MinReplicas) ? replicas.FirstOrDefault(r => r.Reason is not null)?.Reason ?? deployment.WaitReason : null,
            DesiredReplicas = deployment.Desired,
            Replicas = replicas,
            CreatedAt = deployment.Record.CreatedAt,
            Kind = deployment.IsEngine ? "engine" : "model",
            Usage = _usage.GetUsage(deployment.Record.Id),
            Audit = _auditor.GetStats(deployment.Record.Id),
            Owner = deployment.Record.Owner,
            BudgetLeft = _billing.Remaining(deployment.Record.Id),
        };
    }

    /// <summary>
    /// Reserves the deployment's budget from <paramref name="caller"/>'s balance before anything of it exists
    /// (402 when it is missing for a user, or not covered); returns the record naming its escrow.
    /// </summary>
    private async Task<DeploymentRecord> ReserveBudgetAsync(DeploymentRecord record, Caller caller, CancellationToken cancellationToken)
    {
        if (record.Spec.Escrow is not null)
        {
            throw new DeploymentException(400, "escrow is set by the coordinator; leave it out");
        }

        if (record.Spec.Budget is not { } budget)
        {
            return caller.IsOperator
                ? record
                : throw new DeploymentException(402, $"a deployment needs a budget (\"budget\": ledger units; 1 EMC = 1000000; `emc model deploy --budget EMC`), reserved from account '{caller.AccountId}' to pay for its requests");
        }

        var escrow = InferenceBilling.EscrowName(record.Id, record.CreatedAt);
        try
        {
            await _billing.OpenEscrowAsync(escrow, caller.AccountId, budget, record.Id, cancellationToken);
        }
        catch (InsufficientBalanceException ex)
        {
            throw new DeploymentException(402, $"the budget of {LedgerUnits.Format(budget)} EMC is not covered: {ex.Message}; fund the account (the operator: emc account fund) or lower the budget");
        }

        return record with { Spec = record.Spec with { Escrow = escrow } };
    }

    private async Task RefundUnstoredAsync(DeploymentRecord record)
    {
        if (record.Spec.Escrow is { } escrow)
        {
            await _billing.RefundAsync(escrow, record.Id, "the deployment could not be stored", CancellationToken.None);
        }
    }

    /// <summary>Problems with a spec; empty when it can be deployed.</summary>
    public static IReadOnlyList<string> Validate(DeploymentSpec spec)
    {
        ArgumentNullException.ThrowIfNull(spec);
        var errors = new List<string>();
        if (spec.Engine)
        {
            if (!EngineNames.IsValid(spec.Model))
            {
                errors.Add($"model must name an engine: {EngineNames.Rule}");
            }

            if (spec.Version is not null)
            {
                errors.Add("an engine has no versions");
            }
        }
        else if (string.IsNullOrWhiteSpace(spec.Model) || spec.Model.Length > 200)
        {
            errors.Add("model must name a registered model");
        }

        if (spec.Version is < 1)
        {
            errors.Add("version must be 1 or more");
        }

        if (spec.MinReplicas < 0 || spec.MaxReplicas < Math.Max(1, spec.MinReplicas) || spec.MaxReplicas > 256)
        {
            errors.Add("replicas must be MIN..MAX with 0 ≤ MIN ≤ MAX, 1 ≤ MAX ≤ 256");
        }

        if (spec.MaxBatch is < 1 or > 4096)
        {
            errors.Add("maxBatch must be between 1 and 4096");
        }

        if (spec.MaxDelayMicroseconds is < 0 or > 10_000_000)
        {
            errors.Add("maxDelayMicroseconds must be between 0 and 10,000,000 (10 s)");
        }

        if (spec.MaxQueue is < 1 or > 100_000)
        {
            errors.Add("maxQueue must be between 1 and 100,000");
        }

        if (spec.Budget is < 1)
        {
            errors.Add("budget must be at least 1 unit");
        }

        if (spec.MaxOngoingPerReplica is < 1 or > 10_000)
        {
            errors.Add("maxOngoingPerReplica must be between 1 and 10,000");
        }

        if (!string.Equals(spec.Device, "cpu", StringComparison.OrdinalIgnoreCase) && !string.Equals(spec.Device, "cuda", StringComparison.OrdinalIgnoreCase))
        {
            errors.Add("device must be cpu or cuda");
        }

        return errors;
    }

    /// <summary>What an engine deployment shows where a model's metadata goes: its name, no tensors (it answers the OpenAI API only).</summary>
    private static ModelMetadata EngineMetadata(string name) => new()
    {
        Name = name,
        Versions = [],
        Platform = "openai_engine",
        Inputs = [],
        Outputs = [],
    };

    /// <summary>The Open Inference Protocol metadata of a registered model: its declared inputs and outputs, or those of a zoo model's logits.</summary>
    public static ModelMetadata BuildMetadata(ModelDescriptor descriptor)
    {
        ArgumentNullException.ThrowIfNull(descriptor);
        var inputs = descriptor.Inputs ?? [
            descriptor.IsText
                ? new TensorMetadata("input", TensorDatatype.Int64, [-1, -1])
                : new TensorMetadata("input", TensorDatatype.Fp32, [-1, .. descriptor.SampleShape.Select(d => (long)d)])];
        var outputs = descriptor.Outputs ?? [
            descriptor.IsText
                ? new TensorMetadata("logits", TensorDatatype.Fp32, [-1, -1, ModelSpec.ByteVocabulary])
                : new TensorMetadata("logits", TensorDatatype.Fp32, [-1, descriptor.Classes])];
        return new ModelMetadata
        {
            Name = descriptor.Name,
            Versions = [descriptor.Version.ToString(CultureInfo.InvariantCulture)],
            Platform = descriptor.Format switch
            {
                "onnx" => "onnx_onnxv1",
                "torchscript" => "pytorch_torchscript",
                _ => "emc_zoo",
            },
            Inputs = inputs,
            Outputs = outputs,
        };
    }

    private sealed class Deployment(DeploymentRecord record, ModelDescriptor? descriptor, ModelMetadata metadata, ReplicaRouter<RoutedCall, InferResponse> router, Autoscaler autoscaler)
    {
        public DeploymentRecord Record { get; } = record;

        public string Version { get; } = record.Version.ToString(CultureInfo.InvariantCulture);

        /// <summary>The registered model; null for an external engine.</summary>
        public ModelDescriptor? Descriptor { get; } = descriptor;

        public bool IsEngine => Descriptor is null;

        public ModelMetadata Metadata { get; } = metadata;

        public ReplicaRouter<RoutedCall, InferResponse> Router { get; } = router;

        public Autoscaler Autoscaler { get; } = autoscaler;

        public int Desired { get; set; }

        /// <summary>Why a replica could not even be submitted (a paid deployment with no staked node).</summary>
        public string? WaitReason { get; set; }

        public long Submitted { get; set; }

        public List<ReplicaJob> Jobs { get; } = [];

        /// <summary>Where the auditor re-runs the deployment's sampled answers.</summary>
        public AuditTarget Audit { get; set; } = null!;
    }

    private sealed class ReplicaJob(string jobId, string taskId, long number)
    {
        public string JobId { get; } = jobId;

        public string TaskId { get; } = taskId;

        public long Number { get; } = number;

        /// <summary>The serving lease's id, while its replica is in the router.</summary>
        public string? ReplicaId { get; set; }

        public string? NodeId { get; set; }

        public int Attempt { get; set; }

        public bool Ended { get; set; }
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 2410, Level = LogLevel.Information, Message = "Deployment {Id}: {Model}:{Version} with {Min}..{Max} replicas.")]
        public static partial void Deployed(ILogger logger, string id, string model, int version, int min, int max);

        [LoggerMessage(EventId = 2411, Level = LogLevel.Information, Message = "Deployment {Id} stopped: {Reason}.")]
        public static partial void Undeployed(ILogger logger, string id, string reason);

        [LoggerMessage(EventId = 2412, Level = LogLevel.Information, Message = "Deployment {Id}: {From} → {To} replicas ({Reason}).")]
        public static partial void Scaled(ILogger logger, string id, int from, int to, string reason);

        [LoggerMessage(EventId = 2413, Level = LogLevel.Warning, Message = "Deployment {Id}: a replica could not be submitted: {Reason}")]
        public static partial void SubmitFailed(ILogger logger, string id, string reason);

        [LoggerMessage(EventId = 2414, Level = LogLevel.Information, Message = "Deployment {Id}: replica job {JobId} ended ({State}: {Reason}).")]
        public static partial void ReplicaJobEnded(ILogger logger, string id, string jobId, string state, string reason);

        [LoggerMessage(EventId = 2415, Level = LogLevel.Warning, Message = "Replica {ReplicaId} reported ready by node {NodeId}, which does not hold its lease; ignored.")]
        public static partial void ReadyIgnored(ILogger logger, string replicaId, string nodeId);

        [LoggerMessage(EventId = 2431, Level = LogLevel.Information, Message = "Deployment {Id}: adopted {Count} replica job(s) of the previous run.")]
        public static partial void Adopted(ILogger logger, string id, int count);

        [LoggerMessage(EventId = 2430, Level = LogLevel.Warning, Message = "Deployment {Id}: evicting replica {ReplicaId} on node {NodeId}, which keeps answering with malformed replies: {Problem}.")]
        public static partial void ReplicaEvicted(ILogger logger, string id, string replicaId, string nodeId, string problem);

        [LoggerMessage(EventId = 2416, Level = LogLevel.Warning, Message = "Deployment {Id}: model {Model}:{Version} is no longer registered; not served.")]
        public static partial void ModelMissing(ILogger logger, string id, string model, int version);

        [LoggerMessage(EventId = 2417, Level = LogLevel.Error, Message = "A deployment step failed.")]
        public static partial void StepFailed(ILogger logger, Exception exception);
    }
}
