using Emc.Core.Verification;

namespace Emc.Coordinator.Verification;

/// <summary>Settings of the <see cref="InferenceAuditor"/>.</summary>
public sealed class InferenceAuditOptions
{
    /// <summary>Whether answers are checked at all. Default true; off only for benchmarks of the bare path.</summary>
    public bool Enabled { get; set; } = true;

    /// <summary>How often a node's answers are re-run elsewhere, from its record. Default <see cref="AuditPolicy.Inference"/> (floor 5 %).</summary>
    public AuditPolicy Policy { get; set; } = AuditPolicy.Inference;

    /// <summary>When two answers agree. Default <see cref="OutputComparer.Default"/>.</summary>
    public OutputComparer Comparer { get; set; } = OutputComparer.Default;

    /// <summary>Checks waiting to run, at most; beyond it a check is dropped and counted. Default 4,096.</summary>
    public int MaxQueued { get; set; } = 4096;

    /// <summary>Checks running at once. Default 4.</summary>
    public int Concurrency { get; set; } = 4;

    /// <summary>How long one check may wait for a free replica and run. Default 30 s.</summary>
    public TimeSpan Timeout { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>The pause between tries while every other replica is busy. Default 20 ms.</summary>
    public TimeSpan BusyRetry { get; set; } = TimeSpan.FromMilliseconds(20);

    /// <summary>The seed of the sampling draws; null for a random seed.</summary>
    public int? Seed { get; set; }

    /// <summary>The errors in these settings, empty when they are usable.</summary>
    public IReadOnlyList<string> Validate()
    {
        var errors = new List<string>(Policy.Validate());
        if (MaxQueued < 1 || Concurrency < 1)
        {
            errors.Add("the audit queue and concurrency must be at least 1");
        }

        if (Timeout <= TimeSpan.Zero || BusyRetry <= TimeSpan.Zero)
        {
            errors.Add("the audit timeout and retry pause must be positive");
        }

        return errors;
    }
}
