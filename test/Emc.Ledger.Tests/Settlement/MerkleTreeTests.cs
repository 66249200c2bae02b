using System.Collections.Immutable;
using System.Globalization;
using Emc.Core.Identity;
using Emc.Ledger.Settlement;

namespace Emc.Ledger.Tests.Settlement;

public sealed class MerkleTreeTests
{
    [Fact]
    public void LeafHash_KnownVector_MatchesHandEncodedBytes()
    {
        // keccak256 of 32 zero bytes (index 0), then 0x00…01 (20 bytes), then uint256 1: computed
        // with a third Keccak implementation when this test was written.
        const string expected = "4e641f195fa577e5e909e012d9b75354bf06ec15a5d1aa2dca05d496c62ab460";
        var packed = new byte[84];
        packed[51] = 0x01;
        packed[83] = 0x01;

        var leaf = new SettlementLeaf(0, EthAddress.Parse("0x0000000000000000000000000000000000000001"), 1).Hash();

        Assert.Equal(expected, Convert.ToHexStringLower(ReferenceMerkle.Keccak(packed)));
        Assert.Equal(expected, Convert.ToHexStringLower(ReferenceMerkle.Leaf(0, "0x0000000000000000000000000000000000000001", 1)));
        Assert.Equal(expected, Convert.ToHexStringLower(leaf.AsSpan()));
    }

    [Fact]
    public void Root_ThreeKnownLeaves_MatchesKnownVector()
    {
        var leaves = Enumerable.Range(1, 3).Select(i => new SettlementLeaf(i - 1, Address(i), i).Hash());

        var tree = new MerkleTree(leaves);

        Assert.Equal("21568b30aa3c09c3c9b542f526436529f27da6e134dc435416aa64136b2a0564", Convert.ToHexStringLower(tree.Root.AsSpan()));
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    [InlineData(5)]
    [InlineData(7)]
    [InlineData(100)]
    public void EveryProof_VerifiesWithIndependentKeccak(int count)
    {
        var leaves = RandomLeaves(count, seed: count);
        var hashes = leaves.Select(l => ReferenceMerkle.Leaf(l.Index, l.Account.ToString(), l.CumulativeAmount)).ToList();

        var tree = new MerkleTree(leaves.Select(l => l.Hash()));

        Assert.Equal(count, tree.Count);
        Assert.Equal(ReferenceMerkle.Root(hashes), tree.Root.ToArray());
        for (var i = 0; i < count; i++)
        {
            var proof = tree.GetProof(i);
            Assert.True(ReferenceMerkle.Verify(proof.Select(p => p.ToArray()), tree.Root.ToArray(), hashes[i]), $"leaf {i} of {count}");
            Assert.True(MerkleTree.Verify(proof, tree.Root.AsSpan(), hashes[i]));
            Assert.True(proof.Length <= (int)Math.Ceiling(Math.Log2(count)));
        }
    }

    [Theory]
    [InlineData(2)]
    [InlineData(5)]
    [InlineData(100)]
    public void TamperedLeafOrProof_FailsVerification(int count)
    {
        var leaves = RandomLeaves(count, seed: 1000 + count);
        var tree = new MerkleTree(leaves.Select(l => l.Hash()));
        var root = tree.Root.ToArray();

        for (var i = 0; i < count; i++)
        {
            var leaf = leaves[i];
            var proof = tree.GetProof(i).Select(p => p.ToArray()).ToList();
            var address = leaf.Account.ToString();
            var otherAddress = address[..^1] + (address[^1] == '0' ? '1' : '0');

            Assert.False(ReferenceMerkle.Verify(proof, root, ReferenceMerkle.Leaf(leaf.Index, address, leaf.CumulativeAmount + 1)));
            Assert.False(ReferenceMerkle.Verify(proof, root, ReferenceMerkle.Leaf(leaf.Index + 1, address, leaf.CumulativeAmount)));
            Assert.False(ReferenceMerkle.Verify(proof, root, ReferenceMerkle.Leaf(leaf.Index, otherAddress, leaf.CumulativeAmount)));
            Assert.False(MerkleTree.Verify(tree.GetProof(i), root, (leaf with { CumulativeAmount = leaf.CumulativeAmount + 1 }).Hash().AsSpan()));

            var flipped = proof.Select(p => (byte[])p.Clone()).ToList();
            flipped[^1][7] ^= 0x01;
            Assert.False(ReferenceMerkle.Verify(flipped, root, leaf.Hash().ToArray()));
            Assert.False(MerkleTree.Verify(flipped.Select(p => ImmutableArray.Create(p)), root, leaf.Hash().AsSpan()));
            Assert.False(MerkleTree.Verify(tree.GetProof(i).RemoveAt(0), root, leaf.Hash().AsSpan()));
        }
    }

    [Fact]
    public void OneLeaf_RootIsTheLeafAndProofIsEmpty()
    {
        var leaf = new SettlementLeaf(0, Address(9), 42).Hash();

        var tree = new MerkleTree([leaf]);

        Assert.True(tree.Root.SequenceEqual(leaf));
        Assert.Empty(tree.GetProof(0));
        Assert.True(MerkleTree.Verify([], tree.Root.AsSpan(), leaf.AsSpan()));
    }

    [Fact]
    public void NoLeaves_RootIsZero()
    {
        var tree = new MerkleTree([]);

        Assert.Equal(0, tree.Count);
        Assert.Equal(new byte[32], tree.Root.ToArray());
        Assert.Throws<ArgumentOutOfRangeException>(() => tree.GetProof(0));
    }

    [Fact]
    public void OddLevel_LastNodeIsCarriedUp()
    {
        var leaves = Enumerable.Range(0, 3).Select(i => new SettlementLeaf(i, Address(i + 1), i + 1).Hash()).ToList();

        var tree = new MerkleTree(leaves);

        // The third leaf has no partner at the bottom level: its proof is just the hash of the first pair.
        var proof = Assert.Single(tree.GetProof(2));
        Assert.Equal(MerkleTree.HashPair(leaves[0].AsSpan(), leaves[1].AsSpan()), proof.ToArray());
    }

    [Fact]
    public void Constructor_LeafOfWrongSize_Throws() =>
        Assert.Throws<ArgumentException>(() => new MerkleTree([ImmutableArray.Create(new byte[31])]));

    [Fact]
    public void HashPair_IsOrderIndependent()
    {
        var a = ReferenceMerkle.Keccak([1]);
        var b = ReferenceMerkle.Keccak([2]);

        Assert.Equal(MerkleTree.HashPair(a, b), MerkleTree.HashPair(b, a));
    }

    private static EthAddress Address(int n) => EthAddress.Parse("0x" + n.ToString("x40", CultureInfo.InvariantCulture));

    private static List<SettlementLeaf> RandomLeaves(int count, int seed)
    {
        var random = new Random(seed);
        var bytes = new byte[20];
        return Enumerable.Range(0, count)
            .Select(_ =>
            {
                random.NextBytes(bytes);
                return EthAddress.Parse("0x" + Convert.ToHexStringLower(bytes));
            })
            .OrderBy(a => a.ToString(), StringComparer.Ordinal)
            .Select((address, index) => new SettlementLeaf(index, address, random.NextInt64(1, long.MaxValue)))
            .ToList();
    }
}
