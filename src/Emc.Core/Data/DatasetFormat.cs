namespace Emc.Core.Data;

/// <summary>The file formats `emc data upload --format` accepts.</summary>
public enum DatasetFormat
{
    /// <summary>IDX files as MNIST and Fashion-MNIST ship them: one file of images, one of labels per split.</summary>
    Idx,

    /// <summary>NumPy .npy arrays, one per file, named like x_train.npy and y_train.npy.</summary>
    Npy,

    /// <summary>NumPy .npz archives of .npy arrays named like x_train and y_train (the Keras convention).</summary>
    Npz,

    /// <summary>CSV with a header row, one integer label column and numeric feature columns.</summary>
    Csv,

    /// <summary>Plain text for byte-level language modelling.</summary>
    Text,
}

/// <summary>What a dataset is for.</summary>
public enum DatasetTask
{
    /// <summary>Examples with one integer class label each.</summary>
    Classification,

    /// <summary>A byte stream whose next byte a model predicts.</summary>
    LanguageModeling,
}

/// <summary>The CLI and API spellings of <see cref="DatasetFormat"/>: "idx", "npy", "npz", "csv", "text".</summary>
public static class DatasetFormats
{
    /// <summary>The spelling of a format: "idx", "npy", "npz", "csv" or "text".</summary>
    public static string ToText(DatasetFormat format) => EmcJson.EnumText(format);

    /// <summary>Parses a spelling (case-insensitive); false when it names no format.</summary>
    public static bool TryParse(string? text, out DatasetFormat format)
    {
        format = default;
        if (text is null || !EmcJson.TryParseEnum<DatasetFormat>(text, out var parsed) || parsed is null)
        {
            return false;
        }

        format = parsed.Value;
        return true;
    }

    /// <summary>Parses a spelling; throws <see cref="ArgumentException"/> naming the accepted ones when it names no format.</summary>
    public static DatasetFormat Parse(string text) =>
        TryParse(text, out var format)
            ? format
            : throw new ArgumentException($"'{text}' is not a dataset format: use idx, npy, npz, csv or text.", nameof(text));
}
