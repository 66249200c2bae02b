namespace Emc.Core.Scheduling;

/// <summary>Checks of what a node says about itself for placement: labels and cached content keys.</summary>
public static class PlacementAttributes
{
    public const int MaxLabels = 32;
    public const int MaxCacheKeys = 4096;
    public const int MaxCacheKeyChars = 128;

    /// <summary>A problem with the labels, or null: at most 32 pairs of 1–64 characters of letters, digits and . _ - :</summary>
    public static string? CheckLabels(IReadOnlyDictionary<string, string> labels)
    {
        if (labels.Count > MaxLabels)
        {
            return $"a node has at most {MaxLabels} labels";
        }

        foreach (var (key, value) in labels)
        {
            if (!JobSpecValidator.IsIdentifier(key) || !JobSpecValidator.IsIdentifier(value))
            {
                return "labels are key=value with 1 to 64 letters, digits, '.', '_', '-' or ':' on each side";
            }
        }

        return null;
    }

    /// <summary>A problem with the cache keys, or null.</summary>
    public static string? CheckCacheKeys(IReadOnlyCollection<string> keys)
    {
        if (keys.Count > MaxCacheKeys)
        {
            return $"a node reports at most {MaxCacheKeys} cached content keys";
        }

        foreach (var key in keys)
        {
            if (string.IsNullOrEmpty(key) || key.Length > MaxCacheKeyChars || key.Any(c => !(char.IsAsciiLetterOrDigit(c) || c is '.' or '_' or '-' or ':')))
            {
                return $"cache keys are 1 to {MaxCacheKeyChars} letters, digits, '.', '_', '-' or ':'";
            }
        }

        return null;
    }
}
