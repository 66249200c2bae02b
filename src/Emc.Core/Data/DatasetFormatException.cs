namespace Emc.Core.Data;

/// <summary>
/// An upload that is not a valid dataset. The message names the file and the problem, such as
/// "train-labels-idx1-ubyte.gz: truncated: the header declares 60000 items (60008 bytes) but the file has 30000 bytes".
/// </summary>
public sealed class DatasetFormatException : Exception
{
    public DatasetFormatException()
    {
    }

    public DatasetFormatException(string message)
        : base(message)
    {
    }

    public DatasetFormatException(string message, Exception innerException)
        : base(message, innerException)
    {
    }

    /// <summary>The file (or "archive.npz:entry.npy") the problem is in; null when it concerns no single file.</summary>
    public string? FileName { get; private init; }

    internal static DatasetFormatException For(string fileName, string problem, Exception? innerException = null) =>
        innerException is null
            ? new DatasetFormatException($"{fileName}: {problem}") { FileName = fileName }
            : new DatasetFormatException($"{fileName}: {problem}", innerException) { FileName = fileName };
}
