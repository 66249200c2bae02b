using System.Collections.Immutable;
using Emc.Core.Identity;

namespace Emc.Ledger.Settlement;

/// <summary>
/// A closed epoch, immutable once written. <paramref name="LastSequence"/> is the last journal
/// transaction it includes (its own settlement, when it settled anything); <paramref name="Leaves"/>
/// hold every address ever settled, sorted by address, with cumulative amounts; <paramref name="Root"/>
/// is their Merkle root as 0x-hex (all zeros when there are no leaves). <paramref name="SettlementSequence"/>
/// is the transaction that moved this epoch's new earnings to <c>settled</c>, or null when there were none.
/// </summary>
public sealed record EpochRecord(
    long Number,
    DateTimeOffset ClosedAt,
    long LastSequence,
    long? SettlementSequence,
    ImmutableArray<SettlementLeaf> Leaves,
    string Root)
{
    /// <summary>Everything settled up to and including this epoch, in units.</summary>
    public long TotalSettled => Leaves.Aggregate(0L, (sum, leaf) => LedgerUnits.Add(sum, leaf.CumulativeAmount, "the epoch total"));

    /// <summary>The leaf of <paramref name="account"/>, or null if nothing has been settled to it.</summary>
    public SettlementLeaf? FindLeaf(EthAddress account)
    {
        foreach (var leaf in Leaves)
        {
            if (leaf.Account == account)
            {
                return leaf;
            }
        }

        return null;
    }
}

/// <summary>An epoch as the ledger hands it to its store, which adds the journal positions.</summary>
public sealed record EpochDraft(long Number, DateTimeOffset ClosedAt, ImmutableArray<SettlementLeaf> Leaves, string Root)
{
    /// <summary>The record once the store knows the journal's last sequence and the settlement's own.</summary>
    public EpochRecord ToRecord(long lastSequence, long? settlementSequence) =>
        new(Number, ClosedAt, lastSequence, settlementSequence, Leaves, Root);
}

/// <summary>
/// What a node submits to the distributor to claim: the epoch, its leaf (index, address, cumulative
/// amount), the sibling hashes from leaf to root, and the root they lead to, all as 0x-hex. The
/// distributor pays <c>Amount</c> minus what the address has already claimed.
/// </summary>
public sealed record ClaimProof(long Epoch, int Index, EthAddress Account, long Amount, ImmutableArray<string> Proof, string Root, string Leaf);
