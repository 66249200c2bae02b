using System.Buffers;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
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
/// then <c>data: [DONE]</c>), as vLLM and OpenAI answer.
/// </summary>
/// <remarks>
/// Errors are <c>{"error": {"message", "type", "param", "code"}}</c>: 400 a malformed request, 404 an
/// unknown model, 413 too large a body, 429 every replica busy, 503 no replica ready or the model failed.
/// Nothing is written before the first token came, so an error before it still gets its status; an
/// error after it ends the stream with an error event and <c>[DONE]</c>. No API key is checked: any
/// Authorization header is accepted, as the coordinator's other APIs do today.
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
            foreach (var model in service.ListLanguageModels())
            {
                WriteModel(json, model, options);
            }

            json.WriteEndArray();
            json.WriteEndObject();
        });
    }

    private static Task GetModelAsync(HttpContext context)
    {
        var (service, options) = Services(context);
        var id = context.Request.RouteValues["id"] as string ?? "";
        var model = service.ListLanguageModels().FirstOrDefault(m => m.Name == id);
        return model is null
            ? WriteErrorAsync(context, NotFound(id))
            : WriteJsonAsync(context, 200, json => WriteModel(json, model, options));
    }

    private static async Task CompleteAsync(HttpContext context, bool chat)
    {
        var (service, options) = Services(context);
        var logger = context.RequestServices.GetRequiredService<ILoggerFactory>().CreateLogger(typeof(OpenAiApi));
        var time = context.RequestServices.GetRequiredService<TimeProvider>();
        var aborted = context.RequestAborted;
        OpenAiCompletionRequest request;
        GenerationResult result;
        try
        {
            request = OpenAiRequestParser.Parse(await ReadBodyAsync(context, options.MaxRequestBytes, aborted), chat, options);
            result = await service.GenerateAsync(request.Model, request.Generation, time.GetUtcNow() + options.Timeout, aborted);
        }
        catch (OpenAiException ex)
        {
            await WriteErrorAsync(context, ex);
            return;
        }
        catch (GenerationException ex)
        {
            await WriteErrorAsync(context, ex.Kind switch
            {
                GenerationFailure.BadRequest => OpenAiException.Invalid(ex.Message, "model"),
                GenerationFailure.NotFound => NotFound(null, ex.Message),
                GenerationFailure.Overloaded => new OpenAiException(429, "rate_limit_error", ex.Message, null, "overloaded"),
                GenerationFailure.DeadlineExceeded => new OpenAiException(503, "server_error", ex.Message, null, "timeout"),
                _ => new OpenAiException(503, "server_error", ex.Message, null, "service_unavailable"),
            });
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
            await StreamAsync(context, head, request, result, logger, aborted);
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

    private static async Task StreamAsync(HttpContext context, ChunkHead head, OpenAiCompletionRequest request, GenerationResult result, ILogger logger, CancellationToken aborted)
    {
        var response = context.Response;
        response.StatusCode = 200;
        response.ContentType = "text/event-stream; charset=utf-8";
        response.Headers.CacheControl = "no-cache";
        response.Headers["X-Accel-Buffering"] = "no";
        context.Features.Get<IHttpResponseBodyFeature>()?.DisableBuffering();
        var buffer = new ArrayBufferWriter<byte>(1024);
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
                await WriteEventAsync(response, buffer, json => WriteError(json, new OpenAiException(503, "server_error", ex.Message, null, "generation_failed")), aborted);
                await response.Body.WriteAsync("data: [DONE]\n\n"u8.ToArray(), aborted);
                await response.Body.FlushAsync(aborted);
                return;
            }

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
        }
    }

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
        json.WriteNumber("version", model.Version);
        json.WriteNumber("max_model_len", model.Context);
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
