namespace Emc.Coordinator.Verification;

/// <summary>How the <see cref="TrustPersistence"/> keeps the trust book in the database.</summary>
public sealed class TrustPersistenceOptions
{
    /// <summary>
    /// How often the records and reputations that changed are written, in one transaction. Default 1 s:
    /// verdicts come a few per second at most; a crash loses at most this much of the verified results, which
    /// only makes the nodes concerned audited more (faults and disputes are written at once).
    /// </summary>
    public TimeSpan FlushInterval { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>The errors in these settings, empty when they are usable.</summary>
    public IReadOnlyList<string> Validate() =>
        FlushInterval <= TimeSpan.Zero ? ["the trust book's flush interval must be positive"] : [];
}
