using System.Text.Json;
using System.Text.Json.Serialization;

namespace Emc.Core;

/// <summary>The JSON conventions of EMC's API: camelCase names, enums as kebab-case strings.</summary>
public static class EmcJson
{
    /// <summary>Options for reading and writing API documents.</summary>
    public static JsonSerializerOptions Options { get; } = Create(indented: false);

    /// <summary>The same, indented for people (`--json` output).</summary>
    public static JsonSerializerOptions Indented { get; } = Create(indented: true);

    /// <summary>Adds EMC's conventions to existing options (ASP.NET Core's, for example).</summary>
    public static void Apply(JsonSerializerOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.PropertyNamingPolicy = JsonNamingPolicy.CamelCase;
        options.PropertyNameCaseInsensitive = true;
        options.Converters.Add(new JsonStringEnumConverter(JsonNamingPolicy.KebabCaseLower));
    }

    private static JsonSerializerOptions Create(bool indented)
    {
        var options = new JsonSerializerOptions(JsonSerializerDefaults.Web) { WriteIndented = indented };
        Apply(options);
        options.MakeReadOnly(populateMissingResolver: true);
        return options;
    }
}
