using System.Security.Cryptography;

namespace Emc.Core.Data;

/// <summary>A run of examples [First, First + Count) of a split.</summary>
public readonly record struct ShardRange(int First, int Count);

/// <summary>An encoded shard (<see cref="ShardCodec"/>) and its content address: sha256 of <see cref="Bytes"/>, lower-case hex.</summary>
public sealed record ShardBlob(int First, int Count, byte[] Bytes, string Sha256);

/// <summary>Cuts splits into shards of about a target size; an example is never split across shards.</summary>
public static class DatasetSharder
{
    /// <summary>4 MiB: small enough that a node fetches only what its range needs, large enough that there are few blobs.</summary>
    public const long DefaultTargetShardBytes = 4 * 1024 * 1024;

    /// <summary>
    /// The shard ranges of a split: as many shards as the target size needs, with example counts that
    /// differ by at most one, so the last shard is not a runt. A text split is cut into chunks of bytes.
    /// </summary>
    public static IReadOnlyList<ShardRange> Plan(ParsedSplit split, long targetShardBytes = DefaultTargetShardBytes)
    {
        ArgumentNullException.ThrowIfNull(split);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(targetShardBytes);
        if (split.Count < 1)
        {
            throw new ArgumentException("The split holds no examples.", nameof(split));
        }

        var exampleBytes = split.SampleBytes + (split.Labels is null ? 0L : 8L);
        var rankHeader = ShardCodec.HeaderBytes(split.SampleShape.Length);
        var fitInArray = (Array.MaxLength - rankHeader) / exampleBytes;
        var perShard = Math.Clamp(targetShardBytes / exampleBytes, 1, Math.Max(1, fitInArray));
        var shards = (int)((split.Count + perShard - 1) / perShard);
        var ranges = new ShardRange[shards];
        var baseCount = split.Count / shards;
        var larger = split.Count % shards;
        var first = 0;
        for (var i = 0; i < shards; i++)
        {
            var count = baseCount + (i < larger ? 1 : 0);
            ranges[i] = new ShardRange(first, count);
            first += count;
        }

        return ranges;
    }

    /// <summary>Encodes a split as shards of about <paramref name="targetShardBytes"/> each, in order.</summary>
    public static IReadOnlyList<ShardBlob> Shard(ParsedSplit split, long targetShardBytes = DefaultTargetShardBytes) =>
        [.. Plan(split, targetShardBytes).Select(range => Encode(split, range))];

    /// <summary>Shards every split of a dataset.</summary>
    public static IReadOnlyDictionary<string, IReadOnlyList<ShardBlob>> ShardAll(ParsedDataset dataset, long targetShardBytes = DefaultTargetShardBytes)
    {
        ArgumentNullException.ThrowIfNull(dataset);
        return dataset.Splits.ToDictionary(pair => pair.Key, pair => Shard(pair.Value, targetShardBytes), StringComparer.Ordinal).AsReadOnly();
    }

    /// <summary>Encodes one range and hashes it.</summary>
    public static ShardBlob Encode(ParsedSplit split, ShardRange range)
    {
        var bytes = ShardCodec.Encode(split, range.First, range.Count);
        return new ShardBlob(range.First, range.Count, bytes, Convert.ToHexStringLower(SHA256.HashData(bytes)));
    }
}
