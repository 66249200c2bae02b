using Emc.Core.Identity;
using Emc.Ledger.Settlement;

namespace Emc.Ledger;

/// <summary>
/// What the ledger knows beyond balances — escrow owners, payments in their audit window, pending
/// unstakes, cumulative settlements — folded from the journal. The same <see cref="Apply"/> runs for
/// a transaction just posted and for one replayed after a restart, so the two cannot disagree.
/// Not thread-safe: <see cref="GeneralLedger"/> serialises access.
/// </summary>
internal sealed class LedgerState
{
    private readonly Dictionary<AccountId, long> _balances = [];
    private readonly Dictionary<EscrowId, string> _escrowOwners = [];
    private readonly Dictionary<string, HeldPayment> _payments = new(StringComparer.Ordinal);
    private readonly Dictionary<EthAddress, List<PendingUnstake>> _unstakes = [];
    private readonly Dictionary<EthAddress, long> _settled = [];

    /// <summary>The last transaction applied.</summary>
    public long LastSequence { get; private set; }

    /// <summary>The latest closed epoch, 0 before the first.</summary>
    public long LastEpoch { get; set; }

    public IReadOnlyDictionary<AccountId, long> Balances => _balances;

    /// <summary>Cumulative amounts settled per address over all closed epochs.</summary>
    public IReadOnlyDictionary<EthAddress, long> Settled => _settled;

    public long Balance(AccountId account) => _balances.GetValueOrDefault(account);

    public string? EscrowOwner(EscrowId escrow) => _escrowOwners.GetValueOrDefault(escrow);

    public HeldPayment? Payment(string key) => _payments.GetValueOrDefault(key);

    public List<HeldPayment> HeldPayments() => [.. _payments.Values.Where(p => p.Status == PaymentStatus.Held).OrderBy(p => p.Sequence)];

    public List<EthAddress> NodesUnstaking() => [.. _unstakes.Where(p => p.Value.Count > 0).Select(p => p.Key)];

    public IReadOnlyList<PendingUnstake> Unstakes(EthAddress node) =>
        _unstakes.TryGetValue(node, out var list) ? [.. list] : [];

    public void Apply(LedgerTransaction transaction)
    {
        if (transaction.Sequence <= LastSequence)
        {
            throw Corrupt(transaction, $"its sequence does not follow {LastSequence}");
        }

        foreach (var entry in transaction.Entries)
        {
            var balance = LedgerUnits.Add(Balance(entry.Account), entry.Amount, $"the balance of {entry.Account}");
            if (balance < 0 && !entry.Account.MayGoNegative)
            {
                throw Corrupt(transaction, $"it takes {entry.Account} to {balance}");
            }

            _balances[entry.Account] = balance;
        }

        var subject = transaction.Subject;
        switch (transaction.Kind)
        {
            case TransactionKind.OpenEscrow:
                var escrow = subject.Escrow ?? throw Corrupt(transaction, "it names no escrow");
                var owner = transaction.Entries.FirstOrDefault(e => e.Account.Kind == AccountKind.User).Account?.UserId
                    ?? throw Corrupt(transaction, "it has no user entry");
                if (!_escrowOwners.TryAdd(escrow, owner))
                {
                    throw Corrupt(transaction, $"escrow {escrow} was already open");
                }

                break;

            case TransactionKind.Pay:
                var node = NodeOf(transaction);
                _payments.Add(transaction.IdempotencyKey, new HeldPayment(
                    transaction.IdempotencyKey,
                    transaction.Sequence,
                    subject.Escrow ?? throw Corrupt(transaction, "it names no escrow"),
                    node,
                    transaction.AmountFor(AccountId.Held(node)),
                    transaction.AmountFor(AccountId.Treasury),
                    PaymentStatus.Held)
                {
                    PaidAt = transaction.Time,
                });
                break;

            case TransactionKind.Release or TransactionKind.Void:
                var key = subject.Payment ?? throw Corrupt(transaction, "it names no payment");
                if (!_payments.TryGetValue(key, out var payment) || payment.Status != PaymentStatus.Held)
                {
                    throw Corrupt(transaction, $"payment '{key}' is not held");
                }

                _payments[key] = payment with { Status = transaction.Kind == TransactionKind.Release ? PaymentStatus.Released : PaymentStatus.Voided };
                break;

            case TransactionKind.RequestUnstake:
                var unstaker = NodeOf(transaction);
                if (!_unstakes.TryGetValue(unstaker, out var pending))
                {
                    _unstakes[unstaker] = pending = [];
                }

                pending.Add(new PendingUnstake(
                    transaction.IdempotencyKey,
                    transaction.Sequence,
                    transaction.AmountFor(AccountId.Unstaking(unstaker)),
                    subject.DueAt ?? throw Corrupt(transaction, "it has no due time")));
                break;

            case TransactionKind.CompleteUnstake:
                var completer = NodeOf(transaction);
                var due = DueUnstakes(completer, transaction.Time);
                if (due.Sum(u => u.Amount) != transaction.AmountFor(AccountId.Node(completer)))
                {
                    throw Corrupt(transaction, "its amount is not what was due");
                }

                _unstakes[completer].RemoveAll(u => u.DueAt <= transaction.Time);
                break;

            case TransactionKind.Slash:
                TakeFromUnstakes(NodeOf(transaction), -transaction.AmountFor(AccountId.Unstaking(NodeOf(transaction))));
                break;

            case TransactionKind.Settle:
                foreach (var entry in transaction.Entries)
                {
                    if (entry.Account.Kind == AccountKind.Node)
                    {
                        var address = entry.Account.Address!.Value;
                        _settled[address] = LedgerUnits.Add(_settled.GetValueOrDefault(address), -entry.Amount, $"the amount settled to {address}");
                    }
                }

                break;
        }

        LastSequence = transaction.Sequence;
    }

    /// <summary>Pending unstakes of <paramref name="node"/> that can be completed at <paramref name="now"/>, oldest first.</summary>
    public List<PendingUnstake> DueUnstakes(EthAddress node, DateTimeOffset now) =>
        _unstakes.TryGetValue(node, out var list) ? list.Where(u => u.DueAt <= now).ToList() : [];

    /// <summary>The leaves an epoch would have if the given new settlements were added: every address settled so far, sorted by address.</summary>
    public List<SettlementLeaf> Leaves(IReadOnlyDictionary<EthAddress, long> added)
    {
        var totals = new Dictionary<EthAddress, long>(_settled);
        foreach (var (address, amount) in added)
        {
            totals[address] = LedgerUnits.Add(totals.GetValueOrDefault(address), amount, $"the amount settled to {address}");
        }

        // Lower-case hex of equal length sorts like the addresses as numbers.
        return totals
            .OrderBy(pair => pair.Key.ToString(), StringComparer.Ordinal)
            .Select((pair, index) => new SettlementLeaf(index, pair.Key, pair.Value))
            .ToList();
    }

    // Slashing reaches stake on its way out newest first: the most recent request is the one most
    // likely made to escape the fault being punished.
    private void TakeFromUnstakes(EthAddress node, long amount)
    {
        if (amount == 0)
        {
            return;
        }

        var list = _unstakes[node];
        for (var i = list.Count - 1; i >= 0 && amount > 0; i--)
        {
            var take = Math.Min(amount, list[i].Amount);
            amount -= take;
            if (take == list[i].Amount)
            {
                list.RemoveAt(i);
            }
            else
            {
                list[i] = list[i] with { Amount = list[i].Amount - take };
            }
        }
    }

    private static EthAddress NodeOf(LedgerTransaction transaction) =>
        transaction.Subject.Node ?? throw Corrupt(transaction, "it names no node");

    private static LedgerCorruptException Corrupt(LedgerTransaction transaction, string problem) =>
        new($"transaction {transaction.Sequence} ('{transaction.IdempotencyKey}', {transaction.Kind}) does not replay: {problem}");
}
