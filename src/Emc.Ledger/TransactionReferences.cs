using Emc.Core.Identity;

namespace Emc.Ledger;

/// <summary>
/// What the caller says a transaction is about, kept with it for audits and statements. Every field
/// is optional and part of the request: the same idempotency key with other references is a conflict.
/// </summary>
public sealed record TransactionReferences
{
    /// <summary>The longest job id or request id, in characters.</summary>
    public const int MaxIdLength = 200;

    /// <summary>The longest memo, in characters.</summary>
    public const int MaxMemoLength = 1000;

    /// <summary>No references.</summary>
    public static TransactionReferences None { get; } = new();

    /// <summary>The training job or deployment the money is for.</summary>
    public string? JobId { get; init; }

    /// <summary>The training round (or inference batch) the payment covers; not negative.</summary>
    public long? Round { get; init; }

    /// <summary>The client's or node's request id, such as an inference request.</summary>
    public string? RequestId { get; init; }

    /// <summary>Free text for people reading the journal.</summary>
    public string? Memo { get; init; }

    internal void Validate()
    {
        if (JobId is { Length: 0 or > MaxIdLength })
        {
            throw new ArgumentException($"A job id in references has 1 to {MaxIdLength} characters.", nameof(JobId));
        }

        if (RequestId is { Length: 0 or > MaxIdLength })
        {
            throw new ArgumentException($"A request id in references has 1 to {MaxIdLength} characters.", nameof(RequestId));
        }

        if (Memo is { Length: > MaxMemoLength })
        {
            throw new ArgumentException($"A memo has at most {MaxMemoLength} characters.", nameof(Memo));
        }

        if (Round is < 0)
        {
            throw new ArgumentOutOfRangeException(nameof(Round), Round, "A round is not negative.");
        }
    }
}

/// <summary>
/// What the ledger itself records about a transaction, from which it rebuilds its state after a
/// restart: the escrow and node concerned, the payment a release or void settles, when an unstake
/// becomes due, and the epoch a settlement closes. Fields that do not apply to a kind are null.
/// </summary>
public sealed record TransactionSubject
{
    /// <summary>Nothing recorded.</summary>
    public static TransactionSubject None { get; } = new();

    /// <summary>The escrow opened, topped up, paid from, voided back to or refunded.</summary>
    public EscrowId? Escrow { get; init; }

    /// <summary>The node paid, released, voided, staked, unstaked or slashed.</summary>
    public EthAddress? Node { get; init; }

    /// <summary>For a release or void: the idempotency key of the payment it concerns.</summary>
    public string? Payment { get; init; }

    /// <summary>For an unstake request: when it may be completed.</summary>
    public DateTimeOffset? DueAt { get; init; }

    /// <summary>For a settlement: the epoch it closes.</summary>
    public long? Epoch { get; init; }
}
