using Org.BouncyCastle.Crypto.Digests;

namespace Emc.Ledger.Tests.Settlement;

/// <summary>
/// Settlement hashing written again from the specification, on BouncyCastle's Keccak, sharing no code
/// with the ledger: what a distributor contract would compute.
/// </summary>
internal static class ReferenceMerkle
{
    public static byte[] Keccak(byte[] data)
    {
        var digest = new KeccakDigest(256);
        digest.BlockUpdate(data, 0, data.Length);
        var output = new byte[32];
        digest.DoFinal(output, 0);
        return output;
    }

    /// <summary>abi.encodePacked(uint256 index, address account, uint256 amount), byte by byte.</summary>
    public static byte[] Leaf(long index, string address, long amount)
    {
        var packed = new byte[32 + 20 + 32];
        for (var i = 0; i < 8; i++)
        {
            packed[31 - i] = (byte)(index >> (8 * i));
            packed[83 - i] = (byte)(amount >> (8 * i));
        }

        for (var i = 0; i < 20; i++)
        {
            packed[32 + i] = Convert.ToByte(address.Substring(2 + (2 * i), 2), 16);
        }

        return Keccak(packed);
    }

    /// <summary>OpenZeppelin's MerkleProof.verify: fold the proof with sorted-pair hashing.</summary>
    public static bool Verify(IEnumerable<byte[]> proof, byte[] root, byte[] leaf)
    {
        var computed = leaf;
        foreach (var sibling in proof)
        {
            computed = Keccak([.. Less(computed, sibling) ? computed : sibling, .. Less(computed, sibling) ? sibling : computed]);
        }

        return computed.AsSpan().SequenceEqual(root);
    }

    /// <summary>The root, pairing neighbours level by level and carrying a lone last node up.</summary>
    public static byte[] Root(IReadOnlyList<byte[]> leaves)
    {
        if (leaves.Count == 0)
        {
            return new byte[32];
        }

        var level = leaves.ToList();
        while (level.Count > 1)
        {
            var next = new List<byte[]>();
            for (var i = 0; i < level.Count; i += 2)
            {
                next.Add(i + 1 == level.Count
                    ? level[i]
                    : Keccak([.. Less(level[i], level[i + 1]) ? level[i] : level[i + 1], .. Less(level[i], level[i + 1]) ? level[i + 1] : level[i]]));
            }

            level = next;
        }

        return level[0];
    }

    public static byte[] FromHex(string hex) => Convert.FromHexString(hex.StartsWith("0x", StringComparison.Ordinal) ? hex[2..] : hex);

    // Unsigned big-endian comparison, as Solidity compares bytes32 values.
    private static bool Less(byte[] a, byte[] b)
    {
        for (var i = 0; i < a.Length; i++)
        {
            if (a[i] != b[i])
            {
                return a[i] < b[i];
            }
        }

        return false;
    }
}
