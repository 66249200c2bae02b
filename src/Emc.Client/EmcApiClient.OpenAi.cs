using System.Net.Http.Headers;
using System.Runtime.CompilerServices;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Emc.Client;

/// <summary>One message of a chat: role "system", "user" or "assistant", and its text.</summary>
public sealed record ChatMessage(string Role, string Content);

/// <summary>Sampling settings of a chat request; null leaves the server's default.</summary>
public sealed record ChatSettings
{
    public int? MaxTokens { get; init; }

    public double? Temperature { get; init; }

    public double? TopP { get; init; }

    public long? Seed { get; init; }
}

/// <summary>A piece of a streamed answer: new text, then the finish reason and the usage at the end.</summary>
/// <param name="Text">New text; empty on the last pieces.</param>
/// <param name="FinishReason">"stop" or "length" once the text is complete.</param>
/// <param name="PromptTokens">On the usage piece, the prompt's tokens.</param>
/// <param name="CompletionTokens">On the usage piece, the tokens generated.</param>
public sealed record ChatDelta(string Text, string? FinishReason, int? PromptTokens, int? CompletionTokens);

/// <summary>The OpenAI-compatible API (/v1).</summary>
public sealed partial class EmcApiClient
{
    /// <summary>The ids of the language models <c>/v1/models</c> lists.</summary>
    public async Task<IReadOnlyList<string>> GetLanguageModelsAsync(CancellationToken cancellationToken)
    {
        using var response = await SendOpenAiAsync(HttpMethod.Get, "v1/models", null, HttpCompletionOption.ResponseContentRead, cancellationToken);
        var list = JsonNode.Parse(await response.Content.ReadAsStringAsync(cancellationToken))!;
        return [.. list["data"]!.AsArray().Select(m => (string)m!["id"]!)];
    }

    /// <summary>A whole chat completion (not streamed); returns the response body as it came.</summary>
    public async Task<string> ChatJsonAsync(string model, IReadOnlyList<ChatMessage> messages, ChatSettings? settings, CancellationToken cancellationToken)
    {
        using var response = await SendOpenAiAsync(HttpMethod.Post, "v1/chat/completions", ChatBody(model, messages, settings, stream: false), HttpCompletionOption.ResponseContentRead, cancellationToken);
        return await response.Content.ReadAsStringAsync(cancellationToken);
    }

    /// <summary>
    /// A streamed chat completion: yields the text as the server sends it (server-sent events), then a
    /// piece with the finish reason and one with the usage. An error, before or during the stream, is an
    /// <see cref="EmcApiException"/> with the server's message.
    /// </summary>
    public async IAsyncEnumerable<ChatDelta> StreamChatAsync(string model, IReadOnlyList<ChatMessage> messages, ChatSettings? settings, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        using var response = await SendOpenAiAsync(HttpMethod.Post, "v1/chat/completions", ChatBody(model, messages, settings, stream: true), HttpCompletionOption.ResponseHeadersRead, cancellationToken);
        using var reader = new StreamReader(await response.Content.ReadAsStreamAsync(cancellationToken), Encoding.UTF8);
        while (await reader.ReadLineAsync(cancellationToken) is { } line)
        {
            if (!line.StartsWith("data:", StringComparison.Ordinal))
            {
                continue;
            }

            var data = line[5..].Trim();
            if (data == "[DONE]")
            {
                yield break;
            }

            var chunk = JsonNode.Parse(data)!;
            if (chunk["error"] is { } error)
            {
                throw new EmcApiException(response.StatusCode, (string?)error["message"] ?? data);
            }

            if (chunk["choices"] is JsonArray { Count: > 0 } choices)
            {
                var choice = choices[0]!;
                var text = (string?)choice["delta"]?["content"] ?? "";
                var finish = (string?)choice["finish_reason"];
                if (text.Length > 0 || finish is not null)
                {
                    yield return new ChatDelta(text, finish, null, null);
                }
            }

            if (chunk["usage"] is JsonObject usage)
            {
                yield return new ChatDelta("", null, (int?)usage["prompt_tokens"], (int?)usage["completion_tokens"]);
            }
        }

        throw new EmcApiException(response.StatusCode, "the stream ended before [DONE]");
    }

    private static JsonObject ChatBody(string model, IReadOnlyList<ChatMessage> messages, ChatSettings? settings, bool stream)
    {
        ArgumentException.ThrowIfNullOrEmpty(model);
        ArgumentNullException.ThrowIfNull(messages);
        var body = new JsonObject
        {
            ["model"] = model,
            ["messages"] = new JsonArray([.. messages.Select(m => (JsonNode)new JsonObject { ["role"] = m.Role, ["content"] = m.Content })]),
            ["stream"] = stream,
        };
        if (stream)
        {
            body["stream_options"] = new JsonObject { ["include_usage"] = true };
        }

        if (settings?.MaxTokens is { } maxTokens)
        {
            body["max_tokens"] = maxTokens;
        }

        if (settings?.Temperature is { } temperature)
        {
            body["temperature"] = temperature;
        }

        if (settings?.TopP is { } topP)
        {
            body["top_p"] = topP;
        }

        if (settings?.Seed is { } seed)
        {
            body["seed"] = seed;
        }

        return body;
    }

    /// <summary>Sends a request to the OpenAI-compatible API; an error answer is thrown with the message of its <c>{"error": {...}}</c>.</summary>
    private async Task<HttpResponseMessage> SendOpenAiAsync(HttpMethod method, string path, JsonObject? body, HttpCompletionOption completion, CancellationToken cancellationToken)
    {
        using var request = new HttpRequestMessage(method, path);
        if (body is not null)
        {
            request.Content = new StringContent(body.ToJsonString(), Encoding.UTF8);
            request.Content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
        }

        HttpResponseMessage response;
        try
        {
            response = await http.SendAsync(request, completion, cancellationToken);
        }
        catch (HttpRequestException ex)
        {
            throw new EmcApiException(null, $"cannot reach the coordinator at {http.BaseAddress}: {ex.Message}");
        }

        if (response.IsSuccessStatusCode)
        {
            return response;
        }

        using (response)
        {
            var text = await response.Content.ReadAsStringAsync(cancellationToken);
            var message = text.Length > 200 ? text[..200] : text;
            try
            {
                if (JsonNode.Parse(text)?["error"]?["message"] is JsonValue value && value.TryGetValue<string>(out var m))
                {
                    message = m;
                }
            }
            catch (JsonException)
            {
                // Not JSON: the text is the message.
            }

            throw Failure(response, message);
        }
    }
}
