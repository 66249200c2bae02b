using System.Buffers;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Emc.Coordinator.Accounts;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Emc.Coordinator.Inference.OpenAi;

/// <summary>
/// The OpenAI-compatible API for the deployed byte-level language models, a thin adapter over
/// <see cref="DeploymentService.GenerateAsync"/>: <c>GET /v1/models</c>, <c>GET /v1/models/{id}</c>,
/// <c>POST /v1/completions</c> and <c>POST /v1/chat/completions</c>, with <c>stream: true</c> as
/// server-sent events (<c>data: {chunk}</c>, a usage chunk when <c>stream_options.include_usage</c>,
/// then <c>data: [DONE]</c>), as vLLM and OpenAI answer. A model that names an external engine's
/// deployment is passed through to the engine (<see cref="DeploymentService.CallEngineAsync"/>): its
/// answer comes back as the engine gave it, with the network's model name. Every answered request is
/// metered through <see cref="IUsageMeter"/>.
/// </summary>
/// <remarks>
/// Errors are <c>{"error": {"message", "type", "param", "code"}}</c>: 400 a malformed request, 404 an
/// unknown model, 413 too large a body, 429 every replica busy, 503 no replica ready or the model failed.
/// Nothing is written before the first token came, so an error before it still gets its status; an
/// error after it ends the stream with an error event and <c>[DONE]</c>. Every request needs an API key
/// (<c>Authorization: Bearer KEY</c>, what OpenAI's clients send): 401 without a valid one; a key sees and
/// calls only its own account's models (403 for another's; the operator's key all of them).
/// </remarks>
public static partial class OpenAiApi
{
    private const string JsonType = "application/json";

    /// <summary>Adds <see cref="OpenAiOptions"/>, validated at start.</summary>
    public static IServiceCollection AddOpenAiApi(this IServiceCollection services)
    {
        services.AddOptions<OpenAiOptions>().ValidateDataAnnotations().Validate(o => o.Timeout > TimeSpan.Zero && o.DefaultMaxTokens <= o.MaxTokensLimit, "Timeout must be positive and DefaultMaxTokens at most MaxTokensLimit.").ValidateOnStart();
        return services;
    }

    /// <summary>Maps the endpoints under <c>/v1</c>.</summary>
    public static IEndpointRouteBuilder MapOpenAiApi(this IEndpointRouteBuilder app)
    {
        ArgumentNullException.ThrowIfNull(app);
        var v1 = app.MapGroup("/v1");
        v1.MapGet("/models", ListModelsAsync);
        v1.MapGet("/models/{**id}", GetModelAsync);
        v1.MapPost("/completions", context => CompleteAsync(context, chat: false));
        v1.MapPost("/chat/completions", context => CompleteAsync(context, chat: true));
        return app;
    }

    private static Task ListModelsAsync(HttpContext context)
    {
        var (service, options) = Services(context);
        return WriteJsonAsync(context, 200, json =>
        {
            json.WriteStartObject();
            json.WriteString("object", "list");
            json.WriteStartArray("data");
            var access = context.RequestServices.GetRequiredService<InferenceAccess>();
            var caller = context.GetCaller();
            foreach (var model in service.ListLanguageModels())
            {
                if (access.MayList(caller, model.Name))
                {
                    WriteModel(json, model, options);
                }
            }

            json.WriteEndArray();
            json.WriteEndObject();
        });
    }

    private static async Task GetModelAsync(HttpContext context)
    {
        var (service, options) = Services(context);
        var id = context.Request.RouteValues["id"] as string ?? "";
        try
        {
            // Another account's model is refused whether or not it is ready to serve.
            await EnsureAccessAsync(context, id, context.RequestAborted);
        }
        catch (OpenAiException ex)
        {
            await WriteErrorAsync(context, ex);
            return;
        }

        var model = service.ListLanguageModels().FirstOrDefault(m => m.Name == id);
        await (model is null
            ? WriteErrorAsync(context, NotFound(id))
            : WriteJsonAsync(context, 200, json => WriteModel(json, model, options)));
    }

    private static async Task CompleteAsync(HttpContext context, bool chat)
    {
        var (service, options) = Services(context);
        var logger = context.RequestServices.GetRequiredService<ILoggerFactory>().CreateLogger(typeof(OpenAiApi));
        var time = context.RequestServices.GetRequiredService<TimeProvider>();
        var meter = context.RequestServices.GetRequiredService<IUsageMeter>();
        var aborted = context.RequestAborted;
        OpenAiCompletionRequest request;
        GenerationResult result;
        try
        {
            var body = await ReadBodyAsync(context, options.MaxRequestBytes, aborted);
            if (EngineTarget(body, service) is { } engine)
            {
                await EnsureAccessAsync(context, engine.Model, aborted);
                await PassThroughAsync(context, engine.Request, engine.Model, chat, options, meter, time, aborted);
                return;
            }

            request = OpenAiRequestParser.Parse(body, chat, options);
            await EnsureAccessAsync(context, request.Model, aborted);
            result = await service.GenerateAsync(request.Model, request.Generation, time.GetUtcNow() + options.Timeout, aborted);
        }
        catch (OpenAiException ex)
        {
            await WriteErrorAsync(context, ex);
            return;
        }
        catch (GenerationException ex)
        {
            await WriteErrorAsync(context, ToOpenAi(ex));
            return;
        }
        catch (OperationCanceledException) when (aborted.IsCancellationRequested)
        {
            return;
        }

        var id = (chat ? "chatcmpl-" : "cmpl-") + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(12));
        var created = time.GetUtcNow().ToUnixTimeSeconds();
        var head = new ChunkHead(id, chat ? "chat.completion.chunk" : "text_completion", created, request.Model, chat);
        if (request.Stream)
        {
            await StreamAsync(context, head, request, result, logger, meter, time, aborted);
            return;
        }

        var text = new StringBuilder();
        string? finish = null;
        var completionTokens = 0;
        try
        {
            await foreach (var delta in result.Deltas.ReadAllAsync(aborted))
            {
                text.Append(delta.Text);
                if (delta.FinishReason is not null)
                {
                    finish = delta.FinishReason;
                    completionTokens = delta.CompletionTokens;
                }
            }
        }
        catch (GenerationException ex)
        {
            await WriteErrorAsync(context, new OpenAiException(503, "server_error", ex.Message, null, "generation_failed"));
            return;
        }
        catch (OperationCanceledException) when (aborted.IsCancellationRequested)
        {
            return;
        }

        Log.Completed(logger, request.Model, result.ReplicaId, result.PromptTokens, completionTokens, finish ?? "stop");
        meter.Record(new MeteredRequest(result.DeploymentId, request.Model, result.ReplicaId, new TokenUsage(result.PromptTokens, completionTokens), time.GetUtcNow()));
        await WriteJsonAsync(context, 200, json =>
        {
            json.WriteStartObject();
            json.WriteString("id", id);
            json.WriteString("object", chat ? "chat.completion" : "text_completion");
            json.WriteNumber("created", created);
            json.WriteString("model", request.Model);
            json.WriteStartArray("choices");
            json.WriteStartObject();
            json.WriteNumber("index", 0);
            if (chat)
            {
                json.WriteStartObject("message");
                json.WriteString("role", "assistant");
                json.WriteString("content", text.ToString());
                json.WriteEndObject();
            }
            else
            {
                json.WriteString("text", text.ToString());
            }

            json.WriteNull("logprobs");
            json.WriteString("finish_reason", finish ?? "stop");
            json.WriteEndObject();
            json.WriteEndArray();
            WriteUsage(json, result.PromptTokens, completionTokens);
            json.WriteEndObject();
        });
    }

    private static async Task StreamAsync(HttpContext context, ChunkHead head, OpenAiCompletionRequest request, GenerationResult result, ILogger logger, IUsageMeter meter, TimeProvider time, CancellationToken aborted)
    {
        var response = context.Response;
        response.StatusCode = 200;
        response.ContentType = "text/event-stream; charset=utf-8";
        response.Headers.CacheControl = "no-cache";
        response.Headers["X-Accel-Buffering"] = "no";
        context.Features.Get<IHttpResponseBodyFeature>()?.DisableBuffering();
        var buffer = new ArrayBufferWriter<byte>(1024);

        // What the client was sent, metered even when the stream breaks off: a token is a byte.
        var sentTokens = 0;
        try
        {
            if (head.Chat)
            {
                // OpenAI's first chat chunk names the role and carries no text.
                await WriteEventAsync(response, buffer, json => WriteChunk(json, head, request.IncludeUsage, role: true, text: "", finish: null), aborted);
            }

            var completionTokens = 0;
            string? finish = null;
            try
            {
                await foreach (var delta in result.Deltas.ReadAllAsync(aborted))
                {
                    sentTokens += Encoding.UTF8.GetByteCount(delta.Text);
                    if (delta.FinishReason is not null)
                    {
                        finish = delta.FinishReason;
                        completionTokens = delta.CompletionTokens;
                        if (delta.Text.Length > 0)
                        {
                            await WriteEventAsync(response, buffer, json => WriteChunk(json, head, request.IncludeUsage, role: false, delta.Text, finish: null), aborted);
                        }

                        await WriteEventAsync(response, buffer, json => WriteChunk(json, head, request.IncludeUsage, role: false, text: null, finish), aborted);
                    }
                    else if (delta.Text.Length > 0)
                    {
                        await WriteEventAsync(response, buffer, json => WriteChunk(json, head, request.IncludeUsage, role: false, delta.Text, finish: null), aborted);
                    }
                }
            }
            catch (GenerationException ex)
            {
                // The status went out with the first event; the error is an event of its own, as vLLM sends it.
                meter.Record(new MeteredRequest(result.DeploymentId, request.Model, result.ReplicaId, new TokenUsage(result.PromptTokens, sentTokens), time.GetUtcNow()));
                sentTokens = -1;
                await WriteEventAsync(response, buffer, json => WriteError(json, new OpenAiException(503, "server_error", ex.Message, null, "generation_failed")), aborted);
                await response.Body.WriteAsync("data: [DONE]\n\n"u8.ToArray(), aborted);
                await response.Body.FlushAsync(aborted);
                return;
            }

            meter.Record(new MeteredRequest(result.DeploymentId, request.Model, result.ReplicaId, new TokenUsage(result.PromptTokens, completionTokens), time.GetUtcNow()));
            sentTokens = -1;

            if (request.IncludeUsage)
            {
                await WriteEventAsync(
                    response,
                    buffer,
                    json =>
                    {
                        WriteHead(json, head);
                        json.WriteStartArray("choices");
                        json.WriteEndArray();
                        WriteUsage(json, result.PromptTokens, completionTokens);
                        json.WriteEndObject();
                    },
                    aborted);
            }

            await response.Body.WriteAsync("data: [DONE]\n\n"u8.ToArray(), aborted);
            await response.Body.FlushAsync(aborted);
            Log.Completed(logger, request.Model, result.ReplicaId, result.PromptTokens, completionTokens, finish ?? "stop");
        }
        catch (OperationCanceledException) when (aborted.IsCancellationRequested)
        {
            // The client went away: the generation is cancelled on the node through the same token.
            if (sentTokens >= 0)
            {
                meter.Record(new MeteredRequest(result.DeploymentId, request.Model, result.ReplicaId, new TokenUsage(result.PromptTokens, sentTokens), time.GetUtcNow()));
            }
        }
    }

    /// <summary>The model a body names when it is an engine deployment's, with the body as a JSON object; null for everything else.</summary>
    private static (string Model, JsonObject Request)? EngineTarget(byte[] body, DeploymentService service)
    {
        try
        {
            return JsonNode.Parse(body, documentOptions: new JsonDocumentOptions { MaxDepth = 64 }) is JsonObject request
                && request["model"] is JsonValue model && model.TryGetValue<string>(out var name) && service.IsEngine(name)
                ? (name, request)
                : null;
        }
        catch (JsonException)
        {
            // The parser below says what is wrong with it.
            return null;
        }
    }

    /// <summary>
    /// Passes a request through to an external engine. The body goes as the client sent it, but for a
    /// stream <c>stream_options.include_usage</c> is set so that the answer can be metered; when the client
    /// did not ask for usage, its chunk and the <c>"usage"</c> fields are taken out again. The engine's 4xx
    /// reaches the client as it is; nothing is written before the engine answered, so a replica that fails
    /// first is replaced and a failure still gets its status.
    /// </summary>
    private static async Task PassThroughAsync(HttpContext context, JsonObject request, string model, bool chat, OpenAiOptions options, IUsageMeter meter, TimeProvider time, CancellationToken aborted)
    {
        var stream = request["stream"]?.GetValueKind() switch
        {
            null or JsonValueKind.Null or JsonValueKind.False => false,
            JsonValueKind.True => true,
            _ => throw OpenAiException.Invalid("stream must be a boolean.", "stream"),
        };
        var hideUsage = false;
        if (stream)
        {
            switch (request["stream_options"])
            {
                case null:
                    request["stream_options"] = new JsonObject { ["include_usage"] = true };
                    hideUsage = true;
                    break;
                case JsonObject streamOptions when streamOptions["include_usage"]?.GetValueKind() != JsonValueKind.True:
                    streamOptions["include_usage"] = true;
                    hideUsage = true;
                    break;
                default:
                    // Asked for already, or not an object: the engine answers that.
                    break;
            }
        }

        long? maxTokens = Whole(request["max_completion_tokens"]) ?? Whole(request["max_tokens"]);
        var choices = Math.Max(1, Math.Max(Whole(request["n"]) ?? 1, Whole(request["best_of"]) ?? 1));
        var engineRequest = new EngineRequest
        {
            Path = chat ? "chat/completions" : "completions",
            Body = JsonSerializer.SerializeToUtf8Bytes(request),
            Stream = stream,
            HideUsage = hideUsage,
            MaxTokens = maxTokens is { } max and > 0 ? Math.Min(max, int.MaxValue) * Math.Min(choices, 1024) : null,
        };

        EngineResponse answer;
        try
        {
            answer = await context.RequestServices.GetRequiredService<DeploymentService>().CallEngineAsync(model, engineRequest, time.GetUtcNow() + options.Timeout, aborted);
        }
        catch (GenerationException ex)
        {
            await WriteErrorAsync(context, ToOpenAi(ex));
            return;
        }

        if (answer.Body is { } whole)
        {
            context.Response.StatusCode = answer.Status;
            context.Response.ContentType = JsonType;
            context.Response.ContentLength = whole.Length;
            if (answer.Status == 200)
            {
                meter.Record(new MeteredRequest(answer.DeploymentId, model, answer.ReplicaId, answer.Usage, time.GetUtcNow()));
            }

            await context.Response.Body.WriteAsync(whole, aborted);
            return;
        }

        var response = context.Response;
        response.StatusCode = 200;
        response.ContentType = "text/event-stream; charset=utf-8";
        response.Headers.CacheControl = "no-cache";
        response.Headers["X-Accel-Buffering"] = "no";
        context.Features.Get<IHttpResponseBodyFeature>()?.DisableBuffering();
        var buffer = new ArrayBufferWriter<byte>(1024);
        var metered = false;
        void Meter()
        {
            if (!metered)
            {
                metered = true;
                meter.Record(new MeteredRequest(answer.DeploymentId, model, answer.ReplicaId, answer.Usage, time.GetUtcNow()));
            }
        }

        try
        {
            try
            {
                await foreach (var data in answer.Events!.ReadAllAsync(aborted))
                {
                    buffer.ResetWrittenCount();
                    buffer.Write("data: "u8);
                    buffer.Write(data);
                    buffer.Write("\n\n"u8);
                    await response.Body.WriteAsync(buffer.WrittenMemory, aborted);
                    await response.Body.FlushAsync(aborted);
                }
            }
            catch (GenerationException ex)
            {
                Meter();
                await WriteEventAsync(response, buffer, json => WriteError(json, new OpenAiException(503, "server_error", ex.Message, null, "engine_failed")), aborted);
                await response.Body.WriteAsync("data: [DONE]\n\n"u8.ToArray(), aborted);
                await response.Body.FlushAsync(aborted);
                return;
            }

            Meter();
            await response.Body.WriteAsync("data: [DONE]\n\n"u8.ToArray(), aborted);
            await response.Body.FlushAsync(aborted);
        }
        catch (OperationCanceledException) when (aborted.IsCancellationRequested)
        {
            // The client went away: the engine request is stopped on the node through the same token. The
            // engine worked for it, but its usage never came: an unmetered answer.
            Meter();
        }
    }

    private static long? Whole(JsonNode? node) =>
        node is JsonValue value && value.TryGetValue<long>(out var number) ? number : null;

    private static OpenAiException ToOpenAi(GenerationException ex) => ex.Kind switch
    {
        GenerationFailure.BadRequest => OpenAiException.Invalid(ex.Message, "model"),
        GenerationFailure.NotFound => NotFound(null, ex.Message),
        GenerationFailure.Overloaded => new OpenAiException(429, "rate_limit_error", ex.Message, null, "overloaded"),
        GenerationFailure.BudgetSpent => new OpenAiException(429, "insufficient_quota", ex.Message, null, "insufficient_quota"),
        GenerationFailure.DeadlineExceeded => new OpenAiException(503, "server_error", ex.Message, null, "timeout"),
        _ => new OpenAiException(503, "server_error", ex.Message, null, "service_unavailable"),
    };

    private static void WriteChunk(Utf8JsonWriter json, ChunkHead head, bool includeUsage, bool role, string? text, string? finish)
    {
        WriteHead(json, head);
        json.WriteStartArray("choices");
        json.WriteStartObject();
        json.WriteNumber("index", 0);
        if (head.Chat)
        {
            json.WriteStartObject("delta");
            if (role)
            {
                json.WriteString("role", "assistant");
            }

            if (text is not null)
            {
                json.WriteString("content", text);
            }

            json.WriteEndObject();
        }
        else
        {
            json.WriteString("text", text ?? "");
        }

        json.WriteNull("logprobs");
        if (finish is null)
        {
            json.WriteNull("finish_reason");
        }
        else
        {
            json.WriteString("finish_reason", finish);
        }

        json.WriteEndObject();
        json.WriteEndArray();
        if (includeUsage)
        {
            json.WriteNull("usage");
        }

        json.WriteEndObject();
    }

    private static void WriteHead(Utf8JsonWriter json, ChunkHead head)
    {
        json.WriteStartObject();
        json.WriteString("id", head.Id);
        json.WriteString("object", head.Object);
        json.WriteNumber("created", head.Created);
        json.WriteString("model", head.Model);
    }

    private static void WriteUsage(Utf8JsonWriter json, int prompt, int completion)
    {
        json.WriteStartObject("usage");
        json.WriteNumber("prompt_tokens", prompt);
        json.WriteNumber("completion_tokens", completion);
        json.WriteNumber("total_tokens", prompt + completion);
        json.WriteEndObject();
    }

    private static void WriteModel(Utf8JsonWriter json, LanguageModelInfo model, OpenAiOptions options)
    {
        json.WriteStartObject();
        json.WriteString("id", model.Name);
        json.WriteString("object", "model");
        json.WriteNumber("created", model.DeployedAt.ToUnixTimeSeconds());
        json.WriteString("owned_by", options.OwnedBy);
        if (model.Engine)
        {
            json.WriteBoolean("engine", true);
        }
        else
        {
            json.WriteNumber("version", model.Version);
            json.WriteNumber("max_model_len", model.Context);
        }

        json.WriteEndObject();
    }

    private static void WriteError(Utf8JsonWriter json, OpenAiException error)
    {
        json.WriteStartObject();
        json.WriteStartObject("error");
        json.WriteString("message", error.Message);
        json.WriteString("type", error.Type);
        if (error.Param is null)
        {
            json.WriteNull("param");
        }
        else
        {
            json.WriteString("param", error.Param);
        }

        if (error.Code is null)
        {
            json.WriteNull("code");
        }
        else
        {
            json.WriteString("code", error.Code);
        }

        json.WriteEndObject();
        json.WriteEndObject();
    }

    /// <summary>Throws unless the caller may call <paramref name="model"/> (a name, or NAME:VERSION): 404 for a name it may not know of, 403 for another account's.</summary>
    private static async ValueTask EnsureAccessAsync(HttpContext context, string model, CancellationToken cancellationToken)
    {
        var access = context.RequestServices.GetRequiredService<InferenceAccess>();
        var caller = context.GetCaller();
        var verdict = await access.CheckAsync(caller, model, cancellationToken);
        var colon = model.LastIndexOf(':');
        if (verdict == ModelAccess.Unknown && colon > 0)
        {
            verdict = await access.CheckAsync(caller, model[..colon], cancellationToken);
        }

        switch (verdict)
        {
            case ModelAccess.Unknown:
                throw NotFound(model);
            case ModelAccess.Forbidden:
                throw Forbidden(caller, model);
        }
    }

    private static OpenAiException Forbidden(Caller? caller, string model) =>
        new(403, "permission_error", caller is null ? AccessErrors.MissingKey : AccessProblems.Message(caller, $"the model '{model}'"), "model", "permission_denied");

    private static OpenAiException NotFound(string? model, string? message = null) =>
        new(404, "invalid_request_error", message ?? $"The model '{model}' does not exist or is not deployed.", "model", "model_not_found");

    private static Task WriteErrorAsync(HttpContext context, OpenAiException error) =>
        WriteJsonAsync(context, error.Status, json => WriteError(json, error));

    private static async Task WriteJsonAsync(HttpContext context, int status, Action<Utf8JsonWriter> write)
    {
        var buffer = new ArrayBufferWriter<byte>(512);
        using (var json = new Utf8JsonWriter(buffer))
        {
            write(json);
        }

        context.Response.StatusCode = status;
        context.Response.ContentType = JsonType;
        context.Response.ContentLength = buffer.WrittenCount;
        await context.Response.Body.WriteAsync(buffer.WrittenMemory, context.RequestAborted);
    }

    private static async Task WriteEventAsync(HttpResponse response, ArrayBufferWriter<byte> buffer, Action<Utf8JsonWriter> write, CancellationToken cancellationToken)
    {
        buffer.ResetWrittenCount();
        buffer.Write("data: "u8);
        using (var json = new Utf8JsonWriter(buffer))
        {
            write(json);
        }

        buffer.Write("\n\n"u8);
        await response.Body.WriteAsync(buffer.WrittenMemory, cancellationToken);
        await response.Body.FlushAsync(cancellationToken);
    }

    private static async Task<byte[]> ReadBodyAsync(HttpContext context, int limit, CancellationToken cancellationToken)
    {
        if (context.Request.ContentLength > limit)
        {
            throw new OpenAiException(413, "invalid_request_error", $"The request body is larger than {limit} bytes.", null, "request_too_large");
        }

        using var body = new MemoryStream();
        var buffer = new byte[16 * 1024];
        int read;
        while ((read = await context.Request.Body.ReadAsync(buffer, cancellationToken)) > 0)
        {
            if (body.Length + read > limit)
            {
                throw new OpenAiException(413, "invalid_request_error", $"The request body is larger than {limit} bytes.", null, "request_too_large");
            }

            body.Write(buffer, 0, read);
        }

        return body.ToArray();
    }

    private static (DeploymentService Service, OpenAiOptions Options) Services(HttpContext context) =>
        (context.RequestServices.GetRequiredService<DeploymentService>(), context.RequestServices.GetRequiredService<IOptions<OpenAiOptions>>().Value);

    private sealed record ChunkHead(string Id, string Object, long Created, string Model, bool Chat);

    private static partial class Log
    {
        [LoggerMessage(EventId = 2460, Level = LogLevel.Debug, Message = "OpenAI completion on {Model} (replica {ReplicaId}): {PromptTokens} prompt and {CompletionTokens} completion tokens, {FinishReason}.")]
        public static partial void Completed(ILogger logger, string model, string replicaId, int promptTokens, int completionTokens, string finishReason);
    }
}
