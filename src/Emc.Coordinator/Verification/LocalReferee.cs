using System.Collections.Concurrent;
using Emc.Coordinator.Blobs;
using Emc.Coordinator.Inference.Oip;
using Emc.Core.Inference;
using Emc.Core.Training;

namespace Emc.Coordinator.Verification;

/// <summary>
/// The coordinator's own, trusted executions of a pushed ONNX model, for settling a disagreement between
/// nodes when no third node serves the model. Each model file is loaded once (ONNX Runtime on the CPU)
/// and kept; files above <see cref="MaxModelBytes"/> are not run here.
/// </summary>
public sealed class LocalReferee : IDisposable
{
    /// <summary>The largest model file the coordinator runs itself: 256 MiB.</summary>
    public const long MaxModelBytes = 256L << 20;

    private readonly BlobStore _blobs;
    private readonly InProcessOnnxBackend _backend;
    private readonly ConcurrentDictionary<string, Lazy<Task<bool>>> _loaded = new(StringComparer.Ordinal);
    private readonly TimeProvider _time;

    public LocalReferee(BlobStore blobs, TimeProvider timeProvider)
    {
        _blobs = blobs;
        _time = timeProvider;
        _backend = new InProcessOnnxBackend(timeProvider);
    }

    /// <summary>A referee for the model <paramref name="descriptor"/> describes, or null when the coordinator cannot run it.</summary>
    public Func<InferRequest, CancellationToken, Task<InferResponse>>? For(ModelDescriptor? descriptor)
    {
        if (descriptor is not { Format: "onnx", File: { } file } || !BlobStore.IsHash(file) || _blobs.Length(file) is not { } length || length > MaxModelBytes)
        {
            return null;
        }

        return (request, cancellationToken) => RunAsync(file, request, cancellationToken);
    }

    public void Dispose() => _backend.Dispose();

    private async Task<InferResponse> RunAsync(string file, InferRequest request, CancellationToken cancellationToken)
    {
        var loading = _loaded.GetOrAdd(file, hash => new Lazy<Task<bool>>(() => LoadAsync(hash)));
        if (!await loading.Value)
        {
            _loaded.TryRemove(file, out _);
            throw new InvalidOperationException($"the model file {file} is not in the blob store");
        }

        return await _backend.InferAsync(file, null, request, _time.GetUtcNow().AddMinutes(1), cancellationToken);
    }

    private async Task<bool> LoadAsync(string hash)
    {
        var bytes = await _blobs.ReadAsync(hash, CancellationToken.None);
        if (bytes is null)
        {
            return false;
        }

        _backend.Add(hash, bytes);
        return true;
    }
}
