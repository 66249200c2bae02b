namespace Emc.Coordinator.Training;

/// <summary>How the coordinator runs training rounds.</summary>
public sealed class TrainingOptions
{
    /// <summary>How often jobs are looked at when nothing else happens (deadlines, waiting for nodes). Default 500 ms.</summary>
    public TimeSpan TickInterval { get; set; } = TimeSpan.FromMilliseconds(500);

    /// <summary>How long a round's gang may take to start on its planned nodes before the round is planned again. Default 60 s.</summary>
    public TimeSpan RoundStartTimeout { get; set; } = TimeSpan.FromSeconds(60);

    /// <summary>Lease of a round member without a heartbeat. Default 30 s.</summary>
    public TimeSpan MemberLease { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>A job fails after this many rounds in a row without one accepted update. Default 5.</summary>
    public int MaxEmptyRounds { get; set; } = 5;

    /// <summary>Per-node speed differences beyond this factor of the median are not followed when sizing H. Default 4.</summary>
    public double MaxInnerStepScale { get; set; } = 4;

    /// <summary>Rounds of history the adaptive deadline reads per node. Default 8.</summary>
    public int DeadlineHistory { get; set; } = 8;

    /// <summary>
    /// How long the refund of a job that ended waits for the replays of its work still running, whose verdicts
    /// may pay node-rounds from its escrow (a flagged update a replay clears). After it, what is left is refunded
    /// anyway, and verdicts that come later pay nothing. Default 10 minutes, the training audit window (replays
    /// of a small model take seconds; one whose nodes are gone ends at the verifier's replay timeout).
    /// </summary>
    public TimeSpan RefundWait { get; set; } = TimeSpan.FromMinutes(10);
}
