using System.Text.Json;
using Emc.Compute.Training;
using Emc.Core;
using Emc.Core.Data;

namespace Emc.Node.Training;

/// <summary>
/// Decoded dataset splits, shared by a node's round and replay executors, so that a replay of a job the
/// node trains neither downloads nor decodes its data again. Safe for concurrent use.
/// </summary>
public sealed class SplitCache(BlobCache blobs) : IDisposable
{
    private readonly SemaphoreSlim _gate = new(1, 1);
    private readonly Dictionary<string, ExampleSet> _splits = new(StringComparer.Ordinal);

    /// <summary>The dataset manifest of <paramref name="manifestHash"/>.</summary>
    public async Task<DatasetManifest> ManifestAsync(string manifestHash, CancellationToken cancellationToken)
    {
        var bytes = await blobs.GetBytesAsync(manifestHash, cancellationToken);
        try
        {
            return JsonSerializer.Deserialize<DatasetManifest>(bytes, EmcJson.Options) ?? throw new InvalidDataException("the dataset manifest is empty");
        }
        catch (JsonException ex)
        {
            throw new InvalidDataException($"the dataset manifest is malformed: {ex.Message}", ex);
        }
    }

    /// <summary>The decoded split <paramref name="name"/> of the dataset <paramref name="manifestHash"/>, loaded once.</summary>
    public async Task<ExampleSet> GetAsync(string manifestHash, string name, SplitManifest split, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(split);
        var key = manifestHash + "|" + name;
        await _gate.WaitAsync(cancellationToken);
        try
        {
            if (!_splits.TryGetValue(key, out var set))
            {
                set = await LoadAsync(split, cancellationToken);
                _splits[key] = set;
            }

            return set;
        }
        finally
        {
            _gate.Release();
        }
    }

    /// <summary>
    /// Drops the decoded splits a new job does not use and, when that freed any, collects them at once:
    /// otherwise the old dataset would still sit in the heap while the new one is decoded. Work that holds
    /// a dropped split keeps it until it ends.
    /// </summary>
    public async Task RetainAsync(string manifestHash, string trainSplit, string? evalSplit, CancellationToken cancellationToken)
    {
        var keep = new HashSet<string>(StringComparer.Ordinal) { manifestHash + "|" + trainSplit };
        if (evalSplit is not null)
        {
            keep.Add(manifestHash + "|" + evalSplit);
        }

        int dropped;
        await _gate.WaitAsync(cancellationToken);
        try
        {
            var stale = _splits.Keys.Where(k => !keep.Contains(k)).ToList();
            foreach (var key in stale)
            {
                _splits.Remove(key);
            }

            dropped = stale.Count;
        }
        finally
        {
            _gate.Release();
        }

        if (dropped > 0)
        {
            System.Runtime.GCSettings.LargeObjectHeapCompactionMode = System.Runtime.GCLargeObjectHeapCompactionMode.CompactOnce;
            GC.Collect(2, GCCollectionMode.Forced, blocking: true, compacting: true);
        }
    }

    public void Dispose() => _gate.Dispose();

    private async Task<ExampleSet> LoadAsync(SplitManifest split, CancellationToken cancellationToken)
    {
        var blocks = new List<ExampleBlock>(split.Shards.Count);
        var buffer = Array.Empty<byte>(); // one read buffer for every shard: no shard-sized garbage per shard
        foreach (var shard in split.Shards.OrderBy(s => s.First))
        {
            var path = await blobs.GetPathAsync(shard.Sha256, cancellationToken);
            await using var file = File.OpenRead(path);
            if (file.Length > Array.MaxLength)
            {
                throw new InvalidDataException($"shard {shard.Sha256} is {file.Length} bytes, more than one buffer holds");
            }

            var length = (int)file.Length;
            if (buffer.Length < length)
            {
                buffer = new byte[length];
            }

            await file.ReadExactlyAsync(buffer.AsMemory(0, length), cancellationToken);
            blocks.Add(ShardCodec.Decode(buffer.AsSpan(0, length)));
        }

        return new ExampleSet(blocks);
    }
}
