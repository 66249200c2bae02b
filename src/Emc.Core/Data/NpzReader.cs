using System.IO.Compression;

namespace Emc.Core.Data;

/// <summary>
/// Reads .npz archives: zips (stored or deflated) of .npy arrays. Entry names give role and split as .npy
/// file names do (x_train, y_test, the Keras convention); an entry without a split word (x, y) takes the
/// split of the archive's own name, train by default.
/// </summary>
internal static class NpzReader
{
    public static List<ParsedPart> Read(DatasetSource file, long maxDecompressedBytes)
    {
        var zipBytes = file.Content;
        if (SourceStream.IsGzip(zipBytes))
        {
            using var gzip = SourceStream.Open(file, new DecompressionBudget(maxDecompressedBytes));
            zipBytes = gzip.ReadToEnd();
        }

        ZipArchive archive;
        try
        {
            archive = new ZipArchive(new MemoryStream(zipBytes, writable: false), ZipArchiveMode.Read);
        }
        catch (InvalidDataException ex)
        {
            throw DatasetFormatException.For(file.FileName, $"not an .npz file: it is not a zip archive ({ex.Message})", ex);
        }

        using (archive)
        {
            var budget = new DecompressionBudget(maxDecompressedBytes);
            var archiveSplit = DatasetSplits.FromFileName(file.FileName);
            var parts = new List<ParsedPart>();
            foreach (var entry in archive.Entries)
            {
                if (entry.FullName.EndsWith('/'))
                {
                    continue;
                }

                var name = $"{file.FileName}:{entry.FullName}";
                var isLabels = Arrays.IsLabels(entry.FullName)
                    ?? throw DatasetFormatException.For(name, $"cannot tell whether the entry holds features or labels; {Arrays.RoleHint}");
                var split = DatasetSplits.TryFromFileName(entry.FullName, out var named) ? named : archiveSplit;
                parts.Add(ReadEntry(entry, name, split, isLabels, budget));
            }

            return parts.Count > 0
                ? parts
                : throw DatasetFormatException.For(file.FileName, "the archive holds no arrays");
        }
    }

    private static ParsedPart ReadEntry(ZipArchiveEntry entry, string name, string split, bool isLabels, DecompressionBudget budget)
    {
        Stream stream;
        try
        {
            stream = entry.Open();
        }
        catch (Exception ex) when (ex is InvalidDataException or NotSupportedException)
        {
            throw DatasetFormatException.For(name, $"cannot read the entry: {ex.Message}", ex);
        }

        using var source = SourceStream.Wrap(name, stream, budget, entry.Length, entry.CompressedLength);
        return NpyReader.Read(source, split, isLabels);
    }
}
