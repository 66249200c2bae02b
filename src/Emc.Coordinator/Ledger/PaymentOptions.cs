namespace Emc.Coordinator.Ledger;

/// <summary>When the coordinator moves money on its own: releasing held payments and completing unstakes.</summary>
public sealed class PaymentOptions
{
    /// <summary>
    /// How long a payment stays held (in <c>held:node</c>), where a proven fault can still void it, before it
    /// is released to the node. Default 30 s: nodes are credited well within a minute of verified work.
    /// </summary>
    public TimeSpan AuditWindow { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>
    /// The audit window of a training round's payment (key <c>pay:JOB:rROUND:NODE</c>) that no verdict
    /// settled: normally the training verifier releases it as soon as the node-round is verified (at once, or
    /// after its replay) and voids it when a fault is proven; this releases what a lost check left behind.
    /// Default 10 minutes.
    /// </summary>
    public TimeSpan TrainingAuditWindow { get; set; } = TimeSpan.FromMinutes(10);

    /// <summary>How often held payments and due unstakes are looked at. Default 1 s.</summary>
    public TimeSpan Interval { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>The errors in these settings, empty when they are usable.</summary>
    public IReadOnlyList<string> Validate() =>
        AuditWindow < TimeSpan.Zero || Interval <= TimeSpan.Zero ? ["the audit window must not be negative and the interval must be positive"] : [];
}
