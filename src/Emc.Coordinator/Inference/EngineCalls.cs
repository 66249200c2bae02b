using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Threading.Channels;

namespace Emc.Coordinator.Inference;

/// <summary>An OpenAI request passed through to an external engine.</summary>
public sealed record EngineRequest
{
    /// <summary>"chat/completions" or "completions".</summary>
    public required string Path { get; init; }

    /// <summary>The client's JSON body (a JSON object), with <c>stream_options.include_usage</c> set when streamed.</summary>
    public required byte[] Body { get; init; }

    /// <summary>Whether the body asks for server-sent events.</summary>
    public bool Stream { get; init; }

    /// <summary>
    /// The client did not ask for usage and the coordinator did, to meter the answer: the usage-only chunk
    /// is dropped and the other chunks lose their <c>"usage"</c>, so the client sees what it asked for.
    /// </summary>
    public bool HideUsage { get; init; }

    /// <summary>The most completion tokens the client asked for (<c>max_tokens</c>), bounding the usage it is metered for; null when unbounded.</summary>
    public long? MaxTokens { get; init; }
}

/// <summary>Tokens an answer used, as its <c>usage</c> said.</summary>
public readonly record struct TokenUsage(long PromptTokens, long CompletionTokens);

/// <summary>
/// An engine's answer once it started: its status, then either the whole body (<see cref="Body"/>) or the
/// events of a stream (<see cref="Events"/>, each a JSON object to send as <c>data: …</c>). The events
/// complete after the engine's <c>[DONE]</c>, or with a <see cref="GenerationException"/> when the answer
/// broke off. <see cref="Usage"/> is known once the answer is through.
/// </summary>
public sealed class EngineResponse
{
    private readonly EngineSink _sink;

    internal EngineResponse(EngineSink sink, EngineStart start, string deploymentId)
    {
        _sink = sink;
        Status = start.Status;
        Body = start.Body;
        ReplicaId = start.ReplicaId;
        DeploymentId = deploymentId;
        Events = start.Body is null ? sink.Reader : null;
    }

    /// <summary>The engine's HTTP status: 200, or a 4xx of its own that the client gets as it is.</summary>
    public int Status { get; }

    /// <summary>The whole answer (not streamed, or an error), model field rewritten; null for a stream.</summary>
    public byte[]? Body { get; }

    /// <summary>A stream's events, model field rewritten; null for a whole answer.</summary>
    public ChannelReader<byte[]>? Events { get; }

    /// <summary>The usage the engine reported, once the answer is through; null when it reported none.</summary>
    public TokenUsage? Usage => _sink.Usage;

    /// <summary>The replica that answered.</summary>
    public string ReplicaId { get; }

    /// <summary>The deployment that answered.</summary>
    public string DeploymentId { get; }
}

/// <summary>The first thing a replica got back from its engine: its status and, for a whole answer, the body.</summary>
internal sealed record EngineStart(string ReplicaId, int Status, byte[]? Body);

/// <summary>Where a replica puts an engine's answer; starting it (the status, or the first event) commits the call to that replica.</summary>
internal sealed class EngineSink
{
    private readonly Channel<byte[]> _events = Channel.CreateBounded<byte[]>(new BoundedChannelOptions(64)
    {
        SingleReader = true,
        SingleWriter = true,
        FullMode = BoundedChannelFullMode.Wait,
    });

    private readonly TaskCompletionSource<EngineStart> _started = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private TokenUsage? _usage;

    public ChannelReader<byte[]> Reader => _events.Reader;

    public Task<EngineStart> Started => _started.Task;

    public bool HasStarted => _started.Task.IsCompleted;

    public TokenUsage? Usage
    {
        get
        {
            lock (_events)
            {
                return _usage;
            }
        }

        set
        {
            lock (_events)
            {
                _usage = value;
            }
        }
    }

    public void Start(string replicaId, int status, byte[]? body) => _started.TrySetResult(new EngineStart(replicaId, status, body));

    public ValueTask WriteAsync(byte[] data, CancellationToken cancellationToken) => _events.Writer.WriteAsync(data, cancellationToken);

    public void Complete(Exception? error) => _events.Writer.TryComplete(error);
}

/// <summary>
/// Checks and rewrites what an engine answers before a client sees it: every answer and event must be a
/// JSON object (an untrusted node's garbage is refused, never passed on); the <c>model</c> field is set to
/// the network's name; <c>usage</c> is read for metering and, when the client did not ask for it, removed.
/// </summary>
public static class EnginePayloads
{
    private static readonly JsonDocumentOptions Parsing = new() { MaxDepth = 64 };

    /// <summary>A whole answer with its model set to <paramref name="model"/>; null (with <paramref name="problem"/>) when it is not a JSON object.</summary>
    public static byte[]? RewriteAnswer(ReadOnlySpan<byte> body, string model, EngineRequest request, out TokenUsage? usage, out string? problem)
    {
        ArgumentNullException.ThrowIfNull(request);
        usage = null;
        if (Parse(body, out problem) is not { } answer)
        {
            return null;
        }

        if (answer.ContainsKey("model"))
        {
            answer["model"] = model;
        }

        usage = ReadUsage(answer, request);
        return JsonSerializer.SerializeToUtf8Bytes(answer);
    }

    /// <summary>
    /// One streamed event with its model set to <paramref name="model"/>; null with <paramref name="problem"/>
    /// when it is not a JSON object, null without when it is the usage-only chunk the client did not ask for.
    /// An error event (<c>{"error": …}</c>) passes as it came.
    /// </summary>
    public static byte[]? RewriteEvent(ReadOnlySpan<byte> data, string model, EngineRequest request, out TokenUsage? usage, out string? problem)
    {
        ArgumentNullException.ThrowIfNull(request);
        usage = null;
        if (Parse(data, out problem) is not { } chunk)
        {
            return null;
        }

        if (chunk.ContainsKey("error"))
        {
            return data.ToArray();
        }

        if (chunk.ContainsKey("model"))
        {
            chunk["model"] = model;
        }

        usage = ReadUsage(chunk, request);
        if (request.HideUsage && chunk.ContainsKey("usage"))
        {
            if (usage is not null && chunk["choices"] is JsonArray { Count: 0 })
            {
                return null;
            }

            chunk.Remove("usage");
        }

        return JsonSerializer.SerializeToUtf8Bytes(chunk);
    }

    /// <summary>
    /// An engine's own error answer as the client gets it: its body when that is OpenAI's error shape,
    /// otherwise that shape around the text it sent.
    /// </summary>
    public static byte[] ErrorBody(ReadOnlySpan<byte> body, int status)
    {
        if (Parse(body, out _) is { } error && error["error"] is JsonObject)
        {
            return body.ToArray();
        }

        var message = new JsonObject
        {
            ["error"] = new JsonObject
            {
                ["message"] = $"The engine answered {status}: {ErrorText(body)}",
                ["type"] = status >= 500 ? "server_error" : "invalid_request_error",
                ["param"] = null,
                ["code"] = null,
            },
        };
        return JsonSerializer.SerializeToUtf8Bytes(message);
    }

    /// <summary>The message of an error answer, for logs and for the client when every replica failed.</summary>
    public static string ErrorText(ReadOnlySpan<byte> body)
    {
        if (Parse(body, out _) is { } error && error["error"] is JsonObject inner && inner["message"] is JsonValue value && value.TryGetValue<string>(out var text))
        {
            return Clip(text);
        }

        if (Parse(body, out _) is { } other && other["error"] is JsonValue plain && plain.TryGetValue<string>(out var message))
        {
            return Clip(message);
        }

        var raw = Encoding.UTF8.GetString(body[..Math.Min(body.Length, 400)]);
        return raw.Length == 0 ? "(no body)" : Clip(raw);
    }

    private static JsonObject? Parse(ReadOnlySpan<byte> data, out string? problem)
    {
        try
        {
            if (JsonNode.Parse(data, documentOptions: Parsing) is JsonObject value)
            {
                problem = null;
                return value;
            }

            problem = "not a JSON object";
        }
        catch (JsonException ex)
        {
            problem = $"not JSON: {Clip(ex.Message)}";
        }

        return null;
    }

    /// <summary>
    /// The usage of an answer or chunk, or null when it has none. Counts that are not whole numbers of
    /// 0 or more are no usage; completion tokens are bounded by what the client asked for.
    /// </summary>
    private static TokenUsage? ReadUsage(JsonObject value, EngineRequest request)
    {
        if (value["usage"] is not JsonObject usage
            || usage["prompt_tokens"] is not JsonValue prompt || !prompt.TryGetValue<long>(out var promptTokens) || promptTokens < 0
            || usage["completion_tokens"] is not JsonValue completion || !completion.TryGetValue<long>(out var completionTokens) || completionTokens < 0)
        {
            return null;
        }

        // A prompt token holds at least one byte of the request (byte fallback), so more tokens than bytes is a lie.
        promptTokens = Math.Min(promptTokens, request.Body.Length);
        if (request.MaxTokens is { } max)
        {
            completionTokens = Math.Min(completionTokens, max);
        }

        return new TokenUsage(promptTokens, completionTokens);
    }

    private static string Clip(string text) => text.Length <= 300 ? text : text[..300] + "…";
}
