namespace Emc.Node.Training;

/// <summary>
/// The inner optimizer states a node committed to in its last rounds (their hashes are in its signed
/// manifests), kept as files named by their sha256 under the node's data folder, so that any of those
/// rounds can still be replayed: the coordinator asks for a state with a "train-state" task after the
/// round closed, while the node already runs the next one. Only the newest <see cref="Keep"/> are kept
/// (files from before a restart count too). Thread-safe.
/// </summary>
public sealed class TrainStateStore
{
    /// <summary>The default number of states kept: 4 rounds, far more than a replay takes to be asked for.</summary>
    public const int DefaultKeep = 4;

    private readonly Lock _lock = new();
    private readonly string _directory;
    private readonly LinkedList<string> _recent = new();

    /// <summary>A store in <paramref name="directory"/> (created if need be) that keeps <paramref name="keep"/> states.</summary>
    public TrainStateStore(string directory, int keep = DefaultKeep)
    {
        ArgumentException.ThrowIfNullOrEmpty(directory);
        ArgumentOutOfRangeException.ThrowIfLessThan(keep, 1);
        _directory = directory;
        Keep = keep;
        Directory.CreateDirectory(directory);
        foreach (var file in new DirectoryInfo(directory).EnumerateFiles().OrderBy(f => f.LastWriteTimeUtc))
        {
            if (Core.Crypto.ContentHash.IsValid(file.Name))
            {
                _recent.AddLast(file.Name);
            }
            else
            {
                file.Delete(); // a write cut short
            }
        }

        Trim();
    }

    /// <summary>States kept.</summary>
    public int Keep { get; }

    /// <summary>
    /// The simulated fault <c>withhold-state</c>: states are committed to (hashed) but not kept, so the node
    /// cannot upload one when its round is replayed. False for an honest node.
    /// </summary>
    public bool Forgetful { get; init; }

    /// <summary>Stores <paramref name="state"/> and returns its sha256, the commitment that goes into the manifest.</summary>
    public string Commit(ReadOnlySpan<byte> state)
    {
        var hash = Core.Crypto.ContentHash.Of(state);
        var path = Path.Combine(_directory, hash);
        if (Forgetful)
        {
            return hash;
        }

        lock (_lock)
        {
            if (!File.Exists(path))
            {
                var partial = path + ".part";
                using (var file = File.Create(partial))
                {
                    file.Write(state);
                }

                File.Move(partial, path, overwrite: true);
            }

            _recent.Remove(hash);
            _recent.AddLast(hash);
            Trim();
        }

        return hash;
    }

    /// <summary>The file of a kept state, or null when the node no longer holds (or never held) it.</summary>
    public string? PathOf(string hash)
    {
        if (!Core.Crypto.ContentHash.IsValid(hash))
        {
            return null;
        }

        lock (_lock)
        {
            var path = Path.Combine(_directory, hash);
            return _recent.Contains(hash) && File.Exists(path) ? path : null;
        }
    }

    private void Trim()
    {
        while (_recent.Count > Keep)
        {
            var oldest = _recent.First!.Value;
            _recent.RemoveFirst();
            File.Delete(Path.Combine(_directory, oldest));
        }
    }
}
