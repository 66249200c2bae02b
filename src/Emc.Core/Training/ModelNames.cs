using System.Globalization;

namespace Emc.Core.Training;

/// <summary>
/// How registered models are named and referred to. A name is 1 to <see cref="MaxLength"/>
/// letters, digits, '.', '_' or '-'; a reference is NAME or NAME:VERSION. Names may not hold
/// ':' so that a reference has exactly one reading.
/// </summary>
public static class ModelNames
{
    /// <summary>The longest model name (the registry's column width).</summary>
    public const int MaxLength = 64;

    /// <summary>What <see cref="IsValid"/> accepts, for error messages.</summary>
    public const string Rule = "a model name is 1 to 64 letters, digits, '.', '_' or '-' (':' separates NAME:VERSION)";

    /// <summary>True for a valid model name.</summary>
    public static bool IsValid(string? name)
    {
        if (string.IsNullOrEmpty(name) || name.Length > MaxLength)
        {
            return false;
        }

        foreach (var c in name)
        {
            if (!(char.IsAsciiLetterOrDigit(c) || c is '.' or '_' or '-'))
            {
                return false;
            }
        }

        return true;
    }

    /// <summary>Parses NAME or NAME:VERSION (VERSION a positive integer); false when the text is neither.</summary>
    public static bool TryParseReference(string? text, out string name, out int? version)
    {
        name = "";
        version = null;
        if (text is null)
        {
            return false;
        }

        var colon = text.IndexOf(':', StringComparison.Ordinal);
        var candidate = colon < 0 ? text : text[..colon];
        if (!IsValid(candidate))
        {
            return false;
        }

        if (colon >= 0)
        {
            if (!int.TryParse(text.AsSpan(colon + 1), NumberStyles.None, CultureInfo.InvariantCulture, out var parsed) || parsed < 1)
            {
                return false;
            }

            version = parsed;
        }

        name = candidate;
        return true;
    }
}
