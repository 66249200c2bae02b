using System.Diagnostics.CodeAnalysis;

namespace Emc.Ledger;

/// <summary>What an escrow pays for.</summary>
public enum EscrowKind
{
    /// <summary>A training job: <c>job:ID</c>.</summary>
    Job,

    /// <summary>An inference deployment: <c>deployment:ID</c>.</summary>
    Deployment,
}

/// <summary>
/// The workload an escrow belongs to, written <c>job:ID</c> or <c>deployment:ID</c>, where ID is
/// 1 to 128 of <c>A-Z a-z 0-9 . _ -</c> (the scheduler's <c>job-12</c> fits).
/// </summary>
public sealed record EscrowId
{
    private EscrowId(EscrowKind kind, string id)
    {
        Kind = kind;
        Id = id;
    }

    /// <summary>Job or deployment.</summary>
    public EscrowKind Kind { get; }

    /// <summary>The job's or deployment's id.</summary>
    public string Id { get; }

    /// <summary>The escrow of a training job.</summary>
    public static EscrowId Job(string jobId) => new(EscrowKind.Job, AccountId.CheckName(jobId, "job id", nameof(jobId)));

    /// <summary>The escrow of an inference deployment.</summary>
    public static EscrowId Deployment(string deploymentId) =>
        new(EscrowKind.Deployment, AccountId.CheckName(deploymentId, "deployment id", nameof(deploymentId)));

    /// <summary>The text form, <c>job:ID</c> or <c>deployment:ID</c>.</summary>
    public override string ToString() => (Kind == EscrowKind.Job ? "job:" : "deployment:") + Id;

    /// <summary>Parses <c>job:ID</c> or <c>deployment:ID</c>.</summary>
    public static bool TryParse(string? text, [NotNullWhen(true)] out EscrowId? escrow)
    {
        escrow = null;
        if (text is null)
        {
            return false;
        }

        if (text.StartsWith("job:", StringComparison.Ordinal) && AccountId.IsName(text.AsSpan(4)))
        {
            escrow = new EscrowId(EscrowKind.Job, text[4..]);
        }
        else if (text.StartsWith("deployment:", StringComparison.Ordinal) && AccountId.IsName(text.AsSpan(11)))
        {
            escrow = new EscrowId(EscrowKind.Deployment, text[11..]);
        }

        return escrow is not null;
    }

    /// <summary>Parses an escrow id or throws <see cref="FormatException"/> with the reason.</summary>
    public static EscrowId Parse(string text) =>
        TryParse(text, out var escrow)
            ? escrow
            : throw new FormatException($"'{text}' is not an escrow: expected job:ID or deployment:ID, where ID is 1 to {AccountId.MaxNameLength} of A-Z a-z 0-9 . _ -.");
}
