using System.Text.Json;
using System.Text.Json.Serialization;

namespace Emc.Core;

/// <summary>
/// The JSON conventions of EMC's API: camelCase names, enums as kebab-case strings, except tensor
/// datatypes, which keep the Open Inference Protocol's names ("FP32", "INT64").
/// </summary>
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
        // Before the general enum converter, which would otherwise write "fp32" and "u-int8".
        options.Converters.Add(new TensorDatatypeConverter());
        options.Converters.Add(new JsonStringEnumConverter(JsonNamingPolicy.KebabCaseLower));
    }

    /// <summary>An enum value as the API spells it: kebab-case ("in-progress").</summary>
    public static string EnumText<T>(T value)
        where T : struct, Enum => JsonNamingPolicy.KebabCaseLower.ConvertName(value.ToString());

    /// <summary>Parses an API spelling of an enum value (case-insensitive); null text gives null. False when it names no value.</summary>
    public static bool TryParseEnum<T>(string? text, out T? value)
        where T : struct, Enum
    {
        value = null;
        if (text is null)
        {
            return true;
        }

        foreach (var candidate in Enum.GetValues<T>())
        {
            if (string.Equals(EnumText(candidate), text, StringComparison.OrdinalIgnoreCase))
            {
                value = candidate;
                return true;
            }
        }

        return false;
    }

    private static JsonSerializerOptions Create(bool indented)
    {
        var options = new JsonSerializerOptions(JsonSerializerDefaults.Web) { WriteIndented = indented };
        Apply(options);
        options.MakeReadOnly(populateMissingResolver: true);
        return options;
    }

    /// <summary>Writes and reads <see cref="Inference.TensorDatatype"/> by its protocol name.</summary>
    private sealed class TensorDatatypeConverter : JsonConverter<Inference.TensorDatatype>
    {
        public override Inference.TensorDatatype Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options)
        {
            var text = reader.TokenType == JsonTokenType.String ? reader.GetString() : null;
            return Inference.TensorDatatypes.TryParse(text, out var datatype)
                ? datatype
                : throw new JsonException(Inference.TensorDatatypes.UnknownMessage(text));
        }

        public override void Write(Utf8JsonWriter writer, Inference.TensorDatatype value, JsonSerializerOptions options) =>
            writer.WriteStringValue(Inference.TensorDatatypes.ToWireName(value));
    }
}
