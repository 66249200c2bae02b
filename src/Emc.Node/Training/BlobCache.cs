using System.Net;
using System.Net.Http.Headers;
using System.Security.Cryptography;

namespace Emc.Node.Training;

/// <summary>
/// The node's copy of content-addressed blobs (dataset shards, weights). A blob is downloaded with
/// HTTP range requests into a partial file, so an interrupted transfer resumes where it stopped, and
/// it is kept only once its sha256 matches its name.
/// </summary>
public sealed class BlobCache
{
    private const int Attempts = 4;
    private readonly HttpClient _http;
    private readonly string _root;

    /// <param name="http">A client whose base address is the coordinator's API.</param>
    /// <param name="directory">Where blobs are kept.</param>
    public BlobCache(HttpClient http, string directory)
    {
        _http = http;
        _root = directory;
        Directory.CreateDirectory(_root);
    }

    /// <summary>Bytes downloaded so far (for the benchmark's traffic figures).</summary>
    public long BytesDownloaded => Interlocked.Read(ref _downloaded);

    /// <summary>Bytes uploaded so far.</summary>
    public long BytesUploaded => Interlocked.Read(ref _uploaded);

    private long _downloaded;
    private long _uploaded;

    /// <summary>The local file of the blob, downloaded and verified first if need be.</summary>
    public async Task<string> GetPathAsync(string hash, CancellationToken cancellationToken)
    {
        if (!Core.Crypto.ContentHash.IsValid(hash))
        {
            throw new InvalidDataException($"'{hash}' is not a blob hash.");
        }

        var path = Path.Combine(_root, hash);
        if (File.Exists(path))
        {
            return path;
        }

        var partial = path + ".part";
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                await DownloadAsync(hash, partial, cancellationToken);
                break;
            }
            catch (HttpRequestException) when (attempt < Attempts)
            {
                await Task.Delay(TimeSpan.FromMilliseconds((200 * attempt * attempt) + Random.Shared.Next(100)), cancellationToken);
            }
            catch (IOException) when (attempt < Attempts)
            {
                await Task.Delay(TimeSpan.FromMilliseconds((200 * attempt * attempt) + Random.Shared.Next(100)), cancellationToken);
            }
        }

        await using (var check = File.OpenRead(partial))
        {
            var actual = Convert.ToHexStringLower(await SHA256.HashDataAsync(check, cancellationToken));
            if (actual != hash)
            {
                check.Close();
                File.Delete(partial);
                throw new InvalidDataException($"Blob {hash} arrived with sha256 {actual}; it was discarded.");
            }
        }

        File.Move(partial, path, overwrite: true);
        return path;
    }

    public async Task<byte[]> GetBytesAsync(string hash, CancellationToken cancellationToken) =>
        await File.ReadAllBytesAsync(await GetPathAsync(hash, cancellationToken), cancellationToken);

    /// <summary>
    /// The blob's bytes without keeping it: read from the cache when it is there, else downloaded into memory
    /// and verified. For work beside the node's own rounds (replays), whose blobs the rounds may evict.
    /// </summary>
    public async Task<byte[]> FetchAsync(string hash, CancellationToken cancellationToken)
    {
        if (!Core.Crypto.ContentHash.IsValid(hash))
        {
            throw new InvalidDataException($"'{hash}' is not a blob hash.");
        }

        try
        {
            var path = Path.Combine(_root, hash);
            if (File.Exists(path))
            {
                return await File.ReadAllBytesAsync(path, cancellationToken);
            }
        }
        catch (FileNotFoundException)
        {
            // Evicted meanwhile: download it.
        }

        for (var attempt = 1; ; attempt++)
        {
            try
            {
                using var response = await _http.GetAsync($"api/v1/blobs/{hash}", cancellationToken);
                if (response.StatusCode == HttpStatusCode.NotFound)
                {
                    throw new InvalidDataException($"The coordinator has no blob {hash}.");
                }

                response.EnsureSuccessStatusCode();
                var bytes = await response.Content.ReadAsByteArrayAsync(cancellationToken);
                Interlocked.Add(ref _downloaded, bytes.Length);
                var actual = Core.Crypto.ContentHash.Of(bytes);
                return actual == hash ? bytes : throw new InvalidDataException($"Blob {hash} arrived with sha256 {actual}; it was discarded.");
            }
            catch (HttpRequestException) when (attempt < Attempts)
            {
                await Task.Delay(TimeSpan.FromMilliseconds((200 * attempt * attempt) + Random.Shared.Next(100)), cancellationToken);
            }
        }
    }

    /// <summary>Uploads <paramref name="content"/> unless the coordinator has it; returns its hash.</summary>
    public Task<string> UploadAsync(byte[] content, CancellationToken cancellationToken) =>
        UploadAsync(content.AsMemory(), cancellationToken);

    /// <summary>Uploads <paramref name="content"/> (which the caller must not change until this completes) unless the coordinator has it; returns its hash.</summary>
    public async Task<string> UploadAsync(ReadOnlyMemory<byte> content, CancellationToken cancellationToken)
    {
        var hash = Core.Crypto.ContentHash.Of(content.Span);
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                using var head = new HttpRequestMessage(HttpMethod.Head, $"api/v1/blobs/{hash}");
                head.Options.Set(Connection.NodeRequestSigner.BodySha256, Core.Identity.NodeRequestSignature.EmptyContentHash);
                using (var exists = await _http.SendAsync(head, cancellationToken))
                {
                    if (exists.StatusCode == HttpStatusCode.OK)
                    {
                        return hash;
                    }
                }

                using var body = new ReadOnlyMemoryContent(content);
                body.Headers.ContentType = new MediaTypeHeaderValue("application/octet-stream");
                using var put = new HttpRequestMessage(HttpMethod.Put, $"api/v1/blobs/{hash}") { Content = body };

                // A blob's name is the SHA-256 of its bytes: the signature needs no second pass over them.
                put.Options.Set(Connection.NodeRequestSigner.BodySha256, hash);
                using var response = await _http.SendAsync(put, cancellationToken);
                if (!response.IsSuccessStatusCode)
                {
                    var detail = await response.Content.ReadAsStringAsync(cancellationToken);
                    throw new InvalidDataException($"The coordinator refused blob {hash}: {(int)response.StatusCode} {detail}");
                }

                Interlocked.Add(ref _uploaded, content.Length);
                return hash;
            }
            catch (HttpRequestException) when (attempt < Attempts)
            {
                await Task.Delay(TimeSpan.FromMilliseconds((200 * attempt * attempt) + Random.Shared.Next(100)), cancellationToken);
            }
        }
    }

    /// <summary>Removes cached blobs except <paramref name="keep"/> whose names are in <paramref name="candidates"/>.</summary>
    public void Evict(IEnumerable<string> candidates, IReadOnlySet<string> keep)
    {
        foreach (var hash in candidates)
        {
            if (Core.Crypto.ContentHash.IsValid(hash) && !keep.Contains(hash))
            {
                File.Delete(Path.Combine(_root, hash));
            }
        }
    }

    private async Task DownloadAsync(string hash, string partial, CancellationToken cancellationToken)
    {
        var have = File.Exists(partial) ? new FileInfo(partial).Length : 0;
        using var request = new HttpRequestMessage(HttpMethod.Get, $"api/v1/blobs/{hash}");
        if (have > 0)
        {
            request.Headers.Range = new RangeHeaderValue(have, null);
        }

        using var response = await _http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, cancellationToken);
        if (response.StatusCode == HttpStatusCode.RequestedRangeNotSatisfiable)
        {
            // The partial file is already whole (or longer than the blob): start over.
            File.Delete(partial);
            throw new IOException($"Blob {hash}: the partial download was not resumable.");
        }

        if (response.StatusCode == HttpStatusCode.NotFound)
        {
            throw new InvalidDataException($"The coordinator has no blob {hash}.");
        }

        response.EnsureSuccessStatusCode();
        var resumed = response.StatusCode == HttpStatusCode.PartialContent;
        await using var target = new FileStream(partial, resumed ? FileMode.Append : FileMode.Create, FileAccess.Write, FileShare.None, 1 << 16, useAsync: true);
        await using var source = await response.Content.ReadAsStreamAsync(cancellationToken);
        var buffer = new byte[1 << 16];
        int read;
        while ((read = await source.ReadAsync(buffer, cancellationToken)) > 0)
        {
            await target.WriteAsync(buffer.AsMemory(0, read), cancellationToken);
            Interlocked.Add(ref _downloaded, read);
        }
    }
}
