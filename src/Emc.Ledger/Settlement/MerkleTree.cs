using System.Collections.Immutable;
using Emc.Core.Crypto;

namespace Emc.Ledger.Settlement;

/// <summary>
/// A keccak256 Merkle tree in the form OpenZeppelin's <c>MerkleProof.verify</c> checks: each pair is
/// hashed in sorted order, <c>keccak256(min(a, b) ‖ max(a, b))</c>, so a proof is just the siblings
/// from leaf to root with no left/right flags. A node left without a partner at the end of a level is
/// carried up unchanged (its proof has no sibling for that level). One leaf: the root is the leaf and
/// its proof is empty. No leaves: the root is 32 zero bytes.
/// </summary>
public sealed class MerkleTree
{
    private static readonly ImmutableArray<byte> ZeroRoot = ImmutableArray.Create(new byte[Keccak256.HashSize]);

    // _levels[0] holds the leaves, the last level the root alone.
    private readonly List<byte[][]> _levels = [];

    /// <summary>Builds the tree over <paramref name="leaves"/>, each a 32-byte hash, in the order given.</summary>
    public MerkleTree(IEnumerable<ImmutableArray<byte>> leaves)
    {
        ArgumentNullException.ThrowIfNull(leaves);
        var level = leaves.Select(leaf => leaf.Length == Keccak256.HashSize
                ? leaf.ToArray()
                : throw new ArgumentException($"A leaf is a {Keccak256.HashSize}-byte hash; one has {leaf.Length} bytes.", nameof(leaves)))
            .ToArray();
        _levels.Add(level);
        while (level.Length > 1)
        {
            var next = new byte[(level.Length + 1) / 2][];
            for (var i = 0; i < next.Length; i++)
            {
                var left = 2 * i;
                next[i] = left + 1 < level.Length ? HashPair(level[left], level[left + 1]) : level[left];
            }

            _levels.Add(next);
            level = next;
        }

        Root = level.Length == 0 ? ZeroRoot : ImmutableArray.Create(level[0]);
    }

    /// <summary>The number of leaves.</summary>
    public int Count => _levels[0].Length;

    /// <summary>The root: the single leaf's hash for one leaf, 32 zero bytes for none.</summary>
    public ImmutableArray<byte> Root { get; }

    /// <summary>The siblings from leaf <paramref name="index"/> up to the root.</summary>
    public ImmutableArray<ImmutableArray<byte>> GetProof(int index)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(index);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(index, Count);
        var proof = ImmutableArray.CreateBuilder<ImmutableArray<byte>>();
        for (var depth = 0; depth < _levels.Count - 1; depth++)
        {
            var level = _levels[depth];
            var sibling = index ^ 1;
            if (sibling < level.Length)
            {
                proof.Add(ImmutableArray.Create(level[sibling]));
            }

            index >>= 1;
        }

        return proof.ToImmutable();
    }

    /// <summary>Whether <paramref name="proof"/> leads from <paramref name="leaf"/> to <paramref name="root"/>, as OpenZeppelin's <c>MerkleProof.verify</c> decides.</summary>
    public static bool Verify(IEnumerable<ImmutableArray<byte>> proof, ReadOnlySpan<byte> root, ReadOnlySpan<byte> leaf)
    {
        ArgumentNullException.ThrowIfNull(proof);
        if (leaf.Length != Keccak256.HashSize || root.Length != Keccak256.HashSize)
        {
            return false;
        }

        var computed = leaf.ToArray();
        foreach (var sibling in proof)
        {
            if (sibling.Length != Keccak256.HashSize)
            {
                return false;
            }

            computed = HashPair(computed, sibling.AsSpan());
        }

        return root.SequenceEqual(computed);
    }

    /// <summary><c>keccak256(min(a, b) ‖ max(a, b))</c>, comparing the hashes as big-endian numbers.</summary>
    public static byte[] HashPair(ReadOnlySpan<byte> a, ReadOnlySpan<byte> b)
    {
        Span<byte> pair = stackalloc byte[2 * Keccak256.HashSize];
        var aFirst = a.SequenceCompareTo(b) <= 0;
        (aFirst ? a : b).CopyTo(pair);
        (aFirst ? b : a).CopyTo(pair[Keccak256.HashSize..]);
        return Keccak256.Hash(pair);
    }
}
