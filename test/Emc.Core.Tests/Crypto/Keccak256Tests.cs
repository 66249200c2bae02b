using System.Text;
using Emc.Core.Crypto;
using Org.BouncyCastle.Crypto.Digests;

namespace Emc.Core.Tests.Crypto;

public sealed class Keccak256Tests
{
    [Theory]
    [InlineData("", "c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470")]
    [InlineData("abc", "4e03657aea45a94fc7d47ba826c8d667c0d1e6e33a64a036ec44f58fa12d6c45")]
    public void Hash_KnownVector_MatchesPublishedDigest(string text, string expectedHex)
    {
        var digest = Keccak256.Hash(Encoding.ASCII.GetBytes(text));

        Assert.Equal(expectedHex, Convert.ToHexStringLower(digest));
    }

    [Fact]
    public void Hash_EmptyInput_DiffersFromSha3Padding()
    {
        // SHA3-256("") with the FIPS 0x06 padding; Ethereum's Keccak must not give it.
        const string sha3OfEmpty = "a7ffc6f8bf1ed76651c14756a061d662f580ff4de43b49fa82d80a4b80f8434a";

        Assert.NotEqual(sha3OfEmpty, Convert.ToHexStringLower(Keccak256.Hash([])));
    }

    [Fact]
    public void Hash_EveryLengthUpTo600_AgreesWithBouncyCastle()
    {
        // 0..600 crosses the 136-byte rate four times, including inputs of exactly one rate
        // (the padding then needs a block of its own) and of rate - 1 (0x01 and 0x80 share a byte).
        var random = new Random(20240601);
        for (var length = 0; length <= 600; length++)
        {
            var data = new byte[length];
            random.NextBytes(data);

            Assert.True(
                ReferenceKeccak(data).AsSpan().SequenceEqual(Keccak256.Hash(data)),
                $"digests differ for a {length}-byte input");
        }
    }

    [Fact]
    public void Hash_IntoSpan_WritesSameDigestAsArrayOverload()
    {
        var data = Encoding.ASCII.GetBytes("span overload");
        var destination = new byte[40];

        Keccak256.Hash(data, destination);

        Assert.Equal(Keccak256.Hash(data), destination[..32]);
        Assert.All(destination[32..], b => Assert.Equal(0, b));
    }

    [Fact]
    public void Hash_DestinationTooShort_ThrowsArgumentException()
    {
        var ex = Assert.Throws<ArgumentException>(() => Keccak256.Hash([1, 2, 3], new byte[31]));

        Assert.Equal("destination", ex.ParamName);
    }

    private static byte[] ReferenceKeccak(byte[] data)
    {
        var digest = new KeccakDigest(256);
        digest.BlockUpdate(data, 0, data.Length);
        var output = new byte[digest.GetDigestSize()];
        digest.DoFinal(output, 0);
        return output;
    }
}
