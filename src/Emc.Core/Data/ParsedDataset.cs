namespace Emc.Core.Data;

/// <summary>A validated dataset: its task and its splits ("train", "validation", "test", in that order).</summary>
public sealed class ParsedDataset
{
    public required DatasetTask Task { get; init; }

    /// <summary>The splits by name; see <see cref="DatasetSplits"/>.</summary>
    public required IReadOnlyDictionary<string, ParsedSplit> Splits { get; init; }
}

/// <summary>
/// One validated split in memory. A classification split holds <see cref="Count"/> examples of
/// <see cref="SampleShape"/>, each with a label in [0, <see cref="Classes"/>); a text split holds
/// <see cref="Count"/> bytes (empty sample shape, no labels, 256 classes).
/// </summary>
public sealed class ParsedSplit
{
    public required ElementType ElementType { get; init; }

    /// <summary>The shape of one example, such as [28, 28] or [784]; empty for text.</summary>
    public required int[] SampleShape { get; init; }

    /// <summary>Examples in the split (bytes for text).</summary>
    public required int Count { get; init; }

    /// <summary>The elements, example after example, little-endian: Count × <see cref="SampleBytes"/> bytes.</summary>
    public required byte[] Data { get; init; }

    /// <summary>One label per example; null for text.</summary>
    public long[]? Labels { get; init; }

    /// <summary>Classes of the dataset (the same in every split); 256 for text.</summary>
    public required int Classes { get; init; }

    /// <summary>Bytes of one example.</summary>
    public int SampleBytes => SampleShape.Aggregate(1, (product, dim) => product * dim) * ElementSizes.Of(ElementType);
}

/// <summary>The canonical split names and how a file name picks one.</summary>
public static class DatasetSplits
{
    public const string Train = "train";
    public const string Validation = "validation";
    public const string Test = "test";

    /// <summary>
    /// The split a file belongs to by its name: a name containing "test" or "t10k" goes to test; one with a
    /// word "val" or a word starting with "valid" to validation; anything else to train.
    /// Words are the runs of letters and digits of the name (the directory part is ignored).
    /// </summary>
    public static string FromFileName(string fileName) =>
        TryFromFileName(fileName, out var split) ? split : Train;

    /// <summary>The split a name states; false when it states none (no test, validation or train word).</summary>
    internal static bool TryFromFileName(string fileName, out string split)
    {
        ArgumentNullException.ThrowIfNull(fileName);
        var words = NameWords.Of(fileName);
        split = words.Any(word => word.Contains("test", StringComparison.Ordinal) || word.Contains("t10k", StringComparison.Ordinal))
            ? Test
            : words.Any(word => word == "val" || word.StartsWith("valid", StringComparison.Ordinal))
                ? Validation
                : Train;
        return split != Train || words.Any(word => word.Contains("train", StringComparison.Ordinal));
    }

    /// <summary>The order splits are listed in.</summary>
    internal static int Order(string split) => split switch
    {
        Train => 0,
        Validation => 1,
        _ => 2,
    };
}

/// <summary>The lower-case words (runs of letters and digits) of a file name.</summary>
internal static class NameWords
{
    public static string[] Of(string fileName)
    {
        var name = Path.GetFileName(fileName.Replace('\\', '/'));
        var words = new List<string>();
        var start = -1;
        for (var i = 0; i <= name.Length; i++)
        {
            var inWord = i < name.Length && char.IsLetterOrDigit(name[i]);
            if (inWord && start < 0)
            {
                start = i;
            }
            else if (!inWord && start >= 0)
            {
                words.Add(name[start..i].ToLowerInvariant());
                start = -1;
            }
        }

        return [.. words];
    }
}

/// <summary>Bytes per element.</summary>
internal static class ElementSizes
{
    public static int Of(ElementType type) => type switch
    {
        ElementType.U8 => 1,
        ElementType.F32 => 4,
        _ => throw new ArgumentOutOfRangeException(nameof(type), type, "Unknown element type."),
    };
}
