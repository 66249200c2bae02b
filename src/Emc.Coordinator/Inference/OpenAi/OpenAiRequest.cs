using System.Security.Cryptography;
using System.Text;
using System.Text.Json;

namespace Emc.Coordinator.Inference.OpenAi;

/// <summary>A failure to answer in OpenAI's shape, <c>{"error": {"message", "type", "param", "code"}}</c>, with <see cref="Status"/>.</summary>
public sealed class OpenAiException : Exception
{
    public OpenAiException()
    {
    }

    public OpenAiException(string message)
        : base(message)
    {
    }

    public OpenAiException(string message, Exception innerException)
        : base(message, innerException)
    {
    }

    public OpenAiException(int status, string type, string message, string? param = null, string? code = null)
        : base(message)
    {
        Status = status;
        Type = type;
        Param = param;
        Code = code;
    }

    public int Status { get; } = 400;

    public string Type { get; } = "invalid_request_error";

    public string? Param { get; }

    public string? Code { get; }

    /// <summary>A 400 about <paramref name="param"/>.</summary>
    public static OpenAiException Invalid(string message, string? param = null, string? code = null) => new(400, "invalid_request_error", message, param, code);
}

/// <summary>A completion or chat completion request, parsed and checked.</summary>
/// <param name="Model">The model's name as asked.</param>
/// <param name="Generation">What to generate.</param>
/// <param name="Stream">Whether to answer with server-sent events.</param>
/// <param name="IncludeUsage">Whether a stream ends with a usage chunk (<c>stream_options.include_usage</c>).</param>
public sealed record OpenAiCompletionRequest(string Model, GenerationRequest Generation, bool Stream, bool IncludeUsage);

/// <summary>
/// Reads the body of <c>/v1/completions</c> and <c>/v1/chat/completions</c>. Every problem is an
/// <see cref="OpenAiException"/> 400 naming the parameter; fields this server does not use (penalties,
/// <c>logit_bias</c>, <c>user</c>, tools…) are ignored, ones whose meaning it cannot honour (<c>n</c> &gt; 1,
/// <c>best_of</c> &gt; 1, <c>logprobs</c>, <c>echo</c>, <c>suffix</c>) are refused.
/// </summary>
public static class OpenAiRequestParser
{
    /// <summary>Stop sequences a request may give, as OpenAI allows.</summary>
    public const int MaxStops = 4;

    /// <summary>Parses <paramref name="body"/>; <paramref name="chat"/> selects the chat completion's fields.</summary>
    public static OpenAiCompletionRequest Parse(ReadOnlySpan<byte> body, bool chat, OpenAiOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(body.ToArray(), new JsonDocumentOptions { MaxDepth = 32 });
        }
        catch (JsonException ex)
        {
            throw OpenAiException.Invalid($"The request body is not valid JSON: {ex.Message}");
        }

        using (document)
        {
            var root = document.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
            {
                throw OpenAiException.Invalid("The request body must be a JSON object.");
            }

            var model = root.TryGetProperty("model", out var m) && m.ValueKind == JsonValueKind.String && m.GetString() is { Length: > 0 } name
                ? name
                : throw OpenAiException.Invalid("You must provide a model parameter.", "model");
            var prompt = chat ? ParseMessages(root) : ParsePrompt(root);
            var maxTokens = Int(root, chat && root.TryGetProperty("max_completion_tokens", out _) ? "max_completion_tokens" : "max_tokens") ?? options.DefaultMaxTokens;
            if (maxTokens < 1 || maxTokens > options.MaxTokensLimit)
            {
                throw OpenAiException.Invalid($"max_tokens must be between 1 and {options.MaxTokensLimit}, not {maxTokens}.", "max_tokens");
            }

            var temperature = Number(root, "temperature") ?? 1;
            if (temperature is < 0 or > 2)
            {
                throw OpenAiException.Invalid($"temperature must be between 0 and 2, not {temperature}.", "temperature");
            }

            var topP = Number(root, "top_p") ?? 1;
            if (topP is < 0 or > 1)
            {
                throw OpenAiException.Invalid($"top_p must be between 0 and 1, not {topP}.", "top_p");
            }

            var n = Int(root, "n") ?? 1;
            if (n != 1)
            {
                throw OpenAiException.Invalid("Only n = 1 is supported: ask again for more choices.", "n");
            }

            if (!chat && (Int(root, "best_of") ?? 1) != 1)
            {
                throw OpenAiException.Invalid("Only best_of = 1 is supported.", "best_of");
            }

            Refuse(root, "logprobs", "Log probabilities are not supported.");
            Refuse(root, "top_logprobs", "Log probabilities are not supported.");
            if (!chat)
            {
                Refuse(root, "echo", "echo is not supported.");
                Refuse(root, "suffix", "suffix is not supported.");
            }

            var stream = Bool(root, "stream") ?? false;
            var includeUsage = false;
            if (root.TryGetProperty("stream_options", out var streamOptions) && streamOptions.ValueKind != JsonValueKind.Null)
            {
                if (streamOptions.ValueKind != JsonValueKind.Object)
                {
                    throw OpenAiException.Invalid("stream_options must be an object.", "stream_options");
                }

                includeUsage = Bool(streamOptions, "include_usage", "stream_options.include_usage") ?? false;
            }

            var stops = ParseStops(root);
            if (chat)
            {
                stops.Add(Encoding.UTF8.GetBytes(ChatTemplate.TurnStop));
            }

            ulong seed;
            if (root.TryGetProperty("seed", out var s) && s.ValueKind != JsonValueKind.Null)
            {
                seed = s.ValueKind == JsonValueKind.Number && s.TryGetInt64(out var value)
                    ? unchecked((ulong)value)
                    : throw OpenAiException.Invalid("seed must be an integer.", "seed");
            }
            else
            {
                seed = BitConverter.ToUInt64(RandomNumberGenerator.GetBytes(8));
            }

            return new OpenAiCompletionRequest(
                model,
                new GenerationRequest
                {
                    Prompt = prompt,
                    MaxTokens = maxTokens,
                    // top_p 0 keeps only the most likely token: greedy.
                    Temperature = topP == 0 ? 0 : (float)temperature,
                    TopP = topP == 0 ? 1 : (float)topP,
                    Seed = seed,
                    Stops = stops,
                },
                stream,
                includeUsage);
        }
    }

    private static byte[] ParsePrompt(JsonElement root)
    {
        if (!root.TryGetProperty("prompt", out var prompt) || prompt.ValueKind == JsonValueKind.Null)
        {
            throw OpenAiException.Invalid("You must provide a prompt.", "prompt");
        }

        if (prompt.ValueKind == JsonValueKind.String)
        {
            return Encoding.UTF8.GetBytes(prompt.GetString()!);
        }

        if (prompt.ValueKind == JsonValueKind.Array)
        {
            var length = prompt.GetArrayLength();
            if (length == 1 && prompt[0].ValueKind == JsonValueKind.String)
            {
                return Encoding.UTF8.GetBytes(prompt[0].GetString()!);
            }

            // Token ids: for a byte-level model a token is a byte.
            var tokens = new byte[length];
            var i = 0;
            foreach (var token in prompt.EnumerateArray())
            {
                if (token.ValueKind != JsonValueKind.Number || !token.TryGetInt32(out var id) || id is < 0 or > 255)
                {
                    throw OpenAiException.Invalid("prompt must be a string, an array of one string, or an array of token ids 0..255 (a token is a byte); batches of prompts are not supported.", "prompt");
                }

                tokens[i++] = (byte)id;
            }

            return tokens;
        }

        throw OpenAiException.Invalid("prompt must be a string, an array of one string, or an array of token ids.", "prompt");
    }

    private static byte[] ParseMessages(JsonElement root)
    {
        if (!root.TryGetProperty("messages", out var messages) || messages.ValueKind != JsonValueKind.Array || messages.GetArrayLength() == 0)
        {
            throw OpenAiException.Invalid("messages must be a non-empty array.", "messages");
        }

        var turns = new List<(string, string)>();
        var index = 0;
        foreach (var message in messages.EnumerateArray())
        {
            var param = $"messages[{index++}]";
            if (message.ValueKind != JsonValueKind.Object)
            {
                throw OpenAiException.Invalid($"{param} must be an object.", param);
            }

            var role = message.TryGetProperty("role", out var r) && r.ValueKind == JsonValueKind.String ? r.GetString()! : "";
            if (role is not ("system" or "developer" or "user" or "assistant"))
            {
                throw OpenAiException.Invalid($"{param}.role must be system, developer, user or assistant, not '{Clip(role)}'.", param + ".role");
            }

            turns.Add((role, Content(message, param)));
        }

        return Encoding.UTF8.GetBytes(ChatTemplate.Render(turns));
    }

    private static string Content(JsonElement message, string param)
    {
        if (!message.TryGetProperty("content", out var content) || content.ValueKind == JsonValueKind.Null)
        {
            return "";
        }

        if (content.ValueKind == JsonValueKind.String)
        {
            return content.GetString()!;
        }

        if (content.ValueKind == JsonValueKind.Array)
        {
            var text = new StringBuilder();
            foreach (var part in content.EnumerateArray())
            {
                if (part.ValueKind != JsonValueKind.Object || !part.TryGetProperty("type", out var type) || type.ValueEquals("text") is false
                    || !part.TryGetProperty("text", out var partText) || partText.ValueKind != JsonValueKind.String)
                {
                    throw OpenAiException.Invalid($"{param}.content: only text parts are supported.", param + ".content");
                }

                text.Append(partText.GetString());
            }

            return text.ToString();
        }

        throw OpenAiException.Invalid($"{param}.content must be a string or an array of text parts.", param + ".content");
    }

    private static List<byte[]> ParseStops(JsonElement root)
    {
        var stops = new List<byte[]>();
        if (!root.TryGetProperty("stop", out var stop) || stop.ValueKind == JsonValueKind.Null)
        {
            return stops;
        }

        if (stop.ValueKind == JsonValueKind.String)
        {
            AddStop(stops, stop.GetString()!);
            return stops;
        }

        if (stop.ValueKind != JsonValueKind.Array || stop.GetArrayLength() > MaxStops)
        {
            throw OpenAiException.Invalid($"stop must be a string or an array of at most {MaxStops} strings.", "stop");
        }

        foreach (var item in stop.EnumerateArray())
        {
            if (item.ValueKind != JsonValueKind.String)
            {
                throw OpenAiException.Invalid($"stop must be a string or an array of at most {MaxStops} strings.", "stop");
            }

            AddStop(stops, item.GetString()!);
        }

        return stops;
    }

    private static void AddStop(List<byte[]> stops, string stop)
    {
        if (stop.Length == 0 || stop.Length > 256)
        {
            throw OpenAiException.Invalid("A stop sequence must have 1 to 256 characters.", "stop");
        }

        stops.Add(Encoding.UTF8.GetBytes(stop));
    }

    private static int? Int(JsonElement root, string name)
    {
        if (!root.TryGetProperty(name, out var value) || value.ValueKind == JsonValueKind.Null)
        {
            return null;
        }

        return value.ValueKind == JsonValueKind.Number && value.TryGetInt32(out var number)
            ? number
            : throw OpenAiException.Invalid($"{name} must be an integer.", name);
    }

    private static double? Number(JsonElement root, string name)
    {
        if (!root.TryGetProperty(name, out var value) || value.ValueKind == JsonValueKind.Null)
        {
            return null;
        }

        return value.ValueKind == JsonValueKind.Number && value.TryGetDouble(out var number) && double.IsFinite(number)
            ? number
            : throw OpenAiException.Invalid($"{name} must be a number.", name);
    }

    private static bool? Bool(JsonElement root, string name, string? param = null) =>
        !root.TryGetProperty(name, out var value) || value.ValueKind == JsonValueKind.Null ? null
        : value.ValueKind is JsonValueKind.True or JsonValueKind.False ? value.GetBoolean()
        : throw OpenAiException.Invalid($"{param ?? name} must be a boolean.", param ?? name);

    private static void Refuse(JsonElement root, string name, string message)
    {
        if (root.TryGetProperty(name, out var value) && value.ValueKind is not (JsonValueKind.Null or JsonValueKind.False)
            && !(value.ValueKind == JsonValueKind.Number && value.TryGetInt32(out var zero) && zero == 0))
        {
            throw OpenAiException.Invalid(message, name);
        }
    }

    private static string Clip(string text) => text.Length <= 32 ? text : text[..32] + "…";
}
