using System.Buffers.Binary;
using System.Collections.Concurrent;
using Emc.Compute.Inference;
using Emc.Contracts.Node.V1;
using Emc.Core.Inference;
using Emc.Core.Verification;
using Emc.Node.Connection;
using Emc.Node.Work;
using Google.Protobuf;
using Microsoft.Extensions.Logging;

namespace Emc.Node.Inference;

/// <summary>
/// The node's serving side. A replica runs for as long as its "serve" lease does (see
/// <see cref="ServeExecutor"/>): it loads its model through the <see cref="ModelCache"/>, says it is
/// ready, and answers <see cref="InferCall"/>s through one <see cref="DynamicBatcher{TItem, TResult}"/>.
/// Calls are dispatched from the stream's reader without waiting (parsing and queueing only); the
/// reply goes out through the session's outbox, its single writer, when the batch is done. A replica
/// of an external engine loads nothing: it checks that the engine answers, then passes
/// <see cref="EngineCall"/>s through to it (see <see cref="ExternalEngine"/>).
/// </summary>
public sealed partial class InferenceHost : IAsyncDisposable
{
    private readonly ModelCache _models;
    private readonly ILogger _logger;
    private readonly TimeProvider _time;
    private readonly ConcurrentDictionary<string, Replica> _replicas = new(StringComparer.Ordinal);
    private readonly CancellationTokenSource _draining = new();
    private readonly ConcurrentDictionary<ulong, CancellationTokenSource> _generations = new();
    private readonly Dictionary<string, ExternalEngine> _engines = new(StringComparer.Ordinal);
    private INodeOutbox? _outbox;

    /// <param name="models">Where replicas get their models.</param>
    /// <param name="logger">Where replica events are logged.</param>
    /// <param name="timeProvider">The clock of deadlines and batch delays.</param>
    /// <param name="engines">The external engines of this node (<c>--engine NAME=URL</c>), owned by the caller.</param>
    public InferenceHost(ModelCache models, ILogger logger, TimeProvider? timeProvider = null, IEnumerable<ExternalEngine>? engines = null)
    {
        ArgumentNullException.ThrowIfNull(models);
        ArgumentNullException.ThrowIfNull(logger);
        _models = models;
        _logger = logger;
        _time = timeProvider ?? TimeProvider.System;
        foreach (var engine in engines ?? [])
        {
            _engines.Add(engine.Name, engine);
        }
    }

    /// <summary>
    /// A fault to commit on purpose (<c>--simulate-fault wrong-output[:FRACTION]</c>): that fraction of the
    /// answers has its first output element changed. Null (the default) for an honest node.
    /// </summary>
    public FaultSimulation? Fault { get; init; }

    /// <summary>The first wait before an engine that did not answer is asked again; it doubles up to <see cref="EngineRetryMaxDelay"/>.</summary>
    public TimeSpan EngineRetryDelay { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>The longest wait between checks of an engine that does not answer.</summary>
    public TimeSpan EngineRetryMaxDelay { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>The replicas serving now, by id (the serve lease's id).</summary>
    public IReadOnlyCollection<string> ReadyReplicas => [.. _replicas.Where(r => r.Value.Ready).Select(r => r.Key)];

    /// <summary>The batcher's stats of a replica, or null when no such replica runs here.</summary>
    public BatcherStats? GetStats(string replicaId) => _replicas.TryGetValue(replicaId, out var replica) ? replica.Batcher?.Stats : null;

    /// <summary>
    /// Makes <paramref name="outbox"/> (a new session) the way out, and says again which replicas are
    /// ready: the coordinator forgot them when the previous session ended.
    /// </summary>
    public async ValueTask AttachAsync(INodeOutbox outbox, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(outbox);
        Volatile.Write(ref _outbox, outbox);
        foreach (var (id, replica) in _replicas)
        {
            if (replica.Ready)
            {
                await outbox.SendAsync(Status(id, ready: true, ""), cancellationToken);
            }
        }

        await SendCacheKeysAsync(outbox, cancellationToken);
    }

    /// <summary>The session of <paramref name="outbox"/> ended: replies are dropped (the coordinator has failed their calls).</summary>
    public void Detach(INodeOutbox outbox) => Interlocked.CompareExchange(ref _outbox, null, outbox);

    /// <summary>The node drains: every replica stops serving, and its lease fails retryably so that it is placed elsewhere.</summary>
    public void BeginDrain() => _draining.Cancel();

    /// <summary>
    /// Handles one call without waiting for it: answers at once when the replica is not here or the
    /// call is malformed, otherwise queues it and replies when its batch is done.
    /// </summary>
    public void Dispatch(InferCall call)
    {
        ArgumentNullException.ThrowIfNull(call);
        if (!_replicas.TryGetValue(call.ReplicaId, out var replica) || !replica.Ready)
        {
            Reply(Failure(call.CallId, InferErrorKind.Unavailable, $"replica {Quote(call.ReplicaId)} is not serving on this node"));
            return;
        }

        if (replica.Batcher is null)
        {
            Reply(Failure(call.CallId, InferErrorKind.BadRequest, "the replica serves an external engine: call it through the OpenAI-compatible API"));
            return;
        }

        CallItem item;
        try
        {
            item = ToItem(call, replica);
        }
        catch (ArgumentException ex)
        {
            Reply(Failure(call.CallId, InferErrorKind.BadRequest, ClientMessage(ex)));
            return;
        }

        DateTimeOffset? deadline = call.DeadlineUnixMs > 0 ? DateTimeOffset.FromUnixTimeMilliseconds(call.DeadlineUnixMs) : null;
        var pending = replica.Batcher.EnqueueAsync(item, deadline, CancellationToken.None);
        if (pending.IsCompleted)
        {
            Reply(ToReply(call.CallId, pending, Strikes()));
        }
        else
        {
            _ = pending.ContinueWith(
                static (task, state) =>
                {
                    var (host, callId) = ((InferenceHost, ulong))state!;
                    host.Reply(ToReply(callId, task, host.Strikes()));
                },
                (this, call.CallId),
                CancellationToken.None,
                TaskContinuationOptions.ExecuteSynchronously,
                TaskScheduler.Default);
        }
    }

    /// <summary>
    /// Starts one text generation without waiting for it: its chunks go out through the outbox as the
    /// tokens come. Refused at once (one chunk with the error) when the replica is not here, its model is
    /// not a byte-level language model, the call is malformed or the replica runs as many generations as
    /// its queue holds.
    /// </summary>
    public void Dispatch(GenerateCall call)
    {
        ArgumentNullException.ThrowIfNull(call);
        if (!_replicas.TryGetValue(call.ReplicaId, out var replica) || !replica.Ready)
        {
            Send(GenerateFailure(call.CallId, InferErrorKind.Unavailable, $"replica {Quote(call.ReplicaId)} is not serving on this node"));
            return;
        }

        if (replica.Model is null || !TextGenerator.CanGenerate(replica.Model))
        {
            Send(GenerateFailure(call.CallId, InferErrorKind.BadRequest, "the model is not a byte-level language model (INT64 tokens [-1, -1] in, logits [-1, -1, 256] out)"));
            return;
        }

        if (call.MaxTokens < 1 || !float.IsFinite(call.Temperature) || call.Temperature < 0 || !(call.TopP > 0 && call.TopP <= 1) || call.Stop.Count > 16)
        {
            Send(GenerateFailure(call.CallId, InferErrorKind.BadRequest, "max_tokens must be at least 1, the temperature 0 or more, top_p in (0, 1] and at most 16 stop sequences"));
            return;
        }

        if (Interlocked.Increment(ref replica.Generations) > replica.MaxGenerations)
        {
            Interlocked.Decrement(ref replica.Generations);
            Send(GenerateFailure(call.CallId, InferErrorKind.Overloaded, $"the replica runs {replica.MaxGenerations} generations already"));
            return;
        }

        var cancel = CancellationTokenSource.CreateLinkedTokenSource(replica.Stopping.Token);
        if (call.DeadlineUnixMs > 0)
        {
            var left = DateTimeOffset.FromUnixTimeMilliseconds(call.DeadlineUnixMs) - _time.GetUtcNow();
            cancel.CancelAfter(left > TimeSpan.Zero ? left : TimeSpan.Zero);
        }

        if (!_generations.TryAdd(call.CallId, cancel))
        {
            Interlocked.Decrement(ref replica.Generations);
            cancel.Dispose();
            Send(GenerateFailure(call.CallId, InferErrorKind.BadRequest, $"call {call.CallId} is running already"));
            return;
        }

        var settings = new GenerationSettings(call.Prompt.ToByteArray(), call.MaxTokens, call.Temperature, call.TopP, call.Seed, [.. call.Stop.Select(s => s.ToByteArray())]);
        _ = Task.Run(() => GenerateAsync(call.CallId, replica, settings, cancel), CancellationToken.None);
    }

    /// <summary>
    /// Passes one call to the replica's external engine without waiting for it: its chunks go out
    /// through the outbox as the engine answers. Refused at once (one chunk with the error) when the
    /// replica is not here or not an engine's, or runs as many calls as its queue holds.
    /// </summary>
    public void Dispatch(EngineCall call)
    {
        ArgumentNullException.ThrowIfNull(call);
        if (!_replicas.TryGetValue(call.ReplicaId, out var replica) || !replica.Ready)
        {
            Send(new NodeMessage { EngineChunk = ExternalEngine.Failure(call.CallId, InferErrorKind.Unavailable, $"replica {Quote(call.ReplicaId)} is not serving on this node") });
            return;
        }

        if (replica.Engine is not { } engine)
        {
            Send(new NodeMessage { EngineChunk = ExternalEngine.Failure(call.CallId, InferErrorKind.BadRequest, "the replica serves a registered model, not an external engine") });
            return;
        }

        if (Interlocked.Increment(ref replica.Generations) > replica.MaxGenerations)
        {
            Interlocked.Decrement(ref replica.Generations);
            Send(new NodeMessage { EngineChunk = ExternalEngine.Failure(call.CallId, InferErrorKind.Overloaded, $"the replica passes {replica.MaxGenerations} calls to its engine already") });
            return;
        }

        var cancel = CancellationTokenSource.CreateLinkedTokenSource(replica.Stopping.Token);
        if (call.DeadlineUnixMs > 0)
        {
            var left = DateTimeOffset.FromUnixTimeMilliseconds(call.DeadlineUnixMs) - _time.GetUtcNow();
            cancel.CancelAfter(left > TimeSpan.Zero ? left : TimeSpan.Zero);
        }

        if (!_generations.TryAdd(call.CallId, cancel))
        {
            Interlocked.Decrement(ref replica.Generations);
            cancel.Dispose();
            Send(new NodeMessage { EngineChunk = ExternalEngine.Failure(call.CallId, InferErrorKind.BadRequest, $"call {call.CallId} is running already") });
            return;
        }

        _ = Task.Run(() => ProxyAsync(call, replica, engine, cancel), CancellationToken.None);
    }

    /// <summary>The coordinator no longer wants a generation's (or an engine call's) chunks: it stops after the current token.</summary>
    public void Cancel(GenerateCancel cancel)
    {
        ArgumentNullException.ThrowIfNull(cancel);
        if (_generations.TryGetValue(cancel.CallId, out var source))
        {
            try
            {
                source.Cancel();
            }
            catch (ObjectDisposedException)
            {
                // It ended meanwhile.
            }
        }
    }

    /// <summary>
    /// Runs one replica until <paramref name="cancellationToken"/> fires (its lease was revoked) or the
    /// node drains: loads the model, serves, then stops, letting running batches finish and failing
    /// queued calls as unavailable so that the coordinator sends them elsewhere.
    /// </summary>
    /// <exception cref="OperationCanceledException">The lease was revoked.</exception>
    /// <exception cref="TaskFailedException">The model could not be loaded, or the node drains (retryable).</exception>
    public async Task RunReplicaAsync(string replicaId, ServeTaskInput input, string device, CancellationToken cancellationToken)
    {
        ArgumentException.ThrowIfNullOrEmpty(replicaId);
        ArgumentNullException.ThrowIfNull(input);
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, _draining.Token);
        if (stop.IsCancellationRequested)
        {
            cancellationToken.ThrowIfCancellationRequested();
            throw new TaskFailedException("the node is draining", retryable: true);
        }

        if (input.Engine is { } engineName)
        {
            await RunEngineReplicaAsync(replicaId, input, engineName, stop, cancellationToken);
            return;
        }

        if (input.Model is null)
        {
            throw new TaskFailedException("the serve task names neither a model nor an engine", retryable: false);
        }

        IServedModel model;
        try
        {
            model = await _models.AcquireAsync(input, device, stop.Token);
        }
        catch (OperationCanceledException) when (stop.IsCancellationRequested)
        {
            cancellationToken.ThrowIfCancellationRequested();
            throw new TaskFailedException("the node is draining", retryable: true);
        }
        catch (Exception ex) when (ex is InvalidDataException or ArgumentException or NotSupportedException)
        {
            throw new TaskFailedException($"model {input.Model.Name}:{input.Model.Version} cannot be served: {ex.Message}", retryable: false, ex);
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            throw new TaskFailedException($"model {input.Model.Name}:{input.Model.Version} could not be loaded: {ex.Message}", retryable: true, ex);
        }

        var maxBatch = Math.Max(1, input.MaxBatch);
        var replica = new Replica(model, maxBatch, TextGenerator.ContextOf(input.Model), Math.Max(1, input.MaxQueue));
        replica.Batcher = new DynamicBatcher<CallItem, CallOutcome>(
            (items, token) => BatchAssembler.RunAsync(model, items, token),
            new BatchingOptions
            {
                MaxBatchSize = maxBatch,
                // A reply is built and queued for the stream right where the batch ends.
                CompleteInline = true,
                MaxQueueDelay = TimeSpan.FromTicks(Math.Clamp(input.MaxDelayMicroseconds, 0, TimeSpan.TicksPerDay / 10) * 10),
                MaxQueueSize = Math.Max(1, input.MaxQueue),
                MaxConcurrency = 1,
            },
            item => Math.Min(item.Rows, maxBatch),
            _time,
            _logger);
        Log.ReplicaReady(_logger, replicaId, input.Deployment, input.Model.Name, input.Model.Version, device);
        await ServeAsync(replicaId, replica, stop, () => _models.Release(input, device), cancellationToken);
    }

    /// <summary>
    /// Runs one replica of an external engine: waits until the engine answers its model list with a
    /// model that fits (asking again with backoff, since an engine may still be loading), then serves.
    /// </summary>
    private async Task RunEngineReplicaAsync(string replicaId, ServeTaskInput input, string engineName, CancellationTokenSource stop, CancellationToken cancellationToken)
    {
        if (!_engines.TryGetValue(engineName, out var engine))
        {
            // Placement needs the node's engine label, so only a node that lost the engine (restarted without it) gets here.
            throw new TaskFailedException($"this node has no engine named '{engineName}' (emc node --engine {engineName}=URL)", retryable: true);
        }

        string engineModel;
        var delay = EngineRetryDelay;
        while (true)
        {
            try
            {
                engineModel = await engine.ResolveModelAsync(stop.Token);
                break;
            }
            catch (EngineException ex)
            {
                Log.EngineNotReady(_logger, replicaId, engineName, ex.Message, delay.TotalSeconds);
            }
            catch (OperationCanceledException) when (stop.IsCancellationRequested)
            {
                cancellationToken.ThrowIfCancellationRequested();
                throw new TaskFailedException("the node is draining", retryable: true);
            }

            try
            {
                await Task.Delay(delay, _time, stop.Token);
            }
            catch (OperationCanceledException)
            {
                cancellationToken.ThrowIfCancellationRequested();
                throw new TaskFailedException("the node is draining", retryable: true);
            }

            delay = TimeSpan.FromTicks(Math.Min(delay.Ticks * 2, EngineRetryMaxDelay.Ticks));
        }

        var replica = new Replica(null, 1, 0, Math.Max(1, input.MaxQueue)) { Engine = engine, EngineModel = engineModel };
        Log.EngineReplicaReady(_logger, replicaId, input.Deployment, engineName, engine.Endpoint.BaseUrl.ToString(), engineModel);
        await ServeAsync(replicaId, replica, stop, release: null, cancellationToken);
    }

    /// <summary>Makes a loaded replica ready, serves until the lease ends or the node drains, then stops it.</summary>
    private async Task ServeAsync(string replicaId, Replica replica, CancellationTokenSource stop, Action? release, CancellationToken cancellationToken)
    {
        _replicas[replicaId] = replica;
        try
        {
            replica.Ready = true;
            if (Volatile.Read(ref _outbox) is { } outbox)
            {
                await outbox.SendAsync(Status(replicaId, ready: true, ""), stop.Token);
                await SendCacheKeysAsync(outbox, stop.Token);
            }

            await Task.Delay(Timeout.Infinite, stop.Token);
        }
        catch (OperationCanceledException) when (stop.IsCancellationRequested)
        {
            // Revoked or draining: stop below.
        }
        finally
        {
            replica.Ready = false;
            await replica.Stopping.CancelAsync();
            _replicas.TryRemove(new KeyValuePair<string, Replica>(replicaId, replica));
            var reason = cancellationToken.IsCancellationRequested ? "the lease ended" : "the node is draining";
            if (Volatile.Read(ref _outbox) is { } outbox)
            {
                // Said before the queue is failed, so that the coordinator stops routing here first.
                try
                {
                    await outbox.SendAsync(Status(replicaId, ready: false, reason), CancellationToken.None).AsTask().WaitAsync(TimeSpan.FromSeconds(1), _time, CancellationToken.None);
                }
                catch (TimeoutException)
                {
                    // The stream is stuck; the coordinator finds out from the lease.
                }
            }

            if (replica.Batcher is { } batcher)
            {
                await batcher.DisposeAsync();
            }

            await replica.GenerationsDone();
            release?.Invoke();
            Log.ReplicaStopped(_logger, replicaId, reason);
        }

        cancellationToken.ThrowIfCancellationRequested();
        throw new TaskFailedException("the node is draining", retryable: true);
    }

    public async ValueTask DisposeAsync()
    {
        await _draining.CancelAsync();
        foreach (var replica in _replicas.Values)
        {
            if (replica.Batcher is { } batcher)
            {
                await batcher.DisposeAsync();
            }
        }

        _draining.Dispose();
    }

    private static CallItem ToItem(InferCall call, Replica replica)
    {
        var inputs = new InferTensor[call.Inputs.Count];
        var rows = -1L;
        var stackable = replica.Model!.Batchable;
        for (var i = 0; i < inputs.Length; i++)
        {
            var tensor = call.Inputs[i];
            if (tensor.Name.Length == 0 || tensor.Shape.Count > 32)
            {
                throw new ArgumentException("every input needs a name and at most 32 dimensions");
            }

            for (var j = 0; j < i; j++)
            {
                if (inputs[j].Name == tensor.Name)
                {
                    throw new ArgumentException($"input {Quote(tensor.Name)} is given more than once");
                }
            }

            var shape = tensor.Shape.ToArray();
            inputs[i] = ToTensor(tensor, shape);

            var first = shape.Length > 0 ? shape[0] : 1;
            stackable &= shape.Length > 0 && (rows < 0 || rows == first);
            rows = rows < 0 ? first : rows;
        }

        string[]? outputs = call.Outputs.Count > 0 ? [.. call.Outputs] : null;
        return new CallItem(call.CallId, inputs, outputs, stackable ? (int)Math.Clamp(rows, 1, int.MaxValue) : replica.MaxBatch, stackable);
    }

    /// <summary>A call's input as a tensor; its bytes are not copied (BYTES elements point into them).</summary>
    private static InferTensor ToTensor(InferTensorData tensor, long[] shape)
    {
        if (!TensorDatatypes.TryParse(tensor.Datatype, out var datatype))
        {
            throw new ArgumentException($"input {Quote(tensor.Name)} has the unknown datatype {Quote(tensor.Datatype)}");
        }

        try
        {
            return datatype == TensorDatatype.Bytes
                ? InferTensor.FromBinaryBytes(tensor.Name, shape, tensor.Raw.Memory)
                : InferTensor.FromRaw(tensor.Name, datatype, shape, tensor.Raw.Memory);
        }
        catch (ArgumentException ex)
        {
            throw new ArgumentException($"input {Quote(tensor.Name)}: {ClientMessage(ex)}", ex);
        }
    }

    /// <summary>Whether the simulated fault hits this answer.</summary>
    private bool Strikes() => Fault is { Mode: FaultMode.WrongOutput } fault && fault.Strikes(Random.Shared.NextDouble());

    private static InferReply ToReply(ulong callId, Task<CallOutcome> task, bool corrupt)
    {
        if (task.IsCompletedSuccessfully)
        {
            var outcome = task.Result;
            if (outcome.Error is null)
            {
                var reply = new InferReply { CallId = callId, Ok = true };
                long bytes = 0;
                foreach (var tensor in outcome.Outputs!)
                {
                    var raw = corrupt ? Corrupt(tensor) : tensor.ToBinary();
                    corrupt = false;
                    bytes += raw.Length;
                    var data = new InferTensorData { Name = tensor.Name, Datatype = tensor.Datatype.ToWireName(), Raw = UnsafeByteOperations.UnsafeWrap(raw) };
                    data.Shape.Add(tensor.Shape);
                    reply.Outputs.Add(data);
                }

                return bytes <= ServingLimits.MaxTensorBytes
                    ? reply
                    : Failure(callId, InferErrorKind.Internal, $"the outputs hold {bytes} bytes, more than the {ServingLimits.MaxTensorBytes} a reply may carry");
            }

            return outcome.Error is ArgumentException refused
                ? Failure(callId, InferErrorKind.BadRequest, ClientMessage(refused))
                : Failure(callId, InferErrorKind.Internal, $"the model failed: {outcome.Error.Message}");
        }

        var error = task.Exception?.InnerException;
        return error switch
        {
            OverloadedException => Failure(callId, InferErrorKind.Overloaded, error.Message),
            DeadlineExceededException => Failure(callId, InferErrorKind.DeadlineExceeded, error.Message),
            ShuttingDownException => Failure(callId, InferErrorKind.Unavailable, error.Message),
            ArgumentException refused => Failure(callId, InferErrorKind.BadRequest, ClientMessage(refused)),
            null => Failure(callId, InferErrorKind.Unavailable, "the call was cancelled"),
            _ => Failure(callId, InferErrorKind.Internal, $"the model failed: {error.Message}"),
        };
    }

    /// <summary>A simulated wrong answer: the tensor's first element changed (a float by +1, anything else by one bit).</summary>
    private static ReadOnlyMemory<byte> Corrupt(InferTensor tensor)
    {
        var raw = tensor.ToBinary().ToArray();
        if (tensor.Datatype == TensorDatatype.Fp32 && raw.Length >= 4)
        {
            var value = BinaryPrimitives.ReadSingleLittleEndian(raw);
            BinaryPrimitives.WriteSingleLittleEndian(raw, value + 1f);
        }
        else if (tensor.Datatype == TensorDatatype.Bytes && raw.Length > 4 && BinaryPrimitives.ReadUInt32LittleEndian(raw) > 0)
        {
            raw[4] ^= 1;
        }
        else if (raw.Length > 0)
        {
            raw[0] ^= 1;
        }

        return raw;
    }

    /// <summary>A refusal as the client reads it: without the " (Parameter 'inputs')" that names our code's parameter.</summary>
    private static string ClientMessage(ArgumentException refused) =>
        refused.ParamName is { } name ? refused.Message.Replace($" (Parameter '{name}')", "", StringComparison.Ordinal) : refused.Message;

    private static InferReply Failure(ulong callId, InferErrorKind kind, string error) =>
        new() { CallId = callId, Ok = false, ErrorKind = kind, Error = error.Length <= 1000 ? error : error[..1000] };

    private static NodeMessage Status(string replicaId, bool ready, string reason) =>
        new() { ReplicaStatus = new ReplicaStatus { ReplicaId = replicaId, Ready = ready, Reason = reason } };

    private static string Quote(string text) => text.Length <= 64 ? $"'{text}'" : $"'{text[..64]}…'";

    private void Reply(InferReply reply)
    {
        if (Volatile.Read(ref _outbox) is not { } outbox)
        {
            return;
        }

        var message = new NodeMessage { InferReply = reply };
        if (outbox is NodeOutbox direct && direct.TrySend(message))
        {
            return;
        }

        // The queue is full (or another kind of outbox): wait for room without holding up the caller.
        _ = outbox.SendAsync(message, CancellationToken.None).AsTask();
    }

    private async ValueTask SendCacheKeysAsync(INodeOutbox outbox, CancellationToken cancellationToken)
    {
        var update = new CacheUpdate();
        update.Keys.AddRange(_models.Keys.Take(Core.Scheduling.JobSpecValidator.MaxCacheKeys));
        await outbox.SendAsync(new NodeMessage { CacheUpdate = update }, cancellationToken);
    }

    private async Task GenerateAsync(ulong callId, Replica replica, GenerationSettings settings, CancellationTokenSource cancel)
    {
        var sent = false;
        try
        {
            await foreach (var step in TextGenerator.GenerateAsync(replica.Model!, replica.Context, settings, cancel.Token))
            {
                var chunk = new GenerateChunk { CallId = callId, Text = ByteString.CopyFrom(step.Text) };
                if (step.FinishReason is { } finish)
                {
                    chunk.FinishReason = finish;
                    chunk.PromptTokens = step.PromptTokens;
                    chunk.CompletionTokens = step.CompletionTokens;
                }

                if (!await SendAsync(new NodeMessage { GenerateChunk = chunk }, cancel.Token))
                {
                    // The session ended: the coordinator failed the call already.
                    return;
                }

                sent = true;
            }
        }
        catch (OperationCanceledException) when (cancel.IsCancellationRequested)
        {
            var reason = replica.Stopping.IsCancellationRequested ? "the replica stopped" : "cancelled or past its deadline";
            Send(GenerateFailure(callId, sent ? InferErrorKind.Internal : InferErrorKind.Unavailable, $"the generation stopped: {reason}"));
        }
        catch (ArgumentException ex)
        {
            Send(GenerateFailure(callId, InferErrorKind.BadRequest, ex.Message));
        }
        catch (Exception ex)
        {
            Log.GenerationFailed(_logger, callId, ex);
            Send(GenerateFailure(callId, InferErrorKind.Internal, $"the model failed: {ex.Message}"));
        }
        finally
        {
            _generations.TryRemove(new KeyValuePair<ulong, CancellationTokenSource>(callId, cancel));
            cancel.Dispose();
            replica.GenerationEnded();
        }
    }

    private async Task ProxyAsync(EngineCall call, Replica replica, ExternalEngine engine, CancellationTokenSource cancel)
    {
        var sent = false;
        try
        {
            await engine.ProxyAsync(
                call,
                replica.EngineModel!,
                async chunk =>
                {
                    var delivered = await SendAsync(new NodeMessage { EngineChunk = chunk }, cancel.Token);
                    sent |= delivered && chunk.Status != 0;
                    return delivered;
                },
                cancel.Token);
        }
        catch (OperationCanceledException) when (cancel.IsCancellationRequested)
        {
            var reason = replica.Stopping.IsCancellationRequested ? "the replica stopped" : "cancelled or past its deadline";
            Send(new NodeMessage { EngineChunk = ExternalEngine.Failure(call.CallId, sent ? InferErrorKind.Internal : InferErrorKind.Unavailable, $"the engine call stopped: {reason}") });
        }
        catch (Exception ex)
        {
            Log.EngineCallFailed(_logger, call.CallId, ex);
            Send(new NodeMessage { EngineChunk = ExternalEngine.Failure(call.CallId, sent ? InferErrorKind.Internal : InferErrorKind.Unavailable, $"the engine call failed: {ex.Message}") });
        }
        finally
        {
            _generations.TryRemove(new KeyValuePair<ulong, CancellationTokenSource>(call.CallId, cancel));
            cancel.Dispose();
            replica.GenerationEnded();
        }
    }

    private static NodeMessage GenerateFailure(ulong callId, InferErrorKind kind, string error) =>
        new() { GenerateChunk = new GenerateChunk { CallId = callId, ErrorKind = kind, Error = error.Length <= 1000 ? error : error[..1000] } };

    private void Send(NodeMessage message)
    {
        if (Volatile.Read(ref _outbox) is { } outbox)
        {
            _ = outbox.SendAsync(message, CancellationToken.None).AsTask();
        }
    }

    /// <summary>Sends in order (the caller awaits each); false when there is no session to send on.</summary>
    private async ValueTask<bool> SendAsync(NodeMessage message, CancellationToken cancellationToken)
    {
        if (Volatile.Read(ref _outbox) is not { } outbox)
        {
            return false;
        }

        await outbox.SendAsync(message, cancellationToken);
        return true;
    }

    private sealed class Replica(IServedModel? model, int maxBatch, int context, int maxGenerations)
    {
        private readonly TaskCompletionSource _idle = new(TaskCreationOptions.RunContinuationsAsynchronously);

        /// <summary>The model it serves; null for an engine's replica.</summary>
        public IServedModel? Model { get; } = model;

        /// <summary>The external engine it passes calls to; null for a model's replica.</summary>
        public ExternalEngine? Engine { get; init; }

        /// <summary>The engine's own model id, sent in place of the network's name.</summary>
        public string? EngineModel { get; init; }

        public int MaxBatch { get; } = maxBatch;

        /// <summary>The language model's window, in tokens.</summary>
        public int Context { get; } = context;

        /// <summary>Generations the replica runs at once at most (its queue size).</summary>
        public int MaxGenerations { get; } = maxGenerations;

        /// <summary>Fires when the replica stops: its generations end.</summary>
        public CancellationTokenSource Stopping { get; } = new();

        public int Generations;

        public void GenerationEnded()
        {
            if (Interlocked.Decrement(ref Generations) == 0 && Stopping.IsCancellationRequested)
            {
                _idle.TrySetResult();
            }
        }

        /// <summary>Completes when no generation runs any more (call after <see cref="Stopping"/> fired); at most 10 s.</summary>
        public Task GenerationsDone()
        {
            if (Volatile.Read(ref Generations) <= 0)
            {
                _idle.TrySetResult();
            }

            return _idle.Task.WaitAsync(TimeSpan.FromSeconds(10)).ContinueWith(static _ => { }, TaskScheduler.Default);
        }

        /// <summary>The model's batcher; null for an engine's replica.</summary>
        public DynamicBatcher<CallItem, CallOutcome>? Batcher { get; set; }

        public volatile bool Ready;
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 2200, Level = LogLevel.Information, Message = "Replica {ReplicaId} of deployment {Deployment} ({Model}:{Version} on {Device}) is ready.")]
        public static partial void ReplicaReady(ILogger logger, string replicaId, string deployment, string model, int version, string device);

        [LoggerMessage(EventId = 2201, Level = LogLevel.Information, Message = "Replica {ReplicaId} stopped: {Reason}.")]
        public static partial void ReplicaStopped(ILogger logger, string replicaId, string reason);

        [LoggerMessage(EventId = 2202, Level = LogLevel.Warning, Message = "Generation {CallId} failed.")]
        public static partial void GenerationFailed(ILogger logger, ulong callId, Exception exception);

        [LoggerMessage(EventId = 2203, Level = LogLevel.Information, Message = "Replica {ReplicaId} of deployment {Deployment} (engine {Engine} at {Url}, model '{EngineModel}') is ready.")]
        public static partial void EngineReplicaReady(ILogger logger, string replicaId, string deployment, string engine, string url, string engineModel);

        [LoggerMessage(EventId = 2204, Level = LogLevel.Warning, Message = "Replica {ReplicaId} waits for engine {Engine}: {Reason}. Asking again in {Seconds:0.#} s.")]
        public static partial void EngineNotReady(ILogger logger, string replicaId, string engine, string reason, double seconds);

        [LoggerMessage(EventId = 2205, Level = LogLevel.Warning, Message = "Engine call {CallId} failed.")]
        public static partial void EngineCallFailed(ILogger logger, ulong callId, Exception exception);
    }
}
