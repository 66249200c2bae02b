using System.Net;
using System.Net.Http.Headers;
using System.Text.Json;
using System.Text.Json.Nodes;
using Emc.Contracts.Node.V1;
using Emc.Core.Inference;
using Google.Protobuf;

namespace Emc.Node.Inference;

/// <summary>An external engine as the operator named it: <c>emc node --engine NAME=URL</c>.</summary>
/// <param name="Name">The model name the network serves it under.</param>
/// <param name="BaseUrl">The engine's OpenAI base URL, such as http://127.0.0.1:8000/v1 (no trailing '/').</param>
public sealed record EngineEndpoint(string Name, Uri BaseUrl);

/// <summary>An external engine could not be used: <see cref="Transient"/> when it did not answer (it may be starting), otherwise its answer does not fit.</summary>
public sealed class EngineException : Exception
{
    public EngineException()
    {
    }

    public EngineException(string message)
        : base(message)
    {
    }

    public EngineException(string message, Exception innerException)
        : base(message, innerException)
    {
    }

    public EngineException(string message, bool transient, Exception? innerException = null)
        : base(message, innerException)
    {
        Transient = transient;
    }

    /// <summary>The engine did not answer, or answered 5xx: trying later may work.</summary>
    public bool Transient { get; }
}

/// <summary>
/// An OpenAI-compatible server this node runs itself (vLLM, llama.cpp's server, …), served to the
/// network as a deployment. <see cref="ResolveModelAsync"/> asks it which model it serves;
/// <see cref="ProxyAsync"/> passes one call through to it and sends its answer back as
/// <see cref="EngineChunk"/>s: one per server-sent event of a stream, or the whole body in pieces.
/// </summary>
public sealed class ExternalEngine : IDisposable
{
    private static readonly TimeSpan ModelsTimeout = TimeSpan.FromSeconds(10);
    private readonly HttpClient _http;
    private readonly bool _ownsHttp;

    /// <param name="endpoint">Its name and base URL.</param>
    /// <param name="http">The client to reach it with; null makes one (with no overall timeout: calls end by their tokens).</param>
    public ExternalEngine(EngineEndpoint endpoint, HttpClient? http = null)
    {
        ArgumentNullException.ThrowIfNull(endpoint);
        Endpoint = endpoint;
        _ownsHttp = http is null;
        _http = http ?? new HttpClient(new SocketsHttpHandler
        {
            ConnectTimeout = TimeSpan.FromSeconds(10),
            PooledConnectionIdleTimeout = TimeSpan.FromMinutes(1),
            AutomaticDecompression = DecompressionMethods.None,
        })
        {
            Timeout = Timeout.InfiniteTimeSpan,
        };
    }

    public EngineEndpoint Endpoint { get; }

    public string Name => Endpoint.Name;

    /// <summary>
    /// Asks the engine (GET {URL}/models) which model id to send requests with: the one named like the
    /// engine, or the only one it lists.
    /// </summary>
    /// <exception cref="EngineException">The engine does not answer (transient), or lists no model that fits.</exception>
    public async Task<string> ResolveModelAsync(CancellationToken cancellationToken)
    {
        var url = Url("models");
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(ModelsTimeout);
        HttpResponseMessage response;
        try
        {
            response = await _http.GetAsync(url, HttpCompletionOption.ResponseHeadersRead, timeout.Token);
        }
        catch (HttpRequestException ex)
        {
            throw new EngineException($"engine '{Name}' at {Endpoint.BaseUrl} does not answer: {ex.Message}", transient: true, ex);
        }
        catch (OperationCanceledException ex) when (!cancellationToken.IsCancellationRequested)
        {
            throw new EngineException($"engine '{Name}' at {Endpoint.BaseUrl} did not answer GET {url} within {ModelsTimeout.TotalSeconds:0} s", transient: true, ex);
        }

        using (response)
        {
            var status = (int)response.StatusCode;
            if (status >= 500)
            {
                throw new EngineException($"engine '{Name}': GET {url} answered {status}", transient: true);
            }

            if (status != 200)
            {
                throw new EngineException($"engine '{Name}': GET {url} answered {status} {response.ReasonPhrase}; is {Endpoint.BaseUrl} its OpenAI base URL (such as http://HOST:PORT/v1)?", transient: false);
            }

            List<string> ids;
            try
            {
                var body = await ReadLimitedAsync(response.Content, 4 * 1024 * 1024, timeout.Token);
                ids = ParseModelIds(body);
            }
            catch (Exception ex) when (ex is JsonException or InvalidDataException or IOException)
            {
                throw new EngineException($"engine '{Name}': GET {url} is not an OpenAI model list: {ex.Message}", transient: ex is IOException, ex);
            }

            if (ids.Contains(Name, StringComparer.Ordinal))
            {
                return Name;
            }

            if (ids.Count == 1)
            {
                return ids[0];
            }

            throw new EngineException(
                ids.Count == 0
                    ? $"engine '{Name}' at {Endpoint.BaseUrl} lists no model"
                    : $"engine '{Name}' at {Endpoint.BaseUrl} lists {ids.Count} models ({string.Join(", ", ids.Take(8))}{(ids.Count > 8 ? ", …" : "")}) and none is named '{Name}': name the engine after the one to serve (--engine MODEL=URL)",
                transient: false);
        }
    }

    /// <summary>
    /// Passes <paramref name="call"/> to the engine with "model" set to <paramref name="engineModel"/>,
    /// and sends its answer through <paramref name="send"/> (which returns false when nobody listens any
    /// more). Returns when the answer is through, or after sending the chunk that says why not; throws
    /// <see cref="OperationCanceledException"/> when <paramref name="cancellationToken"/> fires (the
    /// engine request is aborted).
    /// </summary>
    public async Task ProxyAsync(EngineCall call, string engineModel, Func<EngineChunk, ValueTask<bool>> send, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(call);
        ArgumentNullException.ThrowIfNull(send);
        var id = call.CallId;
        if (!EngineLimits.IsPath(call.Path))
        {
            await send(Failure(id, InferErrorKind.BadRequest, $"'{Clip(call.Path)}' is not an engine path (chat/completions or completions)"));
            return;
        }

        byte[] body;
        try
        {
            if (call.Body.Length > EngineLimits.MaxRequestBytes || JsonNode.Parse(call.Body.Span, documentOptions: new JsonDocumentOptions { MaxDepth = 64 }) is not JsonObject request)
            {
                throw new JsonException("the request body must be a JSON object of at most " + EngineLimits.MaxRequestBytes + " bytes");
            }

            request["model"] = engineModel;
            body = JsonSerializer.SerializeToUtf8Bytes(request);
        }
        catch (JsonException ex)
        {
            await send(Failure(id, InferErrorKind.BadRequest, $"the request is not valid: {ex.Message}"));
            return;
        }

        using var message = new HttpRequestMessage(HttpMethod.Post, Url(call.Path)) { Content = new ByteArrayContent(body) };
        message.Content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
        if (call.Stream)
        {
            message.Headers.Accept.Add(new MediaTypeWithQualityHeaderValue("text/event-stream"));
        }

        HttpResponseMessage response;
        try
        {
            response = await _http.SendAsync(message, HttpCompletionOption.ResponseHeadersRead, cancellationToken);
        }
        catch (HttpRequestException ex) when (!cancellationToken.IsCancellationRequested)
        {
            await send(Failure(id, InferErrorKind.Unavailable, $"engine '{Name}' does not answer: {ex.Message}"));
            return;
        }

        using (response)
        {
            var status = (int)response.StatusCode;
            var sentAny = false;
            try
            {
                if (call.Stream && status == 200)
                {
                    if (response.Content.Headers.ContentType?.MediaType is not "text/event-stream")
                    {
                        await send(Failure(id, InferErrorKind.Internal, $"engine '{Name}' answered a streamed request with {response.Content.Headers.ContentType?.MediaType ?? "no content type"}, not text/event-stream"));
                        return;
                    }

                    var reader = new SseReader(await response.Content.ReadAsStreamAsync(cancellationToken), EngineLimits.MaxEventBytes);
                    while (await reader.ReadEventAsync(cancellationToken) is { } data)
                    {
                        var done = data.AsSpan().SequenceEqual("[DONE]"u8);
                        var chunk = new EngineChunk { CallId = id, Status = sentAny ? 0 : status, Last = done };
                        if (!done)
                        {
                            chunk.Data = UnsafeByteOperations.UnsafeWrap(data);
                        }

                        if (!await send(chunk))
                        {
                            return;
                        }

                        sentAny = true;
                        if (done)
                        {
                            return;
                        }
                    }

                    await send(Failure(id, sentAny ? InferErrorKind.Internal : InferErrorKind.Unavailable, $"engine '{Name}' ended its stream without [DONE]"));
                    return;
                }

                // A whole answer, or an error the engine answered instead of a stream.
                var whole = await ReadLimitedAsync(response.Content, EngineLimits.MaxBodyBytes, cancellationToken);
                for (var offset = 0; offset < whole.Length || offset == 0; offset += EngineLimits.PieceBytes)
                {
                    var length = Math.Min(EngineLimits.PieceBytes, whole.Length - offset);
                    var chunk = new EngineChunk
                    {
                        CallId = id,
                        Status = offset == 0 ? status : 0,
                        Data = UnsafeByteOperations.UnsafeWrap(whole.AsMemory(offset, length)),
                        Last = offset + length >= whole.Length,
                    };
                    if (!await send(chunk))
                    {
                        return;
                    }

                    sentAny = true;
                    if (whole.Length == 0)
                    {
                        break;
                    }
                }
            }
            catch (Exception ex) when (cancellationToken.IsCancellationRequested && ex is not OperationCanceledException)
            {
                // Aborting the request may surface as a broken read rather than a cancellation.
                throw new OperationCanceledException("the engine call was cancelled", ex, cancellationToken);
            }
            catch (Exception ex) when (ex is HttpRequestException or IOException or InvalidDataException)
            {
                await send(Failure(id, sentAny ? InferErrorKind.Internal : InferErrorKind.Unavailable, $"engine '{Name}' failed mid-answer: {ex.Message}"));
            }
        }
    }

    public void Dispose()
    {
        if (_ownsHttp)
        {
            _http.Dispose();
        }
    }

    /// <summary>The ids of an OpenAI model list, <c>{"data": [{"id": …}, …]}</c>.</summary>
    internal static List<string> ParseModelIds(ReadOnlySpan<byte> body)
    {
        using var document = JsonDocument.Parse(body.ToArray());
        if (document.RootElement.ValueKind != JsonValueKind.Object
            || !document.RootElement.TryGetProperty("data", out var data)
            || data.ValueKind != JsonValueKind.Array)
        {
            throw new JsonException("expected {\"data\": [{\"id\": …}]}");
        }

        var ids = new List<string>();
        foreach (var model in data.EnumerateArray())
        {
            if (model.ValueKind == JsonValueKind.Object && model.TryGetProperty("id", out var id) && id.ValueKind == JsonValueKind.String && id.GetString() is { Length: > 0 } text)
            {
                ids.Add(text);
            }
        }

        return ids;
    }

    internal static EngineChunk Failure(ulong callId, InferErrorKind kind, string error) =>
        new() { CallId = callId, Last = true, ErrorKind = kind, Error = error.Length <= 1000 ? error : error[..1000] };

    private Uri Url(string path) => new($"{Endpoint.BaseUrl.AbsoluteUri.TrimEnd('/')}/{path}");

    private static async Task<byte[]> ReadLimitedAsync(HttpContent content, int limit, CancellationToken cancellationToken)
    {
        if (content.Headers.ContentLength > limit)
        {
            throw new InvalidDataException($"the engine's answer is larger than {limit} bytes");
        }

        await using var stream = await content.ReadAsStreamAsync(cancellationToken);
        using var body = new MemoryStream();
        var buffer = new byte[16 * 1024];
        int read;
        while ((read = await stream.ReadAsync(buffer, cancellationToken)) > 0)
        {
            if (body.Length + read > limit)
            {
                throw new InvalidDataException($"the engine's answer is larger than {limit} bytes");
            }

            body.Write(buffer, 0, read);
        }

        return body.ToArray();
    }

    private static string Clip(string text) => text.Length <= 64 ? text : text[..64] + "…";
}
