using System.Text;
using Emc.Coordinator.Blobs;
using Emc.Coordinator.Persistence;
using Emc.Core.Data;
using Emc.Core.Scheduling;
using Emc.Core.Training;

namespace Emc.Coordinator.Training;

/// <summary>
/// Uploads: parse and validate every file, cut each split into shards, store the shards and the
/// manifest as content-addressed blobs, then record the name. Any problem stops the upload before
/// the name is recorded, and blobs nothing refers to are removed again.
/// </summary>
public sealed class DatasetService(TrainingStore store, BlobStore blobs, TimeProvider time)
{
    /// <summary>The largest upload accepted (all files together), 4 GiB.</summary>
    public const long MaxUploadBytes = 4L << 30;

    /// <summary>
    /// Validates, shards and stores the files as a dataset of <paramref name="owner"/>. Dataset names are
    /// one namespace for the whole network (training jobs name them); a name another account holds is a
    /// conflict, as is one the owner holds already.
    /// </summary>
    public async Task<(DatasetView? Dataset, string? Error, bool Conflict)> UploadAsync(
        string name, string format, string labelColumn, int? classes, IReadOnlyList<(string Name, byte[] Content)> files, string owner, CancellationToken cancellationToken)
    {
        if (!JobSpecValidator.IsIdentifier(name))
        {
            return (null, "name must be 1 to 64 characters of letters, digits, '.', '_', '-' or ':'", false);
        }

        if (!DatasetFormats.TryParse(format, out var parsedFormat))
        {
            return (null, $"format must be idx, npy, npz, csv or text, not '{format}'", false);
        }

        if (files.Count == 0)
        {
            return (null, "no files were uploaded", false);
        }

        if (await store.GetDatasetAsync(name, cancellationToken) is { } existing)
        {
            return (null, Taken(name, existing.Owner, owner), true);
        }

        ParsedDataset parsed;
        try
        {
            var options = new DatasetParseOptions { Classes = classes };
            if (!string.IsNullOrEmpty(labelColumn))
            {
                options.LabelColumn = labelColumn;
            }

            parsed = DatasetParser.Parse(files.Select(f => new DatasetSource(Path.GetFileName(f.Name), f.Content)).ToList(), parsedFormat, options);
        }
        catch (DatasetFormatException ex)
        {
            return (null, ex.Message, false);
        }

        var written = new List<string>();
        var shards = DatasetSharder.ShardAll(parsed);
        foreach (var shard in shards.Values.SelectMany(s => s))
        {
            written.Add(await blobs.PutAsync(shard.Bytes, cancellationToken));
        }

        var manifest = DatasetManifests.Create(name, parsedFormat, parsed, shards);
        var manifestJson = TrainingJson.Write(manifest);
        var manifestHash = await blobs.PutAsync(Encoding.UTF8.GetBytes(manifestJson), cancellationToken);
        written.Add(manifestHash);
        var row = new DatasetRow
        {
            Name = name,
            ManifestHash = manifestHash,
            ManifestJson = manifestJson,
            Format = manifest.Format,
            Bytes = manifest.Splits.Values.Sum(s => s.Bytes),
            CreatedAtUnixMs = time.GetUtcNow().ToUnixTimeMilliseconds(),
            Owner = owner,
        };
        if (!await store.AddDatasetAsync(row, cancellationToken))
        {
            await CollectAsync(written, cancellationToken);
            var taken = await store.GetDatasetAsync(name, cancellationToken);
            return (null, Taken(name, taken?.Owner ?? owner, owner), true);
        }

        return (View(row), null, false);
    }

    /// <summary>Every dataset, or only <paramref name="owner"/>'s when given.</summary>
    public async Task<IReadOnlyList<DatasetView>> ListAsync(string? owner, CancellationToken cancellationToken) =>
        (await store.ListDatasetsAsync(cancellationToken)).Where(d => owner is null || d.Owner == owner).Select(View).ToList();

    public async Task<DatasetView?> GetAsync(string name, CancellationToken cancellationToken) =>
        await store.GetDatasetAsync(name, cancellationToken) is { } row ? View(row) : null;

    /// <summary>Removes the dataset and the blobs only it used; refused while a training job reads it.</summary>
    public async Task<(bool Removed, string? Error)> RemoveAsync(string name, CancellationToken cancellationToken)
    {
        var row = await store.GetDatasetAsync(name, cancellationToken);
        if (row is null)
        {
            return (false, null);
        }

        var users = await store.ActiveJobsUsingAsync(name, cancellationToken);
        if (users.Count > 0)
        {
            return (false, $"training job{(users.Count == 1 ? "" : "s")} {string.Join(", ", users)} still read{(users.Count == 1 ? "s" : "")} '{name}'; cancel {(users.Count == 1 ? "it" : "them")} first");
        }

        var manifest = TrainingJson.ReadManifest(row.ManifestJson);
        await store.RemoveDatasetAsync(name, cancellationToken);
        await CollectAsync([row.ManifestHash, .. manifest.Splits.Values.SelectMany(s => s.Shards).Select(s => s.Sha256)], cancellationToken);
        return (true, null);
    }

    private async Task CollectAsync(IReadOnlyCollection<string> hashes, CancellationToken cancellationToken)
    {
        var referenced = await store.ReferencedBlobsAsync(cancellationToken);
        foreach (var hash in hashes.Where(h => !referenced.Contains(h)))
        {
            blobs.Delete(hash);
        }
    }

    private static string Taken(string name, string holder, string owner) => holder == owner
        ? $"a dataset named '{name}' exists; remove it first or choose another name"
        : $"the dataset name '{name}' is taken by another account; choose another name";

    private static DatasetView View(DatasetRow row) =>
        new(row.Name, row.ManifestHash, row.Bytes, DateTimeOffset.FromUnixTimeMilliseconds(row.CreatedAtUnixMs), TrainingJson.ReadManifest(row.ManifestJson)) { Owner = row.Owner };
}
