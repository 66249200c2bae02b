using Emc.Core.Identity;

namespace Emc.Core.Tests.Identity;

public sealed class NodeKeyTests
{
    public static TheoryData<string> InvalidSecrets => new()
    {
        "",
        "01",
        new string('0', 64),
        // The group order n itself and n + 1 are not valid scalars.
        "fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141",
        "fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364142",
        new string('f', 64),
        new string('1', 66),
    };

    [Fact]
    public void Create_TwoKeys_HaveDifferentAddresses()
    {
        using var first = NodeKey.Create();
        using var second = NodeKey.Create();

        Assert.NotEqual(first.Address, second.Address);
    }

    [Fact]
    public void FromSecret_SecretOfCreatedKey_GivesSameKey()
    {
        using var original = NodeKey.Create();

        using var copy = NodeKey.FromSecret(original.Secret);

        Assert.Equal(original.Address, copy.Address);
        Assert.Equal(original.PublicKey, copy.PublicKey);
    }

    [Fact]
    public void FromSecret_LargestValidScalar_IsAccepted()
    {
        using var key = NodeKey.FromSecret(Convert.FromHexString("fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364140"));

        Assert.Equal(65, key.PublicKey.Length);
        Assert.Equal(0x04, key.PublicKey[0]);
    }

    [Theory]
    [MemberData(nameof(InvalidSecrets))]
    public void FromSecret_InvalidScalar_ThrowsArgumentException(string hex)
    {
        var ex = Assert.Throws<ArgumentException>(() => NodeKey.FromSecret(Convert.FromHexString(hex)));

        Assert.Equal("secret", ex.ParamName);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(31)]
    [InlineData(33)]
    public void SignDigest_DigestNot32Bytes_ThrowsArgumentException(int length)
    {
        using var key = NodeKey.Create();

        var ex = Assert.Throws<ArgumentException>(() => key.SignDigest(new byte[length]));

        Assert.Equal("digest", ex.ParamName);
    }

    [Fact]
    public void SignDigest_SameDigestTwice_IsDeterministic()
    {
        using var key = NodeKey.Create();
        var digest = Signatures.PersonalMessageDigest("twice"u8);

        Assert.Equal(key.SignDigest(digest), key.SignDigest(digest));
    }

    [Fact]
    public void Dispose_ZeroesTheSecret()
    {
        var key = NodeKey.Create();
        Assert.Contains(key.Secret.ToArray(), b => b != 0);

        key.Dispose();

        Assert.All(key.Secret.ToArray(), b => Assert.Equal(0, b));
    }
}
