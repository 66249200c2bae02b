using System.Buffers;
using System.Security.Cryptography;

namespace Emc.Coordinator.Blobs;

/// <summary>
/// Content-addressed files (sha256, lowercase hex) in the data folder: dataset shards, weights,
/// optimizer state, pseudo-gradients and models. A blob is written to a temporary file while its hash
/// is computed and appears under its name only when complete and verified, so readers never see a
/// partial blob and a crash leaves at most a temporary file behind.
/// </summary>
public sealed class BlobStore
{
    /// <summary>The largest blob accepted over HTTP (4 GiB).</summary>
    public const long DefaultMaxBlobBytes = 4L << 30;

    private readonly string _root;
    private readonly string _incoming;

    public BlobStore(string dataDirectory)
    {
        _root = Path.Combine(dataDirectory, "blobs");
        _incoming = Path.Combine(_root, "incoming");
        Directory.CreateDirectory(_incoming);
        foreach (var stale in Directory.EnumerateFiles(_incoming))
        {
            File.Delete(stale);
        }
    }

    public long MaxBlobBytes { get; init; } = DefaultMaxBlobBytes;

    /// <summary>True for 64 lowercase hex digits.</summary>
    public static bool IsHash(string? hash) => Core.Crypto.ContentHash.IsValid(hash);

    public static string Hash(ReadOnlySpan<byte> content) => Core.Crypto.ContentHash.Of(content);

    public bool Exists(string hash) => IsHash(hash) && File.Exists(PathOf(hash));

    /// <summary>The blob's length, or null when it is not stored.</summary>
    public long? Length(string hash) => Exists(hash) ? new FileInfo(PathOf(hash)).Length : null;

    /// <summary>The file that holds the blob (for range responses); check <see cref="Exists"/> first.</summary>
    public string PathOf(string hash)
    {
        if (!IsHash(hash))
        {
            throw new ArgumentException("A blob hash is 64 lowercase hex digits.", nameof(hash));
        }

        return Path.Combine(_root, hash[..2], hash);
    }

    /// <summary>Stores <paramref name="content"/> and returns its hash (idempotent).</summary>
    public async Task<string> PutAsync(ReadOnlyMemory<byte> content, CancellationToken cancellationToken)
    {
        var hash = Hash(content.Span);
        if (Exists(hash))
        {
            return hash;
        }

        var temp = TempPath();
        try
        {
            await File.WriteAllBytesAsync(temp, content.ToArray(), cancellationToken);
            Publish(temp, hash);
        }
        finally
        {
            File.Delete(temp);
        }

        return hash;
    }

    /// <summary>
    /// Stores what <paramref name="source"/> holds if its sha256 is <paramref name="expectedHash"/>
    /// and it is at most <see cref="MaxBlobBytes"/> long; otherwise stores nothing and throws
    /// <see cref="InvalidDataException"/>.
    /// </summary>
    public async Task<long> PutAsync(Stream source, string expectedHash, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(source);
        if (!IsHash(expectedHash))
        {
            throw new InvalidDataException("A blob hash is 64 lowercase hex digits.");
        }

        var temp = TempPath();
        var buffer = ArrayPool<byte>.Shared.Rent(1 << 16);
        try
        {
            long length = 0;
            using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
            await using (var file = new FileStream(temp, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 16, useAsync: true))
            {
                int read;
                while ((read = await source.ReadAsync(buffer, cancellationToken)) > 0)
                {
                    length += read;
                    if (length > MaxBlobBytes)
                    {
                        throw new InvalidDataException($"The blob is larger than the {MaxBlobBytes} bytes allowed.");
                    }

                    sha.AppendData(buffer, 0, read);
                    await file.WriteAsync(buffer.AsMemory(0, read), cancellationToken);
                }
            }

            var actual = Convert.ToHexStringLower(sha.GetHashAndReset());
            if (actual != expectedHash)
            {
                throw new InvalidDataException($"The content's sha256 is {actual}, not {expectedHash}.");
            }

            Publish(temp, expectedHash);
            return length;
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
            File.Delete(temp);
        }
    }

    /// <summary>The whole blob; null when it is not stored.</summary>
    public async Task<byte[]?> ReadAsync(string hash, CancellationToken cancellationToken)
    {
        if (!Exists(hash))
        {
            return null;
        }

        try
        {
            return await File.ReadAllBytesAsync(PathOf(hash), cancellationToken);
        }
        catch (FileNotFoundException)
        {
            return null;
        }
    }

    /// <summary>Removes the blob; true when it was there.</summary>
    public bool Delete(string hash)
    {
        if (!Exists(hash))
        {
            return false;
        }

        File.Delete(PathOf(hash));
        return true;
    }

    private string TempPath() => Path.Combine(_incoming, Guid.NewGuid().ToString("N"));

    private void Publish(string temp, string hash)
    {
        var target = PathOf(hash);
        Directory.CreateDirectory(Path.GetDirectoryName(target)!);
        if (File.Exists(target))
        {
            return;
        }

        try
        {
            File.Move(temp, target);
        }
        catch (IOException) when (File.Exists(target))
        {
            // Another writer published the same content first.
        }
    }
}
