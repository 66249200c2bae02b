using Emc.Ledger.Settlement;

namespace Emc.Ledger;

/// <summary>
/// Where the journal lives. Each write is all-or-nothing: a transaction, its entries, the balance
/// changes and (for a settlement) the epoch record are stored together or not at all, so after a
/// crash a transaction is either wholly in the journal or wholly absent. A SQL implementation does
/// each write in one database transaction: insert the transaction row (sequence from the database),
/// its entry rows and the balance updates, with a unique index on the idempotency key and one on the
/// epoch number.
/// </summary>
/// <remarks>
/// The store enforces the rules that need its own state to be atomic — an unseen key, and no account
/// but <c>external</c> below zero after the write — so they hold even if two writers race. Everything
/// else (escrow ownership, payments, unstake delays, epoch contents) is decided by
/// <see cref="GeneralLedger"/>, which rebuilds that state by replaying the journal when it opens.
/// </remarks>
public interface ILedgerStore
{
    /// <summary>
    /// Appends <paramref name="draft"/> with the next sequence number, unless its key is already used:
    /// then writes nothing and returns the transaction that key names, with <c>Existing</c> set.
    /// Throws <see cref="InsufficientBalanceException"/> if an account other than <c>external</c> would
    /// end below zero, and <see cref="LedgerOverflowException"/> if a balance would overflow; both
    /// write nothing.
    /// </summary>
    Task<AppendResult> AppendAsync(TransactionDraft draft, CancellationToken cancellationToken);

    /// <summary>
    /// Writes epoch <paramref name="epoch"/> together with its <paramref name="settlement"/> (null
    /// when it settles nothing new), which the store appends as <see cref="AppendAsync"/> would.
    /// Throws <see cref="EpochOrderException"/> unless the epoch's number follows the latest stored
    /// one (or is 1 for the first); nothing is written then.
    /// </summary>
    Task<EpochAppendResult> AppendEpochAsync(EpochDraft epoch, TransactionDraft? settlement, CancellationToken cancellationToken);

    /// <summary>The transaction posted under <paramref name="idempotencyKey"/>, or null.</summary>
    Task<LedgerTransaction?> FindAsync(string idempotencyKey, CancellationToken cancellationToken);

    /// <summary>The balance of <paramref name="account"/>; 0 for an account never used.</summary>
    Task<long> GetBalanceAsync(AccountId account, CancellationToken cancellationToken);

    /// <summary>Every account that has had an entry, with its balance.</summary>
    Task<IReadOnlyDictionary<AccountId, long>> GetBalancesAsync(CancellationToken cancellationToken);

    /// <summary>Up to <paramref name="limit"/> transactions with an entry for <paramref name="account"/>, in sequence order, after <paramref name="afterSequence"/>.</summary>
    Task<IReadOnlyList<LedgerTransaction>> GetAccountJournalAsync(AccountId account, long afterSequence, int limit, CancellationToken cancellationToken);

    /// <summary>Up to <paramref name="limit"/> transactions in sequence order, after <paramref name="afterSequence"/>.</summary>
    Task<IReadOnlyList<LedgerTransaction>> GetTransactionsAfterAsync(long afterSequence, int limit, CancellationToken cancellationToken);

    /// <summary>Epoch <paramref name="number"/>, or null if it is not closed.</summary>
    Task<EpochRecord?> GetEpochAsync(long number, CancellationToken cancellationToken);

    /// <summary>The latest closed epoch, or null before the first.</summary>
    Task<EpochRecord?> GetLatestEpochAsync(CancellationToken cancellationToken);
}

/// <summary>A transaction as stored: <paramref name="Existing"/> when its key was already used and nothing was written.</summary>
public sealed record AppendResult(LedgerTransaction Transaction, bool Existing);

/// <summary>An epoch as stored, with the settlement transaction written with it (null when it settled nothing new).</summary>
public sealed record EpochAppendResult(EpochRecord Epoch, LedgerTransaction? Settlement);
