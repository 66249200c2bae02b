namespace Emc.Ledger;

/// <summary>A request the ledger refuses. Nothing changed: the message says why and what to change.
/// Subclasses name the common cases so callers can map them (to 402, 404, 409 and so on).</summary>
public class LedgerException : Exception
{
    public LedgerException()
    {
    }

    public LedgerException(string message)
        : base(message)
    {
    }

    public LedgerException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}

/// <summary>An account would end below zero, as in "insufficient balance: user:alice has 5 units, needs 8 units".</summary>
public sealed class InsufficientBalanceException : LedgerException
{
    public InsufficientBalanceException()
    {
    }

    public InsufficientBalanceException(string message)
        : base(message)
    {
    }

    public InsufficientBalanceException(string message, Exception innerException)
        : base(message, innerException)
    {
    }

    /// <summary>The account that is short.</summary>
    public AccountId? Account { get; private init; }

    /// <summary>Its balance before the transaction, in units.</summary>
    public long Balance { get; private init; }

    /// <summary>What the transaction takes from it, in units.</summary>
    public long Needed { get; private init; }

    /// <summary>The exception for <paramref name="account"/> holding <paramref name="balance"/> but asked for <paramref name="needed"/>.</summary>
    public static InsufficientBalanceException For(AccountId account, long balance, long needed) =>
        new($"insufficient balance: {account} has {balance} units, needs {needed} units")
        {
            Account = account,
            Balance = balance,
            Needed = needed,
        };
}

/// <summary>An idempotency key already used by a different request (another operation or other arguments).</summary>
public sealed class IdempotencyConflictException : LedgerException
{
    public IdempotencyConflictException()
    {
    }

    public IdempotencyConflictException(string message)
        : base(message)
    {
    }

    public IdempotencyConflictException(string message, Exception innerException)
        : base(message, innerException)
    {
    }

    /// <summary>The key used twice.</summary>
    public string? Key { get; private init; }

    /// <summary>The transaction the key already names.</summary>
    public LedgerTransaction? Existing { get; private init; }

    /// <summary>The exception for a request that reuses <paramref name="key"/>, which already names <paramref name="existing"/>.</summary>
    public static IdempotencyConflictException For(string key, LedgerTransaction existing)
    {
        ArgumentNullException.ThrowIfNull(existing);
        return new IdempotencyConflictException(
            $"idempotency key '{key}' was already used by transaction {existing.Sequence} ({existing.Kind}) with different content; "
            + "repeat a request with exactly the same arguments, or use a new key for a new request")
        {
            Key = key,
            Existing = existing,
        };
    }
}

/// <summary>A transaction that breaks double entry: fewer than two entries, a zero amount, an account twice, or entries that do not sum to zero.</summary>
public sealed class InvalidTransactionException : LedgerException
{
    public InvalidTransactionException()
    {
    }

    public InvalidTransactionException(string message)
        : base(message)
    {
    }

    public InvalidTransactionException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}

/// <summary>An amount or balance that would not fit in 64 bits. The ledger never wraps.</summary>
public sealed class LedgerOverflowException : LedgerException
{
    public LedgerOverflowException()
    {
    }

    public LedgerOverflowException(string message)
        : base(message)
    {
    }

    public LedgerOverflowException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}

/// <summary>An escrow that was never opened.</summary>
public sealed class UnknownEscrowException : LedgerException
{
    public UnknownEscrowException()
    {
    }

    public UnknownEscrowException(string message)
        : base(message)
    {
    }

    public UnknownEscrowException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}

/// <summary>An escrow id already opened by an earlier request (each job or deployment has one escrow).</summary>
public sealed class EscrowExistsException : LedgerException
{
    public EscrowExistsException()
    {
    }

    public EscrowExistsException(string message)
        : base(message)
    {
    }

    public EscrowExistsException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}

/// <summary>A release or void of a payment that is not held: unknown, or already released or voided.</summary>
public sealed class PaymentStateException : LedgerException
{
    public PaymentStateException()
    {
    }

    public PaymentStateException(string message)
        : base(message)
    {
    }

    public PaymentStateException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}

/// <summary>Completing an unstake before its delay has passed, or with none pending.</summary>
public sealed class UnstakeNotDueException : LedgerException
{
    public UnstakeNotDueException()
    {
    }

    public UnstakeNotDueException(string message)
        : base(message)
    {
    }

    public UnstakeNotDueException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}

/// <summary>Closing an epoch out of order: epochs close one after another, starting at 1.</summary>
public sealed class EpochOrderException : LedgerException
{
    public EpochOrderException()
    {
    }

    public EpochOrderException(string message)
        : base(message)
    {
    }

    public EpochOrderException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}

/// <summary>The stored journal disagrees with itself (balances that do not match their entries, a record that
/// replays to a different state). The ledger refuses to open rather than pay from a wrong state.</summary>
public sealed class LedgerCorruptException : LedgerException
{
    public LedgerCorruptException()
    {
    }

    public LedgerCorruptException(string message)
        : base(message)
    {
    }

    public LedgerCorruptException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}
