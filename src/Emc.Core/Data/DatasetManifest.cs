namespace Emc.Core.Data;

/// <summary>What the coordinator stores about an uploaded dataset: its splits and the content addresses of their shards.</summary>
public sealed record DatasetManifest
{
    public required string Name { get; init; }

    /// <summary>The upload format as the CLI spells it ("idx", "npy", "npz", "csv", "text").</summary>
    public required string Format { get; init; }

    public required DatasetTask Task { get; init; }

    public required IReadOnlyDictionary<string, SplitManifest> Splits { get; init; }
}

/// <summary>
/// One split: its examples and the shards that hold them, ordered by <see cref="ShardInfo.First"/> and
/// covering [0, <see cref="Count"/>) without gaps or overlaps (see <see cref="Validate"/>).
/// </summary>
public sealed record SplitManifest
{
    /// <summary>Examples in the split (bytes for text).</summary>
    public required int Count { get; init; }

    /// <summary>The shape of one example; empty for text.</summary>
    public required int[] SampleShape { get; init; }

    public required ElementType ElementType { get; init; }

    /// <summary>Classes of the dataset; 256 for text.</summary>
    public required int Classes { get; init; }

    public required IReadOnlyList<ShardInfo> Shards { get; init; }

    /// <summary>Bytes of all shards together: what a node downloads for the whole split.</summary>
    public required long Bytes { get; init; }

    /// <summary>
    /// The shards that hold examples [<paramref name="firstExample"/>, <paramref name="firstExample"/> + <paramref name="count"/>),
    /// in order; empty for an empty range.
    /// </summary>
    public IReadOnlyList<ShardInfo> ShardsFor(long firstExample, long count)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(firstExample);
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        if (firstExample + count > Count)
        {
            throw new ArgumentOutOfRangeException(nameof(count), count, $"Examples {firstExample}..{firstExample + count} run past the end of the split ({Count}).");
        }

        if (count == 0)
        {
            return [];
        }

        // The last shard that starts at or before firstExample holds it.
        int low = 0, high = Shards.Count - 1;
        while (low < high)
        {
            var middle = (low + high + 1) / 2;
            if (Shards[middle].First <= firstExample)
            {
                low = middle;
            }
            else
            {
                high = middle - 1;
            }
        }

        var end = firstExample + count;
        var covering = new List<ShardInfo>();
        for (var i = low; i < Shards.Count && Shards[i].First < end; i++)
        {
            covering.Add(Shards[i]);
        }

        return covering;
    }

    /// <summary>Throws <see cref="InvalidDataException"/> unless the shards cover [0, Count) in order and the byte total adds up.</summary>
    public void Validate()
    {
        long next = 0;
        long bytes = 0;
        foreach (var shard in Shards)
        {
            if (shard.First != next || shard.Count < 1)
            {
                throw new InvalidDataException($"Shard {shard.Sha256} covers examples from {shard.First} ({shard.Count}) but the next example is {next}.");
            }

            next += shard.Count;
            bytes += shard.Bytes;
        }

        if (next != Count || Count < 1)
        {
            throw new InvalidDataException($"The shards hold {next} examples but the split has {Count}.");
        }

        if (bytes != Bytes)
        {
            throw new InvalidDataException($"The shards hold {bytes} bytes but the split says {Bytes}.");
        }
    }
}

/// <summary>One shard: its content address (sha256, lower-case hex), the examples it holds and its size.</summary>
public sealed record ShardInfo
{
    public required string Sha256 { get; init; }

    public required int First { get; init; }

    public required int Count { get; init; }

    public required long Bytes { get; init; }
}

/// <summary>Builds manifests.</summary>
public static class DatasetManifests
{
    /// <summary>The manifest of a parsed dataset from the shards <see cref="DatasetSharder.ShardAll"/> made of it.</summary>
    public static DatasetManifest Create(string name, DatasetFormat format, ParsedDataset dataset, IReadOnlyDictionary<string, IReadOnlyList<ShardBlob>> shards)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(name);
        ArgumentNullException.ThrowIfNull(dataset);
        ArgumentNullException.ThrowIfNull(shards);
        var splits = new Dictionary<string, SplitManifest>(StringComparer.Ordinal);
        foreach (var (splitName, split) in dataset.Splits)
        {
            if (!shards.TryGetValue(splitName, out var blobs))
            {
                throw new ArgumentException($"No shards for the {splitName} split.", nameof(shards));
            }

            var manifest = new SplitManifest
            {
                Count = split.Count,
                SampleShape = [.. split.SampleShape],
                ElementType = split.ElementType,
                Classes = split.Classes,
                Shards = [.. blobs.Select(blob => new ShardInfo { Sha256 = blob.Sha256, First = blob.First, Count = blob.Count, Bytes = blob.Bytes.LongLength })],
                Bytes = blobs.Sum(blob => blob.Bytes.LongLength),
            };
            try
            {
                manifest.Validate();
            }
            catch (InvalidDataException ex)
            {
                throw new ArgumentException($"The shards of the {splitName} split do not fit it: {ex.Message}", nameof(shards), ex);
            }

            splits[splitName] = manifest;
        }

        return new DatasetManifest
        {
            Name = name,
            Format = DatasetFormats.ToText(format),
            Task = dataset.Task,
            Splits = splits.AsReadOnly(),
        };
    }
}
