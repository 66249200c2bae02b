using System.Collections.Immutable;

namespace Emc.Ledger;

/// <summary>
/// A posted transaction: at least two entries over distinct accounts, none zero, summing to zero.
/// <paramref name="Sequence"/> is assigned by the store (1, 2, 3, … in posting order);
/// <paramref name="RequestDigest"/> fingerprints the request that posted it, so a repeat of the
/// same key can be told apart from a different request under that key.
/// </summary>
public sealed record LedgerTransaction(
    long Sequence,
    string IdempotencyKey,
    TransactionKind Kind,
    DateTimeOffset Time,
    ImmutableArray<LedgerEntry> Entries,
    TransactionReferences References,
    TransactionSubject Subject,
    string RequestDigest)
{
    /// <summary>The amount the transaction adds to <paramref name="account"/> (negative: takes), or 0 if it has no entry for it.</summary>
    public long AmountFor(AccountId account)
    {
        foreach (var entry in Entries)
        {
            if (entry.Account == account)
            {
                return entry.Amount;
            }
        }

        return 0;
    }
}

/// <summary>
/// A transaction the ledger hands to its store, checked on construction: a valid idempotency key
/// and balanced double entry. The store assigns the sequence number with <see cref="ToTransaction"/>.
/// </summary>
public sealed class TransactionDraft
{
    /// <summary>The longest idempotency key, in characters.</summary>
    public const int MaxKeyLength = 200;

    /// <summary>Checks and holds a transaction; throws <see cref="InvalidTransactionException"/> if it breaks double entry.</summary>
    public TransactionDraft(
        string idempotencyKey,
        TransactionKind kind,
        DateTimeOffset time,
        IEnumerable<LedgerEntry> entries,
        TransactionReferences references,
        TransactionSubject subject,
        string requestDigest)
    {
        CheckKey(idempotencyKey);
        ArgumentNullException.ThrowIfNull(entries);
        ArgumentNullException.ThrowIfNull(references);
        ArgumentNullException.ThrowIfNull(subject);
        ArgumentException.ThrowIfNullOrEmpty(requestDigest);
        references.Validate();

        var list = entries.ToImmutableArray();
        CheckEntries(list);
        IdempotencyKey = idempotencyKey;
        Kind = kind;
        Time = time;
        Entries = list;
        References = references;
        Subject = subject;
        RequestDigest = requestDigest;
    }

    public string IdempotencyKey { get; }

    public TransactionKind Kind { get; }

    public DateTimeOffset Time { get; }

    public ImmutableArray<LedgerEntry> Entries { get; }

    public TransactionReferences References { get; }

    public TransactionSubject Subject { get; }

    public string RequestDigest { get; }

    /// <summary>The posted transaction, numbered <paramref name="sequence"/>.</summary>
    public LedgerTransaction ToTransaction(long sequence) =>
        new(sequence, IdempotencyKey, Kind, Time, Entries, References, Subject, RequestDigest);

    /// <summary>Throws <see cref="ArgumentException"/> unless <paramref name="key"/> has 1 to <see cref="MaxKeyLength"/> characters and no control characters.</summary>
    public static void CheckKey(string key)
    {
        ArgumentNullException.ThrowIfNull(key);
        if (key.Length is 0 or > MaxKeyLength)
        {
            throw new ArgumentException($"An idempotency key has 1 to {MaxKeyLength} characters; this one has {key.Length}.", nameof(key));
        }

        foreach (var ch in key)
        {
            if (char.IsControl(ch))
            {
                throw new ArgumentException("An idempotency key has no control characters.", nameof(key));
            }
        }
    }

    private static void CheckEntries(ImmutableArray<LedgerEntry> entries)
    {
        if (entries.Length < 2)
        {
            throw new InvalidTransactionException($"A transaction has at least two entries; this one has {entries.Length}.");
        }

        var seen = new HashSet<AccountId>();
        Int128 sum = 0;
        foreach (var entry in entries)
        {
            if (entry.Account is null)
            {
                throw new InvalidTransactionException("An entry names no account.");
            }

            if (entry.Amount == 0)
            {
                throw new InvalidTransactionException($"The entry for {entry.Account} is zero; a transaction has no zero entries.");
            }

            if (!seen.Add(entry.Account))
            {
                throw new InvalidTransactionException($"{entry.Account} appears twice; a transaction has one entry per account.");
            }

            sum += entry.Amount;
        }

        if (sum != 0)
        {
            throw new InvalidTransactionException($"The entries sum to {sum}, not zero: [{string.Join(", ", entries)}].");
        }
    }
}
