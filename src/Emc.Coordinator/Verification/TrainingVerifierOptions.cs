using Emc.Core.Verification;

namespace Emc.Coordinator.Verification;

/// <summary>Settings of the <see cref="TrainingVerifier"/> (docs/verification.md, "Training").</summary>
public sealed class TrainingVerifierOptions
{
    /// <summary>Whether training work is verified at all. Default true; off only for benchmarks of the bare round.</summary>
    public bool Enabled { get; set; } = true;

    /// <summary>How often a node's accepted updates are replayed, from its record in scope "training". Default <see cref="AuditPolicy.Training"/>: its first 2 rounds, then 1/n with a 5 % floor.</summary>
    public AuditPolicy Policy { get; set; } = AuditPolicy.Training;

    /// <summary>Cosine similarity at which two updates (or an update and the last outer step) are copies. Default 0.99.</summary>
    public double CopyThreshold { get; set; } = CopyDetection.DefaultThreshold;

    /// <summary>
    /// Examples (windows for text) of the job's evaluation split in the held-out sample that scores every
    /// update at round close; 0 turns scoring off. Default 256: (members + 1) forward passes over them per
    /// round, on the coordinator's CPU.
    /// </summary>
    public int ScoringExamples { get; set; } = 256;

    /// <summary>libtorch threads of the scoring (a setting of the whole coordinator process); 0 leaves the default. Default 1.</summary>
    public int ScoringThreads { get; set; } = 1;

    /// <summary>When the scoring flags an update. Default <see cref="ImprovementScoringOptions"/>' defaults.</summary>
    public ImprovementScoringOptions Scoring { get; set; } = new();

    /// <summary>Relative L2 distance up to which a replay agrees with the claimed update. Default 0.05.</summary>
    public double ReplayTolerance { get; set; } = ReplayComparison.DefaultTolerance;

    /// <summary>How long a member has to upload the inner optimizer state it committed to before that is a fault. Default 2 min.</summary>
    public TimeSpan StateTimeout { get; set; } = TimeSpan.FromMinutes(2);

    /// <summary>How long one replay may take (waiting for its node included) before another node is asked. Default 10 min.</summary>
    public TimeSpan ReplayTimeout { get; set; } = TimeSpan.FromMinutes(10);

    /// <summary>Replays waiting or running at once; beyond it sampled (not flagged) updates go unchecked. Default 64.</summary>
    public int MaxPendingReplays { get; set; } = 64;

    /// <summary>Whether nodes get hardware challenges. Default true.</summary>
    public bool Challenges { get; set; } = true;

    /// <summary>Seconds a challenge takes at the node's claimed speed. Default 1.</summary>
    public double ChallengeSeconds { get; set; } = 1;

    /// <summary>
    /// How many times slower than its claimed benchmark a node may be on a challenge before that is a proven
    /// overstatement. Default 3: a loaded machine is slower than its benchmark, ten times slower is a lie.
    /// </summary>
    public double ChallengeTolerance { get; set; } = 3;

    /// <summary>
    /// Too-slow challenges in a row that prove an overstatement: after one, the node is challenged again at
    /// once, and only a second too-slow result convicts it. Default 2: a busy moment does not repeat on
    /// demand, a slower device does.
    /// </summary>
    public int ChallengeAttempts { get; set; } = 2;

    /// <summary>Seconds added to a challenge's limit for the task's own latency (lease, messages). Default 1.</summary>
    public TimeSpan ChallengeGrace { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>How long a challenge may wait for its node to take it, and then for its result to be uploaded. Default 60 s.</summary>
    public TimeSpan ChallengeTimeout { get; set; } = TimeSpan.FromSeconds(60);

    /// <summary>The chance that a member of a round is challenged again before the next round. Default 0.02.</summary>
    public double RechallengeProbability { get; set; } = 0.02;

    /// <summary>
    /// Challenges running at once, over all jobs. Default 1: nodes sharing a machine would slow each
    /// other's challenges down, and challenges are short.
    /// </summary>
    public int ChallengeConcurrency { get; set; } = 1;

    /// <summary>How long a job waits for its members' challenges before it plans without the nodes still being challenged. Default 2 min.</summary>
    public TimeSpan ChallengeWait { get; set; } = TimeSpan.FromMinutes(2);

    /// <summary>The seed of the sampling draws and challenge seeds; null for a random seed.</summary>
    public int? Seed { get; set; }

    /// <summary>The errors in these settings, empty when they are usable.</summary>
    public IReadOnlyList<string> Validate()
    {
        var errors = new List<string>(Policy.Validate());
        errors.AddRange(Scoring.Validate());
        if (!(CopyThreshold > 0 && CopyThreshold <= 1))
        {
            errors.Add("the copy threshold must be in (0, 1]");
        }

        if (ScoringExamples < 0 || ScoringThreads < 0 || MaxPendingReplays < 1 || ChallengeConcurrency < 1 || ChallengeAttempts < 1)
        {
            errors.Add("the scoring examples and threads must not be negative, the pending replays, challenge concurrency and attempts at least 1");
        }

        if (!(ReplayTolerance >= 0) || !double.IsFinite(ReplayTolerance))
        {
            errors.Add("the replay tolerance must be finite and not negative");
        }

        if (!(ChallengeSeconds > 0) || !double.IsFinite(ChallengeSeconds) || !(ChallengeTolerance >= 1) || !double.IsFinite(ChallengeTolerance))
        {
            errors.Add("the challenge duration must be positive and the tolerance at least 1");
        }

        if (!(RechallengeProbability is >= 0 and <= 1))
        {
            errors.Add("the re-challenge probability must be in [0, 1]");
        }

        if (StateTimeout <= TimeSpan.Zero || ReplayTimeout <= TimeSpan.Zero || ChallengeTimeout <= TimeSpan.Zero || ChallengeGrace < TimeSpan.Zero || ChallengeWait < TimeSpan.Zero)
        {
            errors.Add("the verification timeouts must be positive");
        }

        return errors;
    }
}
