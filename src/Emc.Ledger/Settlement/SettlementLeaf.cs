using System.Buffers.Binary;
using System.Collections.Immutable;
using Emc.Core.Crypto;
using Emc.Core.Identity;

namespace Emc.Ledger.Settlement;

/// <summary>
/// One node's line in an epoch: its position among the epoch's leaves (sorted by address), its
/// address, and the cumulative amount settled to it over all epochs up to this one, in units.
/// </summary>
public sealed record SettlementLeaf(int Index, EthAddress Account, long CumulativeAmount)
{
    /// <summary>Bytes hashed for a leaf: uint256 index, 20-byte address, uint256 amount.</summary>
    public const int EncodedSize = 32 + EthAddress.Size + 32;

    /// <summary>
    /// <c>keccak256(abi.encodePacked(uint256 index, address account, uint256 amount))</c>, the leaf
    /// Uniswap's MerkleDistributor checks.
    /// </summary>
    public ImmutableArray<byte> Hash()
    {
        ArgumentOutOfRangeException.ThrowIfNegative(Index);
        ArgumentOutOfRangeException.ThrowIfNegative(CumulativeAmount);
        Span<byte> packed = stackalloc byte[EncodedSize];
        packed.Clear();
        BinaryPrimitives.WriteInt64BigEndian(packed[24..32], Index);
        Convert.FromHexString(Account.ToString().AsSpan(2), packed[32..(32 + EthAddress.Size)], out _, out _);
        BinaryPrimitives.WriteInt64BigEndian(packed[(EncodedSize - 8)..], CumulativeAmount);
        return ImmutableArray.Create(Keccak256.Hash(packed));
    }
}
