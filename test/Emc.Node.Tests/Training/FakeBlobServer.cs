using System.Collections.Concurrent;
using System.Net;
using System.Text.Json;
using Emc.Core;
using Emc.Core.Data;

namespace Emc.Node.Tests.Training;

/// <summary>The coordinator's blob endpoint (GET/HEAD/PUT /api/v1/blobs/{sha256}) in memory, as an HTTP handler.</summary>
internal sealed class FakeBlobServer : HttpMessageHandler
{
    public ConcurrentDictionary<string, byte[]> Blobs { get; } = new(StringComparer.Ordinal);

    public string Put(byte[] content)
    {
        var hash = Core.Crypto.ContentHash.Of(content);
        Blobs[hash] = content;
        return hash;
    }

    public HttpClient Client() => new(this, disposeHandler: false) { BaseAddress = new Uri("http://coordinator.test/") };

    /// <summary>A classification dataset of Gaussian blobs: <paramref name="rows"/> examples of <paramref name="width"/> floats, 4 classes, in a train split; returns the manifest's hash.</summary>
    public string PutBlobsDataset(int rows, int seed, int width = 12)
    {
        var random = new Random(seed);
        var features = new float[rows * width];
        var labels = new long[rows];
        for (var row = 0; row < rows; row++)
        {
            labels[row] = row % 4;
            for (var f = 0; f < width; f++)
            {
                features[(row * width) + f] = (float)((f % 4 == labels[row] ? 1.5 : 0) + random.NextDouble() - 0.5);
            }
        }

        var split = new ParsedSplit
        {
            ElementType = ElementType.F32,
            SampleShape = [width],
            Count = rows,
            Data = System.Runtime.InteropServices.MemoryMarshal.AsBytes(features.AsSpan()).ToArray(),
            Labels = labels,
            Classes = 4,
        };
        var dataset = new ParsedDataset { Task = DatasetTask.Classification, Splits = new Dictionary<string, ParsedSplit> { ["train"] = split } };
        var shards = DatasetSharder.ShardAll(dataset);
        foreach (var shard in shards.Values.SelectMany(s => s))
        {
            Blobs[shard.Sha256] = shard.Bytes;
        }

        var manifest = DatasetManifests.Create("blobs", DatasetFormat.Csv, dataset, shards);
        return Put(JsonSerializer.SerializeToUtf8Bytes(manifest, EmcJson.Options));
    }

    protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        var hash = request.RequestUri!.AbsolutePath.Split('/')[^1];
        if (request.Method == HttpMethod.Put)
        {
            var body = await request.Content!.ReadAsByteArrayAsync(cancellationToken);
            if (Core.Crypto.ContentHash.Of(body) != hash)
            {
                return new HttpResponseMessage(HttpStatusCode.BadRequest);
            }

            Blobs[hash] = body;
            return new HttpResponseMessage(HttpStatusCode.OK);
        }

        if (!Blobs.TryGetValue(hash, out var content))
        {
            return new HttpResponseMessage(HttpStatusCode.NotFound);
        }

        return request.Method == HttpMethod.Head
            ? new HttpResponseMessage(HttpStatusCode.OK)
            : new HttpResponseMessage(HttpStatusCode.OK) { Content = new ByteArrayContent(content) };
    }
}
