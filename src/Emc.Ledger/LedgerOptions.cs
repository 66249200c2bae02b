namespace Emc.Ledger;

/// <summary>Settings of a <see cref="GeneralLedger"/>, checked by <see cref="Validate"/> when it opens.</summary>
public sealed class LedgerOptions
{
    /// <summary>
    /// How long stake stays in <c>unstaking:</c> before it can be completed, during which it can still
    /// be slashed (so faults found late still cost the node). Default 7 days; zero is allowed.
    /// </summary>
    public TimeSpan UnstakeDelay { get; set; } = TimeSpan.FromDays(7);

    /// <summary>Throws <see cref="ArgumentOutOfRangeException"/> for a setting out of range.</summary>
    public void Validate()
    {
        if (UnstakeDelay < TimeSpan.Zero || UnstakeDelay > TimeSpan.FromDays(3650))
        {
            throw new ArgumentOutOfRangeException(nameof(UnstakeDelay), UnstakeDelay, "The unstake delay is between zero and ten years.");
        }
    }
}
