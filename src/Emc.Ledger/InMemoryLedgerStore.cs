using Emc.Ledger.Settlement;

namespace Emc.Ledger;

/// <summary>
/// An <see cref="ILedgerStore"/> in memory, for tests and single-process tools. Each write applies
/// its changes one by one with an undo log and rolls them all back if anything fails part-way, the
/// way a database transaction does, so a failure in the middle of an append leaves no trace.
/// </summary>
public sealed class InMemoryLedgerStore : ILedgerStore
{
    private readonly Lock _lock = new();
    private readonly List<LedgerTransaction> _transactions = [];
    private readonly Dictionary<string, LedgerTransaction> _byKey = new(StringComparer.Ordinal);
    private readonly Dictionary<AccountId, long> _balances = [];
    private readonly Dictionary<AccountId, List<LedgerTransaction>> _byAccount = [];
    private readonly List<EpochRecord> _epochs = [];

    /// <summary>
    /// Called before each single change of a write with the change's name ("transaction", "key",
    /// "entry", "balance", "epoch"); a test throws from it to simulate a crash in the middle of a write.
    /// </summary>
    internal Action<string>? BeforeChange { get; set; }

    public Task<AppendResult> AppendAsync(TransactionDraft draft, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(draft);
        cancellationToken.ThrowIfCancellationRequested();
        lock (_lock)
        {
            if (_byKey.TryGetValue(draft.IdempotencyKey, out var existing))
            {
                return Task.FromResult(new AppendResult(existing, Existing: true));
            }

            var balances = PlanBalances(draft);
            var transaction = draft.ToTransaction(NextSequence());
            Write(transaction, balances, epoch: null);
            return Task.FromResult(new AppendResult(transaction, Existing: false));
        }
    }

    public Task<EpochAppendResult> AppendEpochAsync(EpochDraft epoch, TransactionDraft? settlement, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(epoch);
        cancellationToken.ThrowIfCancellationRequested();
        lock (_lock)
        {
            var expected = _epochs.Count + 1;
            if (epoch.Number != expected)
            {
                throw new EpochOrderException($"epoch {epoch.Number} cannot be stored: the next epoch is {expected}");
            }

            if (settlement is null)
            {
                var record = epoch.ToRecord(NextSequence() - 1, settlementSequence: null);
                Write(transaction: null, [], record);
                return Task.FromResult(new EpochAppendResult(record, Settlement: null));
            }

            if (_byKey.ContainsKey(settlement.IdempotencyKey))
            {
                throw new LedgerCorruptException($"the settlement key '{settlement.IdempotencyKey}' is already in the journal but epoch {epoch.Number} is not");
            }

            var balances = PlanBalances(settlement);
            var transaction = settlement.ToTransaction(NextSequence());
            var stored = epoch.ToRecord(transaction.Sequence, transaction.Sequence);
            Write(transaction, balances, stored);
            return Task.FromResult(new EpochAppendResult(stored, transaction));
        }
    }

    public Task<LedgerTransaction?> FindAsync(string idempotencyKey, CancellationToken cancellationToken)
    {
        lock (_lock)
        {
            return Task.FromResult(_byKey.GetValueOrDefault(idempotencyKey));
        }
    }

    public Task<long> GetBalanceAsync(AccountId account, CancellationToken cancellationToken)
    {
        lock (_lock)
        {
            return Task.FromResult(_balances.GetValueOrDefault(account));
        }
    }

    public Task<IReadOnlyDictionary<AccountId, long>> GetBalancesAsync(CancellationToken cancellationToken)
    {
        lock (_lock)
        {
            return Task.FromResult<IReadOnlyDictionary<AccountId, long>>(new Dictionary<AccountId, long>(_balances));
        }
    }

    public Task<IReadOnlyList<LedgerTransaction>> GetAccountJournalAsync(AccountId account, long afterSequence, int limit, CancellationToken cancellationToken)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(limit);
        lock (_lock)
        {
            IReadOnlyList<LedgerTransaction> page = _byAccount.TryGetValue(account, out var list)
                ? Page(list, afterSequence, limit)
                : [];
            return Task.FromResult(page);
        }
    }

    public Task<IReadOnlyList<LedgerTransaction>> GetTransactionsAfterAsync(long afterSequence, int limit, CancellationToken cancellationToken)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(limit);
        lock (_lock)
        {
            return Task.FromResult<IReadOnlyList<LedgerTransaction>>(Page(_transactions, afterSequence, limit));
        }
    }

    public Task<EpochRecord?> GetEpochAsync(long number, CancellationToken cancellationToken)
    {
        lock (_lock)
        {
            return Task.FromResult(number >= 1 && number <= _epochs.Count ? _epochs[(int)(number - 1)] : null);
        }
    }

    public Task<EpochRecord?> GetLatestEpochAsync(CancellationToken cancellationToken)
    {
        lock (_lock)
        {
            return Task.FromResult(_epochs.Count == 0 ? null : _epochs[^1]);
        }
    }

    private long NextSequence() => _transactions.Count + 1;

    // Sequences are 1, 2, 3, … so a list sorted by sequence can be searched for the first one after.
    private static List<LedgerTransaction> Page(List<LedgerTransaction> list, long afterSequence, int limit)
    {
        int low = 0, high = list.Count;
        while (low < high)
        {
            var middle = (low + high) / 2;
            if (list[middle].Sequence <= afterSequence)
            {
                low = middle + 1;
            }
            else
            {
                high = middle;
            }
        }

        return list.GetRange(low, Math.Min(limit, list.Count - low));
    }

    // Every check happens here, before the first change, so a refused write changes nothing.
    private List<(AccountId Account, long Balance)> PlanBalances(TransactionDraft draft)
    {
        var planned = new List<(AccountId, long)>(draft.Entries.Length);
        foreach (var entry in draft.Entries)
        {
            var before = _balances.GetValueOrDefault(entry.Account);
            var after = LedgerUnits.Add(before, entry.Amount, $"the balance of {entry.Account}");
            if (after < 0 && !entry.Account.MayGoNegative)
            {
                throw InsufficientBalanceException.For(entry.Account, before, -entry.Amount);
            }

            planned.Add((entry.Account, after));
        }

        return planned;
    }

    private void Write(LedgerTransaction? transaction, List<(AccountId Account, long Balance)> balances, EpochRecord? epoch)
    {
        var undo = new Stack<Action>();
        try
        {
            if (transaction is not null)
            {
                Change("transaction");
                _transactions.Add(transaction);
                undo.Push(() => _transactions.RemoveAt(_transactions.Count - 1));

                Change("key");
                _byKey.Add(transaction.IdempotencyKey, transaction);
                undo.Push(() => _byKey.Remove(transaction.IdempotencyKey));

                foreach (var entry in transaction.Entries)
                {
                    Change("entry");
                    if (!_byAccount.TryGetValue(entry.Account, out var list))
                    {
                        _byAccount[entry.Account] = list = [];
                        undo.Push(() => _byAccount.Remove(entry.Account));
                    }
                    else
                    {
                        undo.Push(() => list.RemoveAt(list.Count - 1));
                    }

                    list.Add(transaction);
                }

                foreach (var (account, balance) in balances)
                {
                    Change("balance");
                    var had = _balances.TryGetValue(account, out var before);
                    _balances[account] = balance;
                    undo.Push(had ? () => _balances[account] = before : () => _balances.Remove(account));
                }
            }

            if (epoch is not null)
            {
                Change("epoch");
                _epochs.Add(epoch);
                undo.Push(() => _epochs.RemoveAt(_epochs.Count - 1));
            }
        }
        catch
        {
            while (undo.Count > 0)
            {
                undo.Pop()();
            }

            throw;
        }
    }

    private void Change(string what) => BeforeChange?.Invoke(what);
}
