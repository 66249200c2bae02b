namespace Emc.Core.Identity;

/// <summary>
/// Keeps a node's key in its data folder as hex in a file only the owner can read (mode 0600),
/// so a node restarted with the same folder comes back with the same id.
/// </summary>
public static class NodeKeyStore
{
    /// <summary>The key file's name inside the data folder.</summary>
    public const string FileName = "node.key";

    /// <summary>Loads the key from <paramref name="dataDirectory"/>, or makes and saves a new one.</summary>
    public static NodeKey LoadOrCreate(string dataDirectory)
    {
        Directory.CreateDirectory(dataDirectory);
        var path = Path.Combine(dataDirectory, FileName);
        if (File.Exists(path))
        {
            return Load(path);
        }

        var key = NodeKey.Create();
        var temp = path + ".tmp";

        // A leftover temp file may have looser permissions; the create mode only applies to a new file.
        File.Delete(temp);
        var options = new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write, Share = FileShare.None };
        if (!OperatingSystem.IsWindows())
        {
            options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        }

        using (var stream = new FileStream(temp, options))
        using (var writer = new StreamWriter(stream))
        {
            writer.Write(Convert.ToHexStringLower(key.Secret));
            writer.Write('\n');
        }

        // A new name appears whole or not at all, so a crash never leaves a half-written key.
        File.Move(temp, path, overwrite: false);
        return key;
    }

    /// <summary>Loads a key file; throws <see cref="InvalidDataException"/> with the reason when it is damaged.</summary>
    public static NodeKey Load(string path)
    {
        var text = File.ReadAllText(path).Trim();
        byte[] secret;
        try
        {
            secret = Convert.FromHexString(text);
        }
        catch (FormatException)
        {
            throw new InvalidDataException($"The node key file {path} is not hex; restore it from a backup or remove it to make a new identity.");
        }

        try
        {
            return NodeKey.FromSecret(secret);
        }
        catch (ArgumentException ex)
        {
            throw new InvalidDataException($"The node key file {path} does not hold a valid secp256k1 key: {ex.Message}");
        }
    }
}
