namespace Emc.Core.Verification;

/// <summary>What a node was proven to have done wrong in a training job.</summary>
public enum TrainingFaultKind
{
    /// <summary>Its pseudo-gradient disagrees with an independent replay of its work (and, when there was one, with a referee's).</summary>
    WrongUpdate,

    /// <summary>It replayed another member's work wrongly: a referee's replay agreed with the member, not with it.</summary>
    WrongReplay,

    /// <summary>It did not upload the inner optimizer state it committed to, or uploaded one that is malformed.</summary>
    StateWithheld,

    /// <summary>A hardware challenge ran far slower than its claimed benchmark.</summary>
    OverstatedHardware,

    /// <summary>A hardware challenge's result is wrong (Freivalds' check failed) or was never uploaded.</summary>
    WrongChallenge,
}

/// <summary>How a node-round came to be verified.</summary>
public enum NodeRoundCheck
{
    /// <summary>Its update passed every check at round close and went into the aggregate; it was not sampled for a replay.</summary>
    Accepted,

    /// <summary>An independent replay of its work agreed with its update.</summary>
    Replayed,
}

/// <summary>
/// A proven fault of a node in a training job: the hook for slashing its stake and voiding its payment for
/// the round. <see cref="IdempotencyKey"/> names the node-round, so handling the same fault twice changes nothing.
/// </summary>
/// <param name="JobId">The training job.</param>
/// <param name="Round">The round of the faulty work (for a challenge, the last round the job closed before it).</param>
/// <param name="Node">The node at fault.</param>
/// <param name="Kind">What it did wrong.</param>
/// <param name="Evidence">How it was shown, in words (distances, timings).</param>
/// <param name="Witnesses">The nodes whose executions agreed against it; "coordinator" for the coordinator's own checks.</param>
/// <param name="RoundsClosed">Rounds the job had closed when the fault was proven.</param>
/// <param name="At">When it was proven.</param>
public sealed record TrainingFault(
    string JobId,
    long Round,
    string Node,
    TrainingFaultKind Kind,
    string Evidence,
    IReadOnlyList<string> Witnesses,
    long RoundsClosed,
    DateTimeOffset At)
{
    /// <summary>"training:{job}:{round}:{node}": the same key as the node-round's <see cref="VerifiedNodeRound"/>.</summary>
    public string IdempotencyKey => TrainingVerdicts.Key(JobId, Round, Node);
}

/// <summary>
/// A node-round of a training job whose work checked out: what the ledger pays. A node-round is either
/// verified once or proven faulty once (or neither, when its check could not be completed), and
/// <see cref="IdempotencyKey"/> keys a payment to it.
/// </summary>
/// <param name="JobId">The training job.</param>
/// <param name="Round">The round.</param>
/// <param name="Node">The node that did the work.</param>
/// <param name="Samples">Training samples of the work.</param>
/// <param name="Steps">Inner steps of the work.</param>
/// <param name="TrainSeconds">Seconds the node reported training.</param>
/// <param name="Check">How it was verified.</param>
/// <param name="Aggregated">Whether its update went into the round's aggregate (a flagged update that a replay cleared did not).</param>
/// <param name="At">When it was verified.</param>
public sealed record VerifiedNodeRound(
    string JobId,
    long Round,
    string Node,
    long Samples,
    int Steps,
    double TrainSeconds,
    NodeRoundCheck Check,
    bool Aggregated,
    DateTimeOffset At)
{
    /// <summary>"training:{job}:{round}:{node}".</summary>
    public string IdempotencyKey => TrainingVerdicts.Key(JobId, Round, Node);
}

/// <summary>Names shared by training verdicts.</summary>
public static class TrainingVerdicts
{
    /// <summary>The <see cref="TrustBook"/> scope of training work: replays and their verdicts.</summary>
    public const string Scope = "training";

    /// <summary>The <see cref="TrustBook"/> scope of hardware challenges.</summary>
    public const string HardwareScope = "hardware";

    /// <summary>The witness name of the coordinator's own checks.</summary>
    public const string Coordinator = "coordinator";

    /// <summary>The idempotency key of a node-round.</summary>
    public static string Key(string jobId, long round, string node) =>
        string.Create(System.Globalization.CultureInfo.InvariantCulture, $"training:{jobId}:{round}:{node.ToLowerInvariant()}");
}
