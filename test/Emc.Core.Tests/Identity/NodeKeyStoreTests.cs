using Emc.Core.Identity;

namespace Emc.Core.Tests.Identity;

public sealed class NodeKeyStoreTests : IDisposable
{
    private readonly string _folder = Path.Combine(Path.GetTempPath(), "emc-keystore-" + Guid.NewGuid().ToString("N"));

    public void Dispose()
    {
        if (Directory.Exists(_folder))
        {
            Directory.Delete(_folder, recursive: true);
        }
    }

    [Fact]
    public void LoadOrCreate_TwiceInSameFolder_GivesSameAddress()
    {
        using var first = NodeKeyStore.LoadOrCreate(_folder);
        using var second = NodeKeyStore.LoadOrCreate(_folder);

        Assert.Equal(first.Address, second.Address);
        Assert.Equal(first.PublicKey, second.PublicKey);
    }

    [Fact]
    public void LoadOrCreate_DifferentFolders_GiveDifferentAddresses()
    {
        using var first = NodeKeyStore.LoadOrCreate(Path.Combine(_folder, "a"));
        using var second = NodeKeyStore.LoadOrCreate(Path.Combine(_folder, "b"));

        Assert.NotEqual(first.Address, second.Address);
    }

    [Fact]
    public void LoadOrCreate_NewKey_FileIsOwnerReadWriteOnly()
    {
        if (OperatingSystem.IsWindows())
        {
            return;
        }

        using var key = NodeKeyStore.LoadOrCreate(_folder);

        var mode = File.GetUnixFileMode(Path.Combine(_folder, NodeKeyStore.FileName));
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, mode);
    }

    [Fact]
    public void LoadOrCreate_NewKey_FileHoldsSecretAsHexAndNoTempFileRemains()
    {
        using var key = NodeKeyStore.LoadOrCreate(_folder);

        var text = File.ReadAllText(Path.Combine(_folder, NodeKeyStore.FileName));
        Assert.Equal(Convert.ToHexStringLower(key.Secret) + "\n", text);
        Assert.Equal([NodeKeyStore.FileName], Directory.GetFiles(_folder).Select(Path.GetFileName));
    }

    [Fact]
    public void LoadOrCreate_ExistingKeyFile_LoadsIt()
    {
        const string secret = "4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318";
        Directory.CreateDirectory(_folder);
        File.WriteAllText(Path.Combine(_folder, NodeKeyStore.FileName), "  " + secret.ToUpperInvariant() + "\r\n");

        using var key = NodeKeyStore.LoadOrCreate(_folder);

        Assert.Equal("0x2c7536e3605d9c16a7a3d7b1898e529396a65c23", key.Address.ToString());
    }

    [Theory]
    [InlineData("not hex at all", "is not hex")]
    [InlineData("abc", "is not hex")]
    [InlineData("", "does not hold a valid secp256k1 key")]
    [InlineData("00112233", "does not hold a valid secp256k1 key")]
    [InlineData("0000000000000000000000000000000000000000000000000000000000000000", "does not hold a valid secp256k1 key")]
    public void LoadOrCreate_DamagedKeyFile_ThrowsInvalidDataExceptionNamingFile(string content, string reason)
    {
        Directory.CreateDirectory(_folder);
        var path = Path.Combine(_folder, NodeKeyStore.FileName);
        File.WriteAllText(path, content);

        var ex = Assert.Throws<InvalidDataException>(() => NodeKeyStore.LoadOrCreate(_folder));

        Assert.Contains(path, ex.Message, StringComparison.Ordinal);
        Assert.Contains(reason, ex.Message, StringComparison.Ordinal);
        // A damaged identity is never silently replaced by a new one.
        Assert.Equal(content, File.ReadAllText(path));
    }
}
