namespace Emc.Core.Data;

/// <summary>How <see cref="DatasetParser"/> reads uploads. <see cref="Validate"/> runs at the start of every parse.</summary>
public sealed class DatasetParseOptions
{
    /// <summary>The most classes a classification dataset may have: 100000.</summary>
    public const int MaxClasses = 100_000;

    /// <summary>The CSV column that holds the integer class labels. Default "label".</summary>
    public string LabelColumn { get; set; } = "label";

    /// <summary>
    /// The number of classes, when the user states it: every label must then lie in [0, Classes).
    /// Default null: the largest label plus one.
    /// </summary>
    public int? Classes { get; set; }

    /// <summary>
    /// The most bytes one uploaded file may decompress to (for an .npz, all its entries together), so a
    /// gzip or zip bomb fails early instead of exhausting memory. Default 2 GiB.
    /// </summary>
    public long MaxDecompressedBytes { get; set; } = 2L * 1024 * 1024 * 1024;

    /// <summary>Throws <see cref="ArgumentException"/> when a setting is out of range.</summary>
    public void Validate()
    {
        if (string.IsNullOrWhiteSpace(LabelColumn))
        {
            throw new ArgumentException("The label column needs a name.", nameof(LabelColumn));
        }

        if (Classes is < 1 or > MaxClasses)
        {
            throw new ArgumentOutOfRangeException(nameof(Classes), Classes, $"Classes must be between 1 and {MaxClasses}.");
        }

        if (MaxDecompressedBytes < 1)
        {
            throw new ArgumentOutOfRangeException(nameof(MaxDecompressedBytes), MaxDecompressedBytes, "The decompressed size limit must be positive.");
        }
    }
}
