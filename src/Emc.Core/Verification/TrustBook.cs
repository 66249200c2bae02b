namespace Emc.Core.Verification;

/// <summary>What a check found about one result.</summary>
public enum VerifiedOutcome
{
    /// <summary>The result matched an independent execution.</summary>
    Valid,

    /// <summary>The result was proven wrong: an independent referee agreed with someone else.</summary>
    Fault,

    /// <summary>Two executions disagreed and no referee could say which was right.</summary>
    Disputed,
}

/// <summary>A node's verification record in one scope (a model version it serves, or training).</summary>
/// <param name="Node">The node id (its address).</param>
/// <param name="Scope">What the record is about, such as <c>model:mnist:3</c> or <c>training</c>.</param>
/// <param name="Consecutive">Verified results since the last fault or dispute: what the audit rate follows.</param>
/// <param name="Verified">Verified results in all.</param>
/// <param name="Faults">Proven faults in all.</param>
/// <param name="Disputes">Disagreements no referee settled.</param>
public sealed record TrustRecord(string Node, string Scope, long Consecutive, long Verified, long Faults, long Disputes);

/// <summary>Everything a <see cref="TrustBook"/> holds, taken at one moment: what a host stores and puts back after a restart.</summary>
/// <param name="Records">Every (node, scope) record, ordered by node and scope.</param>
/// <param name="Reputations">Every node's reputation (nodes never checked have none and start at the initial reputation).</param>
public sealed record TrustSnapshot(IReadOnlyList<TrustRecord> Records, IReadOnlyDictionary<string, double> Reputations)
{
    /// <summary>A book with nothing in it.</summary>
    public static TrustSnapshot Empty { get; } = new([], new Dictionary<string, double>(StringComparer.Ordinal));
}

/// <summary>
/// Verification records per (node, scope) and a reputation per node: an exponential moving average of the
/// node's verified outcomes (1 for a verified result, 0 for a fault) that starts at
/// <see cref="TrustOptions.InitialReputation"/>. The audit rate of a scope comes from its record through an
/// <see cref="AuditPolicy"/>; the reputation sets placement priority. Thread-safe. It keeps nothing itself:
/// a host that wants the book to outlive the process stores <see cref="Snapshot"/> (or what
/// <see cref="Recorded"/> reports) and puts it back with <see cref="Restore(TrustSnapshot)"/>.
/// </summary>
public sealed class TrustBook
{
    private readonly Lock _lock = new();
    private readonly Dictionary<(string Node, string Scope), TrustRecord> _records = [];
    private readonly Dictionary<string, double> _reputations = new(StringComparer.Ordinal);
    private readonly TrustOptions _options;

    public TrustBook(TrustOptions? options = null)
    {
        _options = options ?? new TrustOptions();
        var errors = _options.Validate();
        if (errors.Count > 0)
        {
            throw new ArgumentException(string.Join("; ", errors), nameof(options));
        }
    }

    /// <summary>Raised (outside the lock) after a node's reputation changed, with the node and its new reputation.</summary>
    public event Action<string, double>? ReputationChanged;

    /// <summary>
    /// Raised (outside the lock) after every <see cref="Record"/>, with the node's new record in the scope and
    /// its reputation. Handlers on different threads may see two changes of one record out of order: read the
    /// book again (<see cref="Get"/>, <see cref="Reputation"/>) for the newest values.
    /// </summary>
    public event Action<TrustRecord, double>? Recorded;

    /// <summary>The node's record in <paramref name="scope"/> (zeros when it has none).</summary>
    public TrustRecord Get(string node, string scope)
    {
        lock (_lock)
        {
            return _records.GetValueOrDefault((node, scope)) ?? new TrustRecord(node, scope, 0, 0, 0, 0);
        }
    }

    /// <summary>The node's reputation in [0, 1].</summary>
    public double Reputation(string node)
    {
        lock (_lock)
        {
            return _reputations.GetValueOrDefault(node, _options.InitialReputation);
        }
    }

    /// <summary>The probability that the node's next result in <paramref name="scope"/> is checked.</summary>
    public double AuditRate(string node, string scope, AuditPolicy policy)
    {
        ArgumentNullException.ThrowIfNull(policy);
        return policy.Rate(Get(node, scope).Consecutive);
    }

    /// <summary>Records a check of one of the node's results and returns its new record.</summary>
    public TrustRecord Record(string node, string scope, VerifiedOutcome outcome)
    {
        ArgumentException.ThrowIfNullOrEmpty(node);
        ArgumentException.ThrowIfNullOrEmpty(scope);
        TrustRecord next;
        double reputation;
        bool changed;
        lock (_lock)
        {
            var record = _records.GetValueOrDefault((node, scope)) ?? new TrustRecord(node, scope, 0, 0, 0, 0);
            next = outcome switch
            {
                VerifiedOutcome.Valid => record with { Consecutive = record.Consecutive + 1, Verified = record.Verified + 1 },
                VerifiedOutcome.Fault => record with { Consecutive = 0, Faults = record.Faults + 1 },
                _ => record with { Consecutive = 0, Disputes = record.Disputes + 1 },
            };
            _records[(node, scope)] = next;
            var current = _reputations.GetValueOrDefault(node, _options.InitialReputation);
            reputation = outcome switch
            {
                VerifiedOutcome.Valid => current + (_options.ReputationStep * (1 - current)),
                VerifiedOutcome.Fault => current * (1 - _options.FaultPenalty),
                _ => current,
            };
            _reputations[node] = reputation;
            changed = reputation != current;
        }

        if (changed)
        {
            ReputationChanged?.Invoke(node, reputation);
        }

        Recorded?.Invoke(next, reputation);
        return next;
    }

    /// <summary>Every record, for persistence and listings.</summary>
    public IReadOnlyList<TrustRecord> Records()
    {
        lock (_lock)
        {
            return [.. _records.Values.OrderBy(r => r.Node, StringComparer.Ordinal).ThenBy(r => r.Scope, StringComparer.Ordinal)];
        }
    }

    /// <summary>Every node's reputation, for persistence and listings.</summary>
    public IReadOnlyDictionary<string, double> Reputations()
    {
        lock (_lock)
        {
            return new Dictionary<string, double>(_reputations, StringComparer.Ordinal);
        }
    }

    /// <summary>Every record and every reputation, taken together under one lock.</summary>
    public TrustSnapshot Snapshot()
    {
        lock (_lock)
        {
            return new TrustSnapshot(
                [.. _records.Values.OrderBy(r => r.Node, StringComparer.Ordinal).ThenBy(r => r.Scope, StringComparer.Ordinal)],
                new Dictionary<string, double>(_reputations, StringComparer.Ordinal));
        }
    }

    /// <summary>Puts back a <see cref="Snapshot"/> (after a restart), replacing what is held; raises no events.</summary>
    public void Restore(TrustSnapshot snapshot)
    {
        ArgumentNullException.ThrowIfNull(snapshot);
        Restore(snapshot.Records, snapshot.Reputations);
    }

    /// <summary>
    /// Puts back records and reputations read from storage (after a restart), replacing what is held; raises no
    /// events. Throws <see cref="ArgumentException"/>, holding what it held before, for a record without a node
    /// or scope or with a negative count, and for a reputation outside [0, 1]; a node or scope given twice
    /// keeps the last.
    /// </summary>
    public void Restore(IEnumerable<TrustRecord> records, IEnumerable<KeyValuePair<string, double>> reputations)
    {
        ArgumentNullException.ThrowIfNull(records);
        ArgumentNullException.ThrowIfNull(reputations);
        var restoredRecords = new Dictionary<(string Node, string Scope), TrustRecord>();
        foreach (var record in records)
        {
            if (record is null || string.IsNullOrEmpty(record.Node) || string.IsNullOrEmpty(record.Scope)
                || record.Consecutive < 0 || record.Verified < 0 || record.Faults < 0 || record.Disputes < 0)
            {
                throw new ArgumentException($"A trust record needs a node, a scope and counts that are not negative: {record}.", nameof(records));
            }

            restoredRecords[(record.Node, record.Scope)] = record;
        }

        var restoredReputations = new Dictionary<string, double>(StringComparer.Ordinal);
        foreach (var (node, reputation) in reputations)
        {
            if (string.IsNullOrEmpty(node) || !(reputation is >= 0 and <= 1))
            {
                throw new ArgumentException($"A reputation needs a node and a value in [0, 1]: '{node}' has {reputation}.", nameof(reputations));
            }

            restoredReputations[node] = reputation;
        }

        lock (_lock)
        {
            _records.Clear();
            _reputations.Clear();
            foreach (var (key, record) in restoredRecords)
            {
                _records[key] = record;
            }

            foreach (var (node, reputation) in restoredReputations)
            {
                _reputations[node] = reputation;
            }
        }
    }
}

/// <summary>Settings of a <see cref="TrustBook"/>.</summary>
public sealed record TrustOptions
{
    /// <summary>The reputation of a node with no verified outcome yet. Default 0.5.</summary>
    public double InitialReputation { get; init; } = 0.5;

    /// <summary>How far a verified result moves the reputation towards 1. Default 0.05.</summary>
    public double ReputationStep { get; init; } = 0.05;

    /// <summary>The share of its reputation a proven fault takes away. Default 0.5: a good name is slow to earn and quick to lose.</summary>
    public double FaultPenalty { get; init; } = 0.5;

    /// <summary>The errors in these settings, empty when they are usable.</summary>
    public IReadOnlyList<string> Validate()
    {
        var errors = new List<string>();
        if (InitialReputation is < 0 or > 1)
        {
            errors.Add("the initial reputation must be in [0, 1]");
        }

        if (ReputationStep is <= 0 or > 1 || FaultPenalty is <= 0 or > 1)
        {
            errors.Add("the reputation step and the fault penalty must be in (0, 1]");
        }

        return errors;
    }
}
