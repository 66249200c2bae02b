namespace Emc.Ledger;

/// <summary>
/// One leg of a transaction: <paramref name="Amount"/> units added to <paramref name="Account"/>'s
/// balance (negative: taken from it). Never zero.
/// </summary>
public readonly record struct LedgerEntry(AccountId Account, long Amount)
{
    /// <summary>"user:alice -5".</summary>
    public override string ToString() => $"{Account} {Amount:+0;-0}";
}
