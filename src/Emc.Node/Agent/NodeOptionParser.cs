using System.Globalization;
using Emc.Core.Inference;
using Emc.Core.Scheduling;
using Emc.Node.Inference;

namespace Emc.Node.Agent;

/// <summary>
/// Reads and checks the operator's placement labels ("key=value") and asking price. Errors are
/// <see cref="ArgumentException"/>s whose message can be shown as it is.
/// </summary>
public static class NodeOptionParser
{
    /// <summary>The most labels a node may carry; as many as a job may ask for.</summary>
    public const int MaxLabels = JobSpecValidator.MaxLabels;

    /// <summary>The longest label key or value.</summary>
    public const int MaxLabelPartChars = 64;

    private const string LabelPartRule = "1-64 characters of letters, digits, '.', '_', '-' and ':'";

    /// <summary>Parses "key=value" pairs, such as ["region=eu", "tier:gpu=a100"]; each key once.</summary>
    public static IReadOnlyDictionary<string, string> ParseLabels(IEnumerable<string> pairs)
    {
        ArgumentNullException.ThrowIfNull(pairs);
        var labels = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var pair in pairs)
        {
            var equals = pair?.IndexOf('=', StringComparison.Ordinal) ?? -1;
            if (equals < 0)
            {
                throw new ArgumentException($"label '{pair}' must be key=value, such as region=eu.");
            }

            var key = pair![..equals];
            var value = pair[(equals + 1)..];
            CheckLabel(key, value);
            if (!labels.TryAdd(key, value))
            {
                throw new ArgumentException($"label key '{key}' is given more than once.");
            }
        }

        if (labels.Count > MaxLabels)
        {
            throw new ArgumentException($"a node may carry at most {MaxLabels} labels, not {labels.Count}.");
        }

        return labels;
    }

    /// <summary>Checks labels set in code, by the same rules as <see cref="ParseLabels"/>.</summary>
    public static void ValidateLabels(IReadOnlyDictionary<string, string> labels)
    {
        ArgumentNullException.ThrowIfNull(labels);
        if (labels.Count > MaxLabels)
        {
            throw new ArgumentException($"a node may carry at most {MaxLabels} labels, not {labels.Count}.");
        }

        foreach (var (key, value) in labels)
        {
            CheckLabel(key, value);
        }
    }

    /// <summary>Whether <paramref name="text"/> may be a label key or value.</summary>
    public static bool IsLabelPart(string? text) =>
        text is { Length: > 0 and <= MaxLabelPartChars } && text.All(c => char.IsAsciiLetterOrDigit(c) || c is '.' or '_' or '-' or ':');

    /// <summary>
    /// Parses external engines, "NAME=URL" each, such as "tiny=http://127.0.0.1:8080/v1": NAME is the
    /// model name the network serves the engine under, URL its OpenAI base URL (http or https).
    /// </summary>
    public static IReadOnlyList<EngineEndpoint> ParseEngines(IEnumerable<string> pairs)
    {
        ArgumentNullException.ThrowIfNull(pairs);
        var engines = new List<EngineEndpoint>();
        foreach (var pair in pairs)
        {
            var equals = pair?.IndexOf('=', StringComparison.Ordinal) ?? -1;
            if (equals < 0)
            {
                throw new ArgumentException($"engine '{Shorten(pair)}' must be NAME=URL, such as tiny=http://127.0.0.1:8080/v1.");
            }

            engines.Add(new EngineEndpoint(pair![..equals], ParseEngineUrl(pair[..equals], pair[(equals + 1)..])));
        }

        ValidateEngines(engines);
        return engines;
    }

    /// <summary>Checks engines set in code, by the same rules as <see cref="ParseEngines"/>.</summary>
    public static void ValidateEngines(IReadOnlyList<EngineEndpoint> engines)
    {
        ArgumentNullException.ThrowIfNull(engines);
        var names = new HashSet<string>(StringComparer.Ordinal);
        foreach (var engine in engines)
        {
            ArgumentNullException.ThrowIfNull(engine);
            if (!EngineNames.IsValid(engine.Name))
            {
                throw new ArgumentException($"engine name '{Shorten(engine.Name)}' is not valid: {EngineNames.Rule}.");
            }

            ParseEngineUrl(engine.Name, engine.BaseUrl?.OriginalString);
            if (!names.Add(engine.Name))
            {
                throw new ArgumentException($"engine '{engine.Name}' is given more than once.");
            }
        }
    }

    /// <summary>Parses an asking price: a whole number of ledger micro-units per device-hour, 0 or more.</summary>
    public static long ParsePrice(string? text)
    {
        if (!long.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var price))
        {
            throw new ArgumentException($"price '{text}' must be a whole number from 0 to {long.MaxValue} (ledger micro-units per device-hour).");
        }

        return price;
    }

    private static Uri ParseEngineUrl(string name, string? text)
    {
        if (!Uri.TryCreate(text, UriKind.Absolute, out var url) || url.Scheme is not ("http" or "https") || string.IsNullOrEmpty(url.Host))
        {
            throw new ArgumentException($"engine '{Shorten(name)}': '{Shorten(text)}' is not an http or https URL; give the engine's OpenAI base URL, such as http://127.0.0.1:8080/v1.");
        }

        if (url.Query.Length > 0 || url.Fragment.Length > 0 || url.UserInfo.Length > 0)
        {
            throw new ArgumentException($"engine '{Shorten(name)}': the URL must be a plain base URL, without user, query or fragment.");
        }

        return url;
    }

    private static void CheckLabel(string key, string value)
    {
        if (!IsLabelPart(key))
        {
            throw new ArgumentException($"label key '{Shorten(key)}' must be {LabelPartRule}.");
        }

        if (!IsLabelPart(value))
        {
            throw new ArgumentException($"label value '{Shorten(value)}' (key '{key}') must be {LabelPartRule}.");
        }
    }

    private static string Shorten(string? text) =>
        text is null ? "" : text.Length <= MaxLabelPartChars + 8 ? text : string.Concat(text.AsSpan(0, MaxLabelPartChars), "...");
}
