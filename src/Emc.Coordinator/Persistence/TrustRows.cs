namespace Emc.Coordinator.Persistence;

/// <summary>A node's verification record in one scope (<see cref="Core.Verification.TrustRecord"/>), as <see cref="Verification.TrustStore"/> keeps it.</summary>
public sealed class TrustRecordRow
{
    /// <summary>The node id (its address).</summary>
    public required string Node { get; set; }

    /// <summary>What the record is about, such as <c>model:mnist:3</c> or <c>training</c>.</summary>
    public required string Scope { get; set; }

    public long Consecutive { get; set; }
    public long Verified { get; set; }
    public long Faults { get; set; }
    public long Disputes { get; set; }
    public long UpdatedAtUnixMs { get; set; }
}

/// <summary>A node's reputation in the trust book (a moving average of its verified outcomes, in [0, 1]).</summary>
public sealed class TrustReputationRow
{
    /// <summary>The node id (its address).</summary>
    public required string Node { get; set; }

    public double Reputation { get; set; }
    public long UpdatedAtUnixMs { get; set; }
}
