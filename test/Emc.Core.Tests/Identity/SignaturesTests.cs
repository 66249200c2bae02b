using System.Text;
using Emc.Core.Crypto;
using Emc.Core.Identity;

namespace Emc.Core.Tests.Identity;

public sealed class SignaturesTests
{
    // web3.eth.accounts.sign('Some data', '0x4c08…2318') from the web3.js documentation.
    private const string KnownSecret = "4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318";
    private const string KnownAddress = "0x2c7536e3605d9c16a7a3d7b1898e529396a65c23";
    private const string KnownMessage = "Some data";
    private const string KnownDigest = "1da44b586eb0729ff70a73c326926f6ed5a25f5b056e7f47fbc6e58d86871655";
    private const string KnownSignature =
        "b91467e570a6466aa9e9876cbcd013baba02900b8979d43fe208a4a4f339f5fd"
        + "6007e74cd82e037b800186422fc2da167c747ef045e5d18a5f5d4300f8e1a029"
        + "1c";

    private static readonly byte[] Digest = Signatures.PersonalMessageDigest("registration"u8);

    [Fact]
    public void PersonalMessageDigest_KnownMessage_MatchesWeb3Digest()
    {
        var digest = Signatures.PersonalMessageDigest(Encoding.UTF8.GetBytes(KnownMessage));

        Assert.Equal(KnownDigest, Convert.ToHexStringLower(digest));
    }

    [Fact]
    public void PersonalMessageDigest_LengthIsDecimalByteCount_DiffersFromPlainKeccak()
    {
        // The prefix counts bytes, not characters: "é" is 2 bytes in UTF-8.
        var twoBytes = Signatures.PersonalMessageDigest("é"u8);
        var expected = Keccak256.Hash("\u0019Ethereum Signed Message:\n2é"u8);

        Assert.Equal(expected, twoBytes);
        Assert.NotEqual(Keccak256.Hash("é"u8), twoBytes);
    }

    [Fact]
    public void SignMessage_KnownKeyAndMessage_MatchesWeb3Signature()
    {
        using var key = NodeKey.FromSecret(Convert.FromHexString(KnownSecret));

        var signature = key.SignMessage(Encoding.UTF8.GetBytes(KnownMessage));

        Assert.Equal(KnownSignature, Convert.ToHexStringLower(signature));
    }

    [Fact]
    public void SignRecoverable_BouncyCastleOnKnownVector_MatchesWeb3Signature()
    {
        // Derives the published vector independently, so the vector itself is not taken on trust.
        var signature = ReferenceSecp256k1.SignRecoverable(Convert.FromHexString(KnownSecret), Convert.FromHexString(KnownDigest));

        Assert.Equal(KnownSignature, Convert.ToHexStringLower(signature));
    }

    [Fact]
    public void TryRecoverAddress_KnownSignature_RecoversKnownAddress()
    {
        var ok = Signatures.TryRecoverAddress(Convert.FromHexString(KnownDigest), Convert.FromHexString(KnownSignature), out var address, out var error);

        Assert.True(ok, error);
        Assert.Equal(KnownAddress, address?.ToString());
    }

    [Fact]
    public void SignMessage_ThenRecover_GivesSignersAddress()
    {
        using var key = NodeKey.Create();
        var message = "EMC node registration\nchallenge: 00ff"u8.ToArray();

        var signature = key.SignMessage(message);
        var ok = Signatures.TryRecoverAddress(Signatures.PersonalMessageDigest(message), signature, out var address, out var error);

        Assert.True(ok, error);
        Assert.Equal(key.Address, address);
        Assert.Null(error);
    }

    [Fact]
    public void SignDigest_RandomKeysAndDigests_AgreesWithBouncyCastle()
    {
        var random = new Random(7);
        for (var i = 0; i < 25; i++)
        {
            using var key = NodeKey.Create();
            var digest = new byte[32];
            random.NextBytes(digest);
            var secret = key.Secret.ToArray();

            var signature = key.SignDigest(digest);

            Assert.Equal(key.PublicKey, ReferenceSecp256k1.PublicKey(secret));
            Assert.True(ReferenceSecp256k1.Verify(key.PublicKey, digest, signature), $"BouncyCastle refuses signature {i}");
            Assert.Equal(ReferenceSecp256k1.SignRecoverable(secret, digest), signature);
            Assert.True(Signatures.TryRecoverAddress(digest, signature, out var address, out var error), error);
            Assert.Equal(key.Address, address);
        }
    }

    [Fact]
    public void SignDigest_ManySignatures_AlwaysLowS()
    {
        using var key = NodeKey.Create();
        var halfOrder = ReferenceSecp256k1.Order.ShiftRight(1);
        var random = new Random(11);
        for (var i = 0; i < 64; i++)
        {
            var digest = new byte[32];
            random.NextBytes(digest);

            var signature = key.SignDigest(digest);

            var s = new Org.BouncyCastle.Math.BigInteger(1, signature, 32, 32);
            Assert.True(s.CompareTo(halfOrder) <= 0, $"signature {i} has a high s");
            Assert.InRange(signature[64], (byte)27, (byte)28);
        }
    }

    [Fact]
    public void TryRecoverAddress_EachSingleBitFlipped_FailsOrRecoversAnotherAddress()
    {
        using var key = NodeKey.Create();
        var signature = key.SignDigest(Digest);

        for (var bit = 0; bit < signature.Length * 8; bit++)
        {
            var damaged = (byte[])signature.Clone();
            damaged[bit / 8] ^= (byte)(1 << (bit % 8));

            var ok = Signatures.TryRecoverAddress(Digest, damaged, out var address, out var error);

            if (ok)
            {
                Assert.NotEqual(key.Address, address);
            }
            else
            {
                Assert.False(string.IsNullOrEmpty(error), $"bit {bit}: refused without a reason");
            }
        }
    }

    [Fact]
    public void TryRecoverAddress_OtherDigest_RecoversAnotherAddress()
    {
        using var key = NodeKey.Create();
        var signature = key.SignDigest(Digest);

        var ok = Signatures.TryRecoverAddress(Signatures.PersonalMessageDigest("something else"u8), signature, out var address, out _);

        Assert.False(ok && address == key.Address);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(64)]
    [InlineData(66)]
    [InlineData(130)]
    public void TryRecoverAddress_WrongSignatureLength_RefusedWithReason(int length)
    {
        var ok = Signatures.TryRecoverAddress(Digest, new byte[length], out var address, out var error);

        Assert.False(ok);
        Assert.Null(address);
        Assert.Contains("65 bytes", error, StringComparison.Ordinal);
        Assert.Contains(length.ToString(System.Globalization.CultureInfo.InvariantCulture), error, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(31)]
    [InlineData(33)]
    public void TryRecoverAddress_WrongDigestLength_RefusedWithReason(int length)
    {
        using var key = NodeKey.Create();

        var ok = Signatures.TryRecoverAddress(new byte[length], key.SignDigest(Digest), out _, out var error);

        Assert.False(ok);
        Assert.Contains("32 bytes", error, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(26)]
    [InlineData(29)]
    [InlineData(30)]
    [InlineData(255)]
    public void TryRecoverAddress_RecoveryByteNot27Or28_RefusedWithReason(byte v)
    {
        using var key = NodeKey.Create();
        var signature = key.SignDigest(Digest);
        signature[64] = v;

        var ok = Signatures.TryRecoverAddress(Digest, signature, out var address, out var error);

        Assert.False(ok);
        Assert.Null(address);
        Assert.Contains($"v={v}", error, StringComparison.Ordinal);
    }

    [Fact]
    public void TryRecoverAddress_HighSTwin_RefusedWithReason()
    {
        using var key = NodeKey.Create();
        var signature = key.SignDigest(Digest);
        var twin = HighSTwin(signature);

        // The twin is a valid ECDSA signature by the same key; only the EIP-2 rule turns it away.
        Assert.True(ReferenceSecp256k1.Verify(key.PublicKey, Digest, twin));

        var ok = Signatures.TryRecoverAddress(Digest, twin, out var address, out var error);

        Assert.False(ok);
        Assert.Null(address);
        Assert.Contains("high s", error, StringComparison.Ordinal);
    }

    [Fact]
    public void TryRecoverAddress_ZeroR_Refused()
    {
        using var key = NodeKey.Create();
        var signature = key.SignDigest(Digest);
        signature.AsSpan(0, 32).Clear();

        Assert.False(Signatures.TryRecoverAddress(Digest, signature, out var address, out var error));
        Assert.Null(address);
        Assert.False(string.IsNullOrEmpty(error));
    }

    [Fact]
    public void TryRecoverAddress_RAtGroupOrder_RefusedAsOutOfRange()
    {
        using var key = NodeKey.Create();
        var signature = key.SignDigest(Digest);
        ReferenceSecp256k1.ToFixed32(ReferenceSecp256k1.Order).CopyTo(signature, 0);

        Assert.False(Signatures.TryRecoverAddress(Digest, signature, out _, out var error));
        Assert.Contains("out of range", error, StringComparison.Ordinal);
    }

    private static byte[] HighSTwin(byte[] signature)
    {
        var s = new Org.BouncyCastle.Math.BigInteger(1, signature, 32, 32);
        var twin = (byte[])signature.Clone();
        ReferenceSecp256k1.ToFixed32(ReferenceSecp256k1.Order.Subtract(s)).CopyTo(twin, 32);
        twin[64] = (byte)(signature[64] == 27 ? 28 : 27);
        return twin;
    }
}
