namespace Emc.Core.Accounts;

/// <summary>An account's money as the API shows it, in ledger units (1 EMC = 1,000,000 units).</summary>
/// <param name="Account">The account id.</param>
/// <param name="Available">Its balance (<c>user:ID</c>): what it can fund jobs and deployments with.</param>
/// <param name="Escrows">What each of its open escrows still holds.</param>
public sealed record BalanceView(string Account, long Available, IReadOnlyList<EscrowBalance> Escrows)
{
    /// <summary>Available plus everything still in escrow.</summary>
    public long Total => Available + Escrows.Sum(e => e.Balance);
}

/// <summary>One escrow and what it holds.</summary>
/// <param name="Escrow">Such as <c>job:train-7</c> or <c>deployment:mnist-v1</c>.</param>
/// <param name="Balance">Units left in it.</param>
public sealed record EscrowBalance(string Escrow, long Balance);

/// <summary>The body of POST /api/v1/accounts/{account}/fund and of stake and unstake calls.</summary>
/// <param name="Amount">Ledger units, more than 0.</param>
public sealed record AmountRequest(long Amount);

/// <summary>The body of POST /api/v1/nodes/{address}/stake.</summary>
/// <param name="Amount">Ledger units, more than 0.</param>
/// <param name="Source">"earnings" (from the node's released balance) or "deposit" (new money, the operator's on-ramp).</param>
public sealed record StakeRequest(long Amount, string? Source);

/// <summary>One ledger transaction as the API shows it.</summary>
public sealed record LedgerTransactionView(
    long Sequence,
    string Key,
    string Kind,
    DateTimeOffset Time,
    IReadOnlyList<LedgerEntryView> Entries,
    string? JobId,
    long? Round,
    string? Memo);

/// <summary>One entry: a signed amount on one account.</summary>
public sealed record LedgerEntryView(string Account, long Amount);

/// <summary>A node's stake.</summary>
/// <param name="Node">The node's address.</param>
/// <param name="Staked">Units at stake.</param>
/// <param name="Unstaking">Units on their way out (still slashable).</param>
/// <param name="Pending">The unstakes not yet completed, with when each is due.</param>
/// <param name="Minimum">The stake paid work needs.</param>
/// <param name="Eligible">Whether <paramref name="Staked"/> reaches <paramref name="Minimum"/>.</param>
/// <param name="Earned">Released earnings in <c>node:</c>, not yet settled.</param>
/// <param name="Held">Payments still in their audit window.</param>
public sealed record StakeView(string Node, long Staked, long Unstaking, IReadOnlyList<UnstakeView> Pending, long Minimum, bool Eligible, long Earned, long Held);

/// <summary>An unstake on its way.</summary>
public sealed record UnstakeView(long Amount, DateTimeOffset DueAt);

/// <summary>A closed settlement epoch.</summary>
/// <param name="Number">1, 2, …</param>
/// <param name="ClosedAt">When it closed.</param>
/// <param name="Root">The Merkle root (0x…) a distributor contract is given.</param>
/// <param name="Leaves">How many (index, address, cumulative amount) leaves it has.</param>
/// <param name="TotalCumulative">The sum of the leaves' cumulative amounts.</param>
/// <param name="LastSequence">The last ledger transaction it covers.</param>
public sealed record EpochView(long Number, DateTimeOffset ClosedAt, string Root, int Leaves, long TotalCumulative, long LastSequence);

/// <summary>What a node claims on chain for one epoch, and the proof.</summary>
/// <param name="Epoch">The epoch.</param>
/// <param name="Index">The leaf's index.</param>
/// <param name="Account">The node's address.</param>
/// <param name="Amount">The cumulative amount settled to it through this epoch.</param>
/// <param name="Proof">The sibling hashes, leaf to root (0x…).</param>
/// <param name="Root">The epoch's root.</param>
/// <param name="Leaf">keccak256(abi.encodePacked(uint256 index, address account, uint256 amount)).</param>
public sealed record ClaimProofView(long Epoch, int Index, string Account, long Amount, IReadOnlyList<string> Proof, string Root, string Leaf);
