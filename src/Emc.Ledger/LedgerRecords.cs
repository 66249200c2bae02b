using Emc.Core.Identity;

namespace Emc.Ledger;

/// <summary>Where a payment stands in its audit window.</summary>
public enum PaymentStatus
{
    /// <summary>In <c>held:node</c>: the audit window is open and a proven fault can still void it.</summary>
    Held,

    /// <summary>Moved to <c>node:</c> after the audit window closed.</summary>
    Released,

    /// <summary>Returned to its escrow (or the escrow's owner) because the work was proven faulty.</summary>
    Voided,
}

/// <summary>
/// A payment for verified work, identified by the idempotency key of the <see cref="TransactionKind.Pay"/>
/// that made it: <paramref name="Net"/> went to the node's held account, <paramref name="Fee"/> to the treasury.
/// </summary>
public sealed record HeldPayment(string Key, long Sequence, EscrowId Escrow, EthAddress Node, long Net, long Fee, PaymentStatus Status)
{
    /// <summary>When the payment was made: its audit window counts from here.</summary>
    public DateTimeOffset PaidAt { get; init; }
}

/// <summary>
/// The outcome of a payment. When the escrow held less than <paramref name="Requested"/>, the ledger
/// pays what was left (<paramref name="Gross"/>) and <see cref="Shortfall"/> says how much went unpaid;
/// the escrow is then empty and the caller should stop the work it funds.
/// </summary>
public sealed record Payment(LedgerTransaction Transaction, long Requested, long Gross, long Fee, long Net)
{
    /// <summary>Requested minus paid: zero unless the escrow ran out.</summary>
    public long Shortfall => Requested - Gross;

    /// <summary>Whether the escrow ran out before the whole request was paid.</summary>
    public bool IsPartial => Shortfall > 0;
}

/// <summary>
/// The outcome of a slash: <paramref name="Slashed"/> units taken, first from the stake, then from
/// stake on its way out. Capped at what the node has staked; a node with nothing staked is slashed
/// nothing and <paramref name="Transaction"/> is null.
/// </summary>
public sealed record SlashResult(LedgerTransaction? Transaction, long Slashed, long FromStake, long FromUnstaking);

/// <summary>Stake on its way out: <paramref name="Amount"/> units (less any slashed since) that can be completed from <paramref name="DueAt"/>.</summary>
public sealed record PendingUnstake(string Key, long Sequence, long Amount, DateTimeOffset DueAt);

/// <summary>Where voided money goes.</summary>
public enum VoidDestination
{
    /// <summary>Back into the escrow, to pay for the work again (a job still running).</summary>
    Escrow,

    /// <summary>Straight to the escrow's owner (a job that has ended and been refunded).</summary>
    Owner,
}
