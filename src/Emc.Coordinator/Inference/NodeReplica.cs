using System.Buffers.Binary;
using Emc.Contracts.Node.V1;
using Emc.Core.Inference;
using Google.Protobuf;

namespace Emc.Coordinator.Inference;

/// <summary>
/// One request as the router carries it to replicas: the parsed request, its deadline, the model it
/// was validated against and its input tensors already in wire form (built once, shared by retries).
/// </summary>
public sealed class RoutedCall
{
    /// <summary>Prepares <paramref name="request"/> (already validated against <paramref name="metadata"/>) for the wire.</summary>
    public RoutedCall(InferRequest request, ModelMetadata metadata, DateTimeOffset deadline)
    {
        ArgumentNullException.ThrowIfNull(request);
        ArgumentNullException.ThrowIfNull(metadata);
        Request = request;
        Metadata = metadata;
        Deadline = deadline;
        var inputs = new InferTensorData[request.Inputs.Count];
        for (var i = 0; i < inputs.Length; i++)
        {
            inputs[i] = InferenceWire.ToWire(request.Inputs[i]);
        }

        Inputs = inputs;
    }

    /// <summary>
    /// A text generation on a byte-level language model. Its replica streams deltas into
    /// <paramref name="sink"/> and holds its slot until the generation ends; <see cref="Request"/> is empty.
    /// </summary>
    internal RoutedCall(GenerationRequest generation, ModelMetadata metadata, DateTimeOffset deadline, GenerationSink sink)
    {
        ArgumentNullException.ThrowIfNull(generation);
        ArgumentNullException.ThrowIfNull(metadata);
        Request = EmptyRequest;
        Metadata = metadata;
        Deadline = deadline;
        Inputs = [];
        Generation = generation;
        Sink = sink;
    }

    /// <summary>
    /// A call passed through to an external engine. Its replica puts the engine's answer into
    /// <paramref name="sink"/> and holds its slot until the answer ends; <see cref="Request"/> is empty.
    /// </summary>
    internal RoutedCall(EngineRequest engine, ModelMetadata metadata, DateTimeOffset deadline, EngineSink sink)
    {
        ArgumentNullException.ThrowIfNull(engine);
        ArgumentNullException.ThrowIfNull(metadata);
        Request = EmptyRequest;
        Metadata = metadata;
        Deadline = deadline;
        Inputs = [];
        Engine = engine;
        EngineSink = sink;
    }

    private static InferRequest EmptyRequest { get; } = new() { Inputs = [] };

    /// <summary>The engine call, when this call is one (then <see cref="Request"/> is empty).</summary>
    public EngineRequest? Engine { get; }

    internal EngineSink? EngineSink { get; }

    public InferRequest Request { get; }

    /// <summary>The generation, when this call is one (then <see cref="Request"/> is empty).</summary>
    public GenerationRequest? Generation { get; }

    internal GenerationSink? Sink { get; }

    public ModelMetadata Metadata { get; }

    public DateTimeOffset Deadline { get; }

    internal InferTensorData[] Inputs { get; }
}

/// <summary>A replica on a node, reached through the <see cref="NodeCallHub"/>; its id is its serve lease's id.</summary>
public sealed class NodeReplica(string replicaId, string nodeId, int maxOngoingRequests, NodeCallHub hub) : IReplica<RoutedCall, InferResponse>
{
    private long _served;

    public string ReplicaId { get; } = replicaId;

    public string NodeId { get; } = nodeId;

    public int MaxOngoingRequests { get; } = maxOngoingRequests;

    /// <summary>Requests this replica answered successfully.</summary>
    public long Served => Interlocked.Read(ref _served);

    public async Task<InferResponse> SendAsync(RoutedCall request, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(request);
        if (request.Generation is { } generation)
        {
            await GenerateAsync(request, generation, request.Sink!, cancellationToken).ConfigureAwait(false);
            Interlocked.Increment(ref _served);
            return new InferResponse { ModelName = request.Metadata.Name, Outputs = [] };
        }

        if (request.Engine is { } engine)
        {
            await CallEngineAsync(request, engine, request.EngineSink!, cancellationToken).ConfigureAwait(false);
            Interlocked.Increment(ref _served);
            return new InferResponse { ModelName = request.Metadata.Name, Outputs = [] };
        }
        var call = new InferCall
        {
            ReplicaId = ReplicaId,
            DeadlineUnixMs = request.Deadline == DateTimeOffset.MaxValue ? 0 : request.Deadline.ToUnixTimeMilliseconds(),
        };
        call.Inputs.AddRange(request.Inputs);
        foreach (var output in request.Request.Outputs)
        {
            call.Outputs.Add(output.Name);
        }

        var reply = await hub.CallAsync(NodeId, call, cancellationToken).ConfigureAwait(false);
        if (!reply.Ok)
        {
            var error = reply.Error.Length <= 1000 ? reply.Error : reply.Error[..1000];
            if (reply.ErrorKind == InferErrorKind.BadRequest)
            {
                throw new ReplicaRejectedException(error);
            }

            throw new ReplicaUnavailableException($"replica {ReplicaId} on node {NodeId}: {KindText(reply.ErrorKind)}: {error}");
        }

        var outputs = InferenceWire.ReadOutputs(reply, request.Request, request.Metadata, out var problem);
        if (outputs is null)
        {
            // An untrusted node's malformed answer: another replica may do better.
            throw new ReplicaUnavailableException($"replica {ReplicaId} on node {NodeId} sent a malformed reply: {problem}") { Malformed = true };
        }

        Interlocked.Increment(ref _served);
        return new InferResponse
        {
            ModelName = request.Metadata.Name,
            ModelVersion = request.Metadata.Versions.Count > 0 ? request.Metadata.Versions[0] : null,
            Id = request.Request.Id,
            Outputs = outputs,
        };
    }

    /// <summary>
    /// Streams one generation into the sink. Until the first text arrives a failure throws as a plain
    /// call's would (the router retries an unavailable replica elsewhere); after it, a failure ends the
    /// sink with a <see cref="GenerationException"/> and returns, since the text already sent cannot be
    /// taken back. Usage counts come from the coordinator's own tally of the bytes received, bounded by
    /// what was asked for, not from the node's word alone.
    /// </summary>
    private async Task GenerateAsync(RoutedCall request, GenerationRequest generation, GenerationSink sink, CancellationToken cancellationToken)
    {
        var call = new GenerateCall
        {
            ReplicaId = ReplicaId,
            Prompt = UnsafeByteOperations.UnsafeWrap(generation.Prompt),
            MaxTokens = generation.MaxTokens,
            Temperature = generation.Temperature,
            TopP = generation.TopP,
            Seed = generation.Seed,
            DeadlineUnixMs = request.Deadline == DateTimeOffset.MaxValue ? 0 : request.Deadline.ToUnixTimeMilliseconds(),
        };
        foreach (var stop in generation.Stops)
        {
            call.Stop.Add(ByteString.CopyFrom(stop));
        }

        using var stream = hub.OpenGeneration(NodeId, call, generation.MaxTokens + 2);
        var received = 0;
        try
        {
            await foreach (var chunk in stream.Chunks.ReadAllAsync(cancellationToken).ConfigureAwait(false))
            {
                if (chunk.Error.Length > 0 || chunk.ErrorKind != InferErrorKind.Unspecified)
                {
                    var error = chunk.Error.Length <= 1000 ? chunk.Error : chunk.Error[..1000];
                    if (!sink.HasStarted)
                    {
                        if (chunk.ErrorKind == InferErrorKind.BadRequest)
                        {
                            throw new ReplicaRejectedException(error);
                        }

                        throw new ReplicaUnavailableException($"replica {ReplicaId} on node {NodeId}: {KindText(chunk.ErrorKind)}: {error}");
                    }

                    sink.Complete(new GenerationException(GenerationFailure.Unavailable, $"the replica failed during the generation: {error}"));
                    return;
                }

                received += chunk.Text.Length;
                var finish = chunk.FinishReason.Length == 0 ? null : chunk.FinishReason is "stop" or "length" ? chunk.FinishReason : "stop";
                if (received > generation.MaxTokens)
                {
                    // An untrusted node's answer beyond what was asked: end it here.
                    sink.Complete(new GenerationException(GenerationFailure.Unavailable, $"replica {ReplicaId} sent more than max_tokens"));
                    return;
                }

                var tokens = finish is null ? 0 : Math.Clamp(chunk.CompletionTokens, received, generation.MaxTokens);
                if (!sink.TryWrite(ReplicaId, new GenerationDelta(GenerationSink.Decode(chunk.Text.Span), finish, tokens)))
                {
                    sink.Complete(new GenerationException(GenerationFailure.Unavailable, $"replica {ReplicaId} sent more chunks than tokens"));
                    return;
                }

                if (finish is not null)
                {
                    sink.Complete(null);
                    return;
                }
            }

            throw new ReplicaUnavailableException($"replica {ReplicaId} on node {NodeId} ended the generation without a finish reason") { Malformed = true };
        }
        catch (ReplicaUnavailableException ex) when (sink.HasStarted)
        {
            sink.Complete(new GenerationException(GenerationFailure.Unavailable, $"the generation broke off: {ex.Message}"));
        }
    }

    /// <summary>
    /// Passes one call to the node's engine and puts its answer into the sink. Until the answer starts (a
    /// whole body is complete and checked, or a stream's first event is checked) a failure throws as a
    /// plain call's would, so the router retries an unavailable replica elsewhere; the engine's own 4xx
    /// answer starts it like a success, to reach the client as it is. After the start a failure ends the
    /// events with a <see cref="GenerationException"/>. Anything that is not a JSON object is the node's
    /// fault: the engine's words are never passed on unchecked.
    /// </summary>
    private async Task CallEngineAsync(RoutedCall request, EngineRequest engine, EngineSink sink, CancellationToken cancellationToken)
    {
        var call = new EngineCall
        {
            ReplicaId = ReplicaId,
            Path = engine.Path,
            Body = UnsafeByteOperations.UnsafeWrap(engine.Body),
            Stream = engine.Stream,
            DeadlineUnixMs = request.Deadline == DateTimeOffset.MaxValue ? 0 : request.Deadline.ToUnixTimeMilliseconds(),
        };
        var model = request.Metadata.Name;
        using var stream = hub.OpenEngineCall(NodeId, call);
        using var whole = new MemoryStream();
        var status = 0;
        try
        {
            await foreach (var chunk in stream.ReadAllAsync(cancellationToken).ConfigureAwait(false))
            {
                if (chunk.Error.Length > 0 || chunk.ErrorKind != InferErrorKind.Unspecified)
                {
                    var error = chunk.Error.Length <= 1000 ? chunk.Error : chunk.Error[..1000];
                    if (!sink.HasStarted)
                    {
                        if (chunk.ErrorKind == InferErrorKind.BadRequest)
                        {
                            throw new ReplicaRejectedException(error);
                        }

                        throw new ReplicaUnavailableException($"replica {ReplicaId} on node {NodeId}: {KindText(chunk.ErrorKind)}: {error}");
                    }

                    sink.Complete(new GenerationException(GenerationFailure.Unavailable, $"the engine failed during the answer: {error}"));
                    return;
                }

                if (status == 0)
                {
                    status = chunk.Status is >= 100 and <= 599 ? chunk.Status : throw Garbage($"its first chunk has no HTTP status ({chunk.Status})");
                }
                else if (chunk.Status != 0)
                {
                    throw Garbage("it sent a second status");
                }

                if (!engine.Stream || status != 200)
                {
                    if (whole.Length + chunk.Data.Length > Core.Inference.EngineLimits.MaxBodyBytes)
                    {
                        throw Garbage($"its answer is larger than {Core.Inference.EngineLimits.MaxBodyBytes} bytes");
                    }

                    chunk.Data.WriteTo(whole);
                    if (chunk.Last)
                    {
                        FinishWhole(whole.GetBuffer().AsSpan(0, (int)whole.Length), status, model, engine, sink);
                        return;
                    }

                    continue;
                }

                if (!chunk.Data.IsEmpty)
                {
                    var data = EnginePayloads.RewriteEvent(chunk.Data.Span, model, engine, out var usage, out var problem);
                    if (problem is not null)
                    {
                        throw Garbage($"it sent an event that is {problem}");
                    }

                    if (usage is not null)
                    {
                        sink.Usage = usage;
                    }

                    if (data is not null)
                    {
                        sink.Start(ReplicaId, 200, null);
                        await sink.WriteAsync(data, cancellationToken).ConfigureAwait(false);
                    }
                }

                if (chunk.Last)
                {
                    sink.Start(ReplicaId, 200, null);
                    sink.Complete(null);
                    return;
                }
            }

            throw new ReplicaUnavailableException($"replica {ReplicaId} on node {NodeId} ended the engine call without its last chunk");
        }
        catch (ReplicaUnavailableException ex) when (sink.HasStarted)
        {
            sink.Complete(new GenerationException(GenerationFailure.Unavailable, $"the answer broke off: {ex.Message}"));
        }
    }

    /// <summary>A whole answer: a 200 that is a JSON object, or an engine error for the client (4xx) or for a retry elsewhere.</summary>
    private void FinishWhole(ReadOnlySpan<byte> body, int status, string model, EngineRequest engine, EngineSink sink)
    {
        if (status == 200)
        {
            var answer = EnginePayloads.RewriteAnswer(body, model, engine, out var usage, out var problem) ?? throw Garbage($"its answer is {problem}");
            sink.Usage = usage;
            sink.Start(ReplicaId, 200, answer);
        }
        else if (status is >= 400 and < 500 and not 408 and not 429)
        {
            // The engine refused the request: its answer, for the client as it is.
            sink.Start(ReplicaId, status, EnginePayloads.ErrorBody(body, status));
        }
        else
        {
            throw new ReplicaUnavailableException($"replica {ReplicaId} on node {NodeId}: the engine answered {status}: {EnginePayloads.ErrorText(body)}");
        }

        sink.Complete(null);
    }

    private ReplicaUnavailableException Garbage(string what) => new($"replica {ReplicaId} on node {NodeId} sent a malformed engine answer: {what}");

    private static string KindText(InferErrorKind kind) => kind switch
    {
        InferErrorKind.Overloaded => "overloaded",
        InferErrorKind.Unavailable => "unavailable",
        InferErrorKind.DeadlineExceeded => "deadline exceeded",
        InferErrorKind.Internal => "model failure",
        _ => "error",
    };
}

/// <summary>Tensors between <see cref="InferTensor"/> and the node stream's <see cref="InferTensorData"/>.</summary>
public static class InferenceWire
{
    /// <summary>The wire form of a tensor; fixed-size data is wrapped, not copied.</summary>
    public static InferTensorData ToWire(InferTensor tensor)
    {
        ArgumentNullException.ThrowIfNull(tensor);
        var data = new InferTensorData { Name = tensor.Name, Datatype = tensor.Datatype.ToWireName(), Raw = UnsafeByteOperations.UnsafeWrap(tensor.ToBinary()) };
        data.Shape.Add(tensor.Shape);
        return data;
    }

    /// <summary>
    /// The outputs of a reply, checked against the model: exactly the outputs asked for (all the
    /// model's when none were), each once, with the model's datatype and rank, its fixed dimensions,
    /// and data that matches its shape. Null with <paramref name="problem"/> set when anything is off.
    /// </summary>
    public static IReadOnlyList<InferTensor>? ReadOutputs(InferReply reply, InferRequest request, ModelMetadata metadata, out string? problem)
    {
        ArgumentNullException.ThrowIfNull(reply);
        ArgumentNullException.ThrowIfNull(request);
        ArgumentNullException.ThrowIfNull(metadata);
        var expected = request.Outputs.Count > 0 ? request.Outputs.Count : metadata.Outputs.Count;
        if (reply.Outputs.Count != expected)
        {
            problem = $"{reply.Outputs.Count} outputs instead of {expected}";
            return null;
        }

        var outputs = new InferTensor[reply.Outputs.Count];
        for (var i = 0; i < outputs.Length; i++)
        {
            var wire = reply.Outputs[i];
            var declared = Find(metadata.Outputs, wire.Name);
            if (declared is null || (request.Outputs.Count > 0 && !request.Outputs.Any(o => o.Name == wire.Name)) || Array.FindIndex(outputs, 0, i, o => o.Name == wire.Name) >= 0)
            {
                problem = $"output '{Clip(wire.Name)}' was not asked for or came twice";
                return null;
            }

            if (!TensorDatatypes.TryParse(wire.Datatype, out var datatype) || datatype != declared.Datatype)
            {
                problem = $"output '{declared.Name}' is {Clip(wire.Datatype)}, the model declares {declared.Datatype.ToWireName()}";
                return null;
            }

            if (wire.Shape.Count != declared.Shape.Count)
            {
                problem = $"output '{declared.Name}' has rank {wire.Shape.Count}, the model declares {declared.Shape.Count}";
                return null;
            }

            for (var d = 0; d < wire.Shape.Count; d++)
            {
                if (wire.Shape[d] < 0 || (declared.Shape[d] >= 0 && declared.Shape[d] != wire.Shape[d]))
                {
                    problem = $"output '{declared.Name}' has shape [{string.Join(", ", wire.Shape)}], the model declares {TensorShape.Format(declared.Shape)}";
                    return null;
                }
            }

            try
            {
                outputs[i] = datatype == TensorDatatype.Bytes
                    ? InferTensor.FromBytes(declared.Name, wire.Shape.ToArray(), SplitBytes(wire.Raw.Memory))
                    : InferTensor.FromRaw(declared.Name, datatype, wire.Shape.ToArray(), wire.Raw.Memory);
            }
            catch (Exception ex) when (ex is ArgumentException or InvalidDataException or OverflowException)
            {
                problem = $"output '{declared.Name}': {ex.Message}";
                return null;
            }
        }

        problem = null;
        return outputs;
    }

    private static TensorMetadata? Find(IReadOnlyList<TensorMetadata> tensors, string name)
    {
        foreach (var tensor in tensors)
        {
            if (tensor.Name == name)
            {
                return tensor;
            }
        }

        return null;
    }

    private static List<ReadOnlyMemory<byte>> SplitBytes(ReadOnlyMemory<byte> raw)
    {
        var elements = new List<ReadOnlyMemory<byte>>();
        var offset = 0;
        while (offset < raw.Length)
        {
            if (raw.Length - offset < 4)
            {
                throw new InvalidDataException("a BYTES element's length is cut off");
            }

            var length = BinaryPrimitives.ReadInt32LittleEndian(raw.Span[offset..]);
            if (length < 0 || length > raw.Length - offset - 4)
            {
                throw new InvalidDataException("a BYTES element runs past the data");
            }

            elements.Add(raw.Slice(offset + 4, length));
            offset += 4 + length;
        }

        return elements;
    }

    private static string Clip(string text) => text.Length <= 64 ? text : text[..64] + "…";
}
