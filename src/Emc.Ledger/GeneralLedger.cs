using System.Collections.Immutable;
using Emc.Core.Identity;
using Emc.Ledger.Settlement;

namespace Emc.Ledger;

/// <summary>
/// The ledger's operations: funding, escrow, payment through an audit window, staking, slashing and
/// epoch settlement, each one balanced double-entry transaction in an <see cref="ILedgerStore"/>.
/// </summary>
/// <remarks>
/// <para>
/// Every write takes an idempotency key. Repeating a request under its key returns the original
/// transaction and changes nothing, whatever happened since; the same key with another request
/// (another operation, other arguments or references) throws <see cref="IdempotencyConflictException"/>.
/// A refused request (<see cref="LedgerException"/>, <see cref="ArgumentException"/>) changes nothing
/// and uses up no key, nor does an operation that finds nothing to move (an empty refund, a slash of
/// a node with no stake), which returns null.
/// </para>
/// <para>
/// Thread-safe: writes run one at a time; reads may run alongside. One instance is the single writer
/// of its store. It rebuilds its state by replaying the journal in <see cref="OpenAsync"/>, and again
/// from where it stopped after a write failed in an unknown way (a store exception), so what it
/// decides always rests on what is stored.
/// </para>
/// </remarks>
public sealed class GeneralLedger : IDisposable
{
    /// <summary>Keys starting with this are the ledger's own (epoch settlements); callers cannot use them.</summary>
    public const string ReservedKeyPrefix = "ledger:";

    /// <summary>The most transactions one journal query returns.</summary>
    public const int MaxPageSize = 1000;

    private readonly ILedgerStore _store;
    private readonly LedgerOptions _options;
    private readonly TimeProvider _time;
    private readonly SemaphoreSlim _writeGate = new(1, 1);
    private readonly Lock _stateLock = new();
    private readonly LedgerState _state = new();
    private (long Epoch, MerkleTree Tree)? _lastTree;
    private bool _stale;

    private GeneralLedger(ILedgerStore store, LedgerOptions options, TimeProvider time)
    {
        _store = store;
        _options = options;
        _time = time;
    }

    /// <summary>
    /// Opens the ledger over <paramref name="store"/>: replays the journal and checks that the stored
    /// balances and the latest epoch agree with it (<see cref="LedgerCorruptException"/> if not).
    /// </summary>
    public static async Task<GeneralLedger> OpenAsync(ILedgerStore store, LedgerOptions options, TimeProvider time, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(store);
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(time);
        options.Validate();
        var ledger = new GeneralLedger(store, options, time);
        await ledger.CatchUpAsync(cancellationToken);
        await ledger.VerifyAsync(cancellationToken);
        return ledger;
    }

    /// <summary>external → user: credits <paramref name="amount"/> units to a user (the operator's on-ramp).</summary>
    public Task<LedgerTransaction> FundAsync(string key, string userId, long amount, TransactionReferences? references, CancellationToken cancellationToken)
    {
        var user = AccountId.User(userId);
        CheckAmount(amount);
        var refs = CheckRequest(key, references);
        var digest = new RequestFingerprint("fund").Add(user).Add(amount).Add(refs).Digest();
        return PostAsync(key, digest, now => Draft(key, now, TransactionKind.Fund, refs, TransactionSubject.None, digest,
            new LedgerEntry(AccountId.External, -amount),
            new LedgerEntry(user, amount)), cancellationToken)!;
    }

    /// <summary>
    /// user → escrow: reserves <paramref name="amount"/> units of the user's balance for a job or
    /// deployment, which from now on belongs to that user (refunds go back to them). Throws
    /// <see cref="InsufficientBalanceException"/> when the user has less, <see cref="EscrowExistsException"/>
    /// when the escrow is already open.
    /// </summary>
    public Task<LedgerTransaction> OpenEscrowAsync(string key, string userId, EscrowId escrow, long amount, TransactionReferences? references, CancellationToken cancellationToken)
    {
        var user = AccountId.User(userId);
        var escrowAccount = AccountId.ForEscrow(escrow);
        CheckAmount(amount);
        var refs = CheckRequest(key, references);
        var digest = new RequestFingerprint("open-escrow").Add(user).Add(escrow).Add(amount).Add(refs).Digest();
        return PostAsync(key, digest, now =>
        {
            if (_state.EscrowOwner(escrow) is { } owner)
            {
                throw new EscrowExistsException($"escrow {escrow} is already open (owned by user:{owner}); top it up instead");
            }

            return Draft(key, now, TransactionKind.OpenEscrow, refs, new TransactionSubject { Escrow = escrow }, digest,
                new LedgerEntry(user, -amount),
                new LedgerEntry(escrowAccount, amount));
        }, cancellationToken)!;
    }

    /// <summary>owner → escrow: adds <paramref name="amount"/> units to an open escrow from the user who owns it.</summary>
    public Task<LedgerTransaction> TopUpEscrowAsync(string key, EscrowId escrow, long amount, TransactionReferences? references, CancellationToken cancellationToken)
    {
        var escrowAccount = AccountId.ForEscrow(escrow);
        CheckAmount(amount);
        var refs = CheckRequest(key, references);
        var digest = new RequestFingerprint("top-up-escrow").Add(escrow).Add(amount).Add(refs).Digest();
        return PostAsync(key, digest, now => Draft(key, now, TransactionKind.TopUpEscrow, refs, new TransactionSubject { Escrow = escrow }, digest,
            new LedgerEntry(OwnerOf(escrow), -amount),
            new LedgerEntry(escrowAccount, amount)), cancellationToken)!;
    }

    /// <summary>
    /// escrow → held:node and treasury: pays <paramref name="grossAmount"/> units for verified work,
    /// less a protocol fee of <paramref name="feeBasisPoints"/> (rounded down, in the node's favour),
    /// into the node's audit window. The key names the payment for <see cref="ReleaseAsync"/> and
    /// <see cref="VoidAsync"/>. An escrow holding less pays what it has and the result's
    /// <see cref="Payment.Shortfall"/> says how much is missing; an empty escrow throws
    /// <see cref="InsufficientBalanceException"/>.
    /// </summary>
    public async Task<Payment> PayAsync(string key, EscrowId escrow, EthAddress node, long grossAmount, int feeBasisPoints, TransactionReferences? references, CancellationToken cancellationToken)
    {
        var escrowAccount = AccountId.ForEscrow(escrow);
        var held = AccountId.Held(node);
        CheckAmount(grossAmount, nameof(grossAmount));
        ArgumentOutOfRangeException.ThrowIfNegative(feeBasisPoints);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(feeBasisPoints, LedgerUnits.BasisPointsPerWhole);
        var refs = CheckRequest(key, references);
        var digest = new RequestFingerprint("pay").Add(escrow).Add(node).Add(grossAmount).Add(feeBasisPoints).Add(refs).Digest();
        var transaction = await PostAsync(key, digest, now =>
        {
            OwnerOf(escrow);
            var available = _state.Balance(escrowAccount);
            if (available == 0)
            {
                throw InsufficientBalanceException.For(escrowAccount, 0, grossAmount);
            }

            var gross = Math.Min(grossAmount, available);
            var fee = LedgerUnits.Share(gross, feeBasisPoints);
            List<LedgerEntry> entries = [new(escrowAccount, -gross), new(held, gross - fee)];
            if (fee > 0)
            {
                entries.Add(new LedgerEntry(AccountId.Treasury, fee));
            }

            return Draft(key, now, TransactionKind.Pay, refs, new TransactionSubject { Escrow = escrow, Node = node }, digest, [.. entries]);
        }, cancellationToken);

        var paid = -transaction!.AmountFor(escrowAccount);
        return new Payment(transaction, grossAmount, paid, transaction.AmountFor(AccountId.Treasury), transaction.AmountFor(held));
    }

    /// <summary>
    /// held:node → node: releases a held payment (named by its pay key) once its audit window has
    /// closed. Throws <see cref="PaymentStateException"/> for a payment not held.
    /// </summary>
    public Task<LedgerTransaction> ReleaseAsync(string key, string paymentKey, TransactionReferences? references, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(paymentKey);
        var refs = CheckRequest(key, references);
        var digest = new RequestFingerprint("release").Add(paymentKey).Add(refs).Digest();
        return PostAsync(key, digest, now =>
        {
            var payment = HeldPaymentOf(paymentKey);
            return Draft(key, now, TransactionKind.Release, refs, SubjectOf(payment), digest,
                new LedgerEntry(AccountId.Held(payment.Node), -payment.Net),
                new LedgerEntry(AccountId.Node(payment.Node), payment.Net));
        }, cancellationToken)!;
    }

    /// <summary>
    /// held:node and treasury → escrow (or its owner): voids a held payment for work proven faulty —
    /// the node's net and the protocol fee both go back. <paramref name="destination"/> is
    /// <see cref="VoidDestination.Escrow"/> while the job runs (the money pays for the work again) and
    /// <see cref="VoidDestination.Owner"/> after it ended. Throws <see cref="PaymentStateException"/>
    /// for a payment not held.
    /// </summary>
    public Task<LedgerTransaction> VoidAsync(string key, string paymentKey, VoidDestination destination, TransactionReferences? references, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(paymentKey);
        if (!Enum.IsDefined(destination))
        {
            throw new ArgumentOutOfRangeException(nameof(destination), destination, "Void to the escrow or to its owner.");
        }

        var refs = CheckRequest(key, references);
        var digest = new RequestFingerprint("void").Add(paymentKey).Add(destination).Add(refs).Digest();
        return PostAsync(key, digest, now =>
        {
            var payment = HeldPaymentOf(paymentKey);
            var target = destination == VoidDestination.Escrow ? AccountId.ForEscrow(payment.Escrow) : OwnerOf(payment.Escrow);
            List<LedgerEntry> entries = [new(AccountId.Held(payment.Node), -payment.Net)];
            if (payment.Fee > 0)
            {
                entries.Add(new LedgerEntry(AccountId.Treasury, -payment.Fee));
            }

            entries.Add(new LedgerEntry(target, LedgerUnits.Add(payment.Net, payment.Fee, "the voided amount")));
            return Draft(key, now, TransactionKind.Void, refs, SubjectOf(payment), digest, [.. entries]);
        }, cancellationToken)!;
    }

    /// <summary>
    /// escrow → owner: returns everything left in an escrow to the user who opened it, when its job
    /// ends or is cancelled. Returns null (and uses up no key) when the escrow is empty. May be called
    /// again later, such as after a void into the escrow.
    /// </summary>
    public Task<LedgerTransaction?> RefundAsync(string key, EscrowId escrow, TransactionReferences? references, CancellationToken cancellationToken)
    {
        var escrowAccount = AccountId.ForEscrow(escrow);
        var refs = CheckRequest(key, references);
        var digest = new RequestFingerprint("refund").Add(escrow).Add(refs).Digest();
        return PostAsync(key, digest, now =>
        {
            var owner = OwnerOf(escrow);
            var left = _state.Balance(escrowAccount);
            return left == 0
                ? null
                : Draft(key, now, TransactionKind.Refund, refs, new TransactionSubject { Escrow = escrow }, digest,
                    new LedgerEntry(escrowAccount, -left),
                    new LedgerEntry(owner, left));
        }, cancellationToken);
    }

    /// <summary>node → stake: stakes <paramref name="amount"/> units of the node's released earnings.</summary>
    public Task<LedgerTransaction> StakeAsync(string key, EthAddress node, long amount, TransactionReferences? references, CancellationToken cancellationToken) =>
        StakeFromAsync(key, "stake", TransactionKind.Stake, AccountId.Node(node), node, amount, references, cancellationToken);

    /// <summary>external → stake: stakes <paramref name="amount"/> units brought from outside (a new node has no earnings). This is funding.</summary>
    public Task<LedgerTransaction> StakeFromExternalAsync(string key, EthAddress node, long amount, TransactionReferences? references, CancellationToken cancellationToken) =>
        StakeFromAsync(key, "stake-from-external", TransactionKind.StakeFromExternal, AccountId.External, node, amount, references, cancellationToken);

    /// <summary>
    /// stake → unstaking: starts <paramref name="amount"/> units of stake on their way out. They can
    /// be completed after <see cref="LedgerOptions.UnstakeDelay"/> and can be slashed until then.
    /// </summary>
    public Task<LedgerTransaction> RequestUnstakeAsync(string key, EthAddress node, long amount, TransactionReferences? references, CancellationToken cancellationToken)
    {
        CheckAmount(amount);
        var refs = CheckRequest(key, references);
        var digest = new RequestFingerprint("request-unstake").Add(node).Add(amount).Add(refs).Digest();
        return PostAsync(key, digest, now =>
        {
            var dueAt = Truncate(now + _options.UnstakeDelay);
            return Draft(key, now, TransactionKind.RequestUnstake, refs, new TransactionSubject { Node = node, DueAt = dueAt }, digest,
                new LedgerEntry(AccountId.Stake(node), -amount),
                new LedgerEntry(AccountId.Unstaking(node), amount));
        }, cancellationToken)!;
    }

    /// <summary>
    /// unstaking → node: completes every unstake of the node whose delay has passed. Throws
    /// <see cref="UnstakeNotDueException"/> when none has (saying when the first will be) or none is pending.
    /// </summary>
    public Task<LedgerTransaction> CompleteUnstakeAsync(string key, EthAddress node, TransactionReferences? references, CancellationToken cancellationToken)
    {
        var refs = CheckRequest(key, references);
        var digest = new RequestFingerprint("complete-unstake").Add(node).Add(refs).Digest();
        return PostAsync(key, digest, now =>
        {
            var pending = _state.Unstakes(node);
            if (pending.Count == 0)
            {
                throw new UnstakeNotDueException($"no unstake of {node} is pending");
            }

            var due = _state.DueUnstakes(node, now);
            if (due.Count == 0)
            {
                throw new UnstakeNotDueException($"no unstake of {node} is due yet: the first is due at {pending.Min(u => u.DueAt):O}, it is now {now:O}");
            }

            var amount = due.Aggregate(0L, (sum, u) => LedgerUnits.Add(sum, u.Amount, "the unstaked amount"));
            return Draft(key, now, TransactionKind.CompleteUnstake, refs, new TransactionSubject { Node = node }, digest,
                new LedgerEntry(AccountId.Unstaking(node), -amount),
                new LedgerEntry(AccountId.Node(node), amount));
        }, cancellationToken)!;
    }

    /// <summary>
    /// stake, then unstaking → slashed: takes <paramref name="amount"/> units for a proven fault,
    /// capped at what the node has staked (including stake on its way out).
    /// </summary>
    public Task<SlashResult> SlashAsync(string key, EthAddress node, long amount, TransactionReferences? references, CancellationToken cancellationToken)
    {
        CheckAmount(amount);
        var refs = CheckRequest(key, references);
        var digest = new RequestFingerprint("slash").Add(node).Add(amount).Add(refs).Digest();
        return SlashCoreAsync(key, digest, node, staked => Math.Min(amount, staked), refs, cancellationToken);
    }

    /// <summary>
    /// As <see cref="SlashAsync"/>, for a share of the node's whole stake (including stake on its way
    /// out) given in basis points (1 to 10,000), rounded down.
    /// </summary>
    public Task<SlashResult> SlashShareAsync(string key, EthAddress node, int basisPoints, TransactionReferences? references, CancellationToken cancellationToken)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(basisPoints);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(basisPoints, LedgerUnits.BasisPointsPerWhole);
        var refs = CheckRequest(key, references);
        var digest = new RequestFingerprint("slash-share").Add(node).Add(basisPoints).Add(refs).Digest();
        return SlashCoreAsync(key, digest, node, staked => LedgerUnits.Share(staked, basisPoints), refs, cancellationToken);
    }

    /// <summary>
    /// Closes epoch <paramref name="number"/>: moves every node's released balance to <c>settled</c> in
    /// one transaction and records the cumulative leaves and their Merkle root. Epochs close in order
    /// from 1; closing one already closed returns its record unchanged; skipping one throws
    /// <see cref="EpochOrderException"/>.
    /// </summary>
    public async Task<EpochRecord> CloseEpochAsync(long number, CancellationToken cancellationToken)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(number);
        await _writeGate.WaitAsync(cancellationToken);
        try
        {
            await CatchUpIfStaleAsync(cancellationToken);
            if (number <= _state.LastEpoch)
            {
                return await _store.GetEpochAsync(number, cancellationToken)
                    ?? throw new LedgerCorruptException($"epoch {number} is missing from the store although epoch {_state.LastEpoch} is closed");
            }

            if (number != _state.LastEpoch + 1)
            {
                throw new EpochOrderException($"epoch {number} cannot close yet: the next epoch to close is {_state.LastEpoch + 1}");
            }

            var released = _state.Balances
                .Where(pair => pair.Key.Kind == AccountKind.Node && pair.Value > 0)
                .ToDictionary(pair => pair.Key.Address!.Value, pair => pair.Value);
            var leaves = _state.Leaves(released).ToImmutableArray();
            var tree = new MerkleTree(leaves.Select(leaf => leaf.Hash()));
            var epoch = new EpochDraft(number, Now(), leaves, Hex(tree.Root));

            TransactionDraft? settlement = null;
            if (released.Count > 0)
            {
                var total = released.Values.Aggregate(0L, (sum, amount) => LedgerUnits.Add(sum, amount, "the settled amount"));
                var entries = released
                    .OrderBy(pair => pair.Key.ToString(), StringComparer.Ordinal)
                    .Select(pair => new LedgerEntry(AccountId.Node(pair.Key), -pair.Value))
                    .Append(new LedgerEntry(AccountId.Settled, total));
                var digest = new RequestFingerprint("close-epoch").Add(number).Digest();
                settlement = new TransactionDraft(
                    EpochKey(number), TransactionKind.Settle, epoch.ClosedAt, entries, TransactionReferences.None, new TransactionSubject { Epoch = number }, digest);
            }

            EpochAppendResult stored;
            try
            {
                stored = await _store.AppendEpochAsync(epoch, settlement, CancellationToken.None);
            }
            catch (Exception exception) when (exception is not LedgerException)
            {
                _stale = true;
                throw;
            }

            lock (_stateLock)
            {
                if (stored.Settlement is not null)
                {
                    _state.Apply(stored.Settlement);
                }

                _state.LastEpoch = number;
                _lastTree = (number, tree);
            }

            return stored.Epoch;
        }
        finally
        {
            _writeGate.Release();
        }
    }

    /// <summary>
    /// The claim of <paramref name="account"/> in epoch <paramref name="epoch"/> (the latest when null):
    /// its leaf and the proof that leads to the epoch's root. Null when the epoch is not closed or
    /// nothing has been settled to the address by then.
    /// </summary>
    public async Task<ClaimProof?> GetClaimProofAsync(EthAddress account, long? epoch, CancellationToken cancellationToken)
    {
        var record = epoch is { } number
            ? await _store.GetEpochAsync(number, cancellationToken)
            : await _store.GetLatestEpochAsync(cancellationToken);
        if (record?.FindLeaf(account) is not { } leaf)
        {
            return null;
        }

        MerkleTree tree;
        lock (_stateLock)
        {
            tree = _lastTree is { } cached && cached.Epoch == record.Number ? cached.Tree : new MerkleTree(record.Leaves.Select(l => l.Hash()));
            _lastTree = (record.Number, tree);
        }

        return new ClaimProof(
            record.Number,
            leaf.Index,
            account,
            leaf.CumulativeAmount,
            [.. tree.GetProof(leaf.Index).Select(Hex)],
            record.Root,
            Hex(leaf.Hash()));
    }

    /// <summary>The stored balance of <paramref name="account"/> (0 if never used).</summary>
    public Task<long> GetBalanceAsync(AccountId account, CancellationToken cancellationToken) => _store.GetBalanceAsync(account, cancellationToken);

    /// <summary>Every account that has had an entry, with its stored balance.</summary>
    public Task<IReadOnlyDictionary<AccountId, long>> GetBalancesAsync(CancellationToken cancellationToken) => _store.GetBalancesAsync(cancellationToken);

    /// <summary>Up to <paramref name="limit"/> (≤ <see cref="MaxPageSize"/>) transactions touching <paramref name="account"/> after <paramref name="afterSequence"/>, oldest first.</summary>
    public Task<IReadOnlyList<LedgerTransaction>> GetJournalAsync(AccountId account, long afterSequence, int limit, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(account);
        CheckLimit(limit);
        return _store.GetAccountJournalAsync(account, afterSequence, limit, cancellationToken);
    }

    /// <summary>Up to <paramref name="limit"/> (≤ <see cref="MaxPageSize"/>) transactions after <paramref name="afterSequence"/>, oldest first.</summary>
    public Task<IReadOnlyList<LedgerTransaction>> GetTransactionsAsync(long afterSequence, int limit, CancellationToken cancellationToken)
    {
        CheckLimit(limit);
        return _store.GetTransactionsAfterAsync(afterSequence, limit, cancellationToken);
    }

    /// <summary>Epoch <paramref name="number"/>, or null if it is not closed.</summary>
    public Task<EpochRecord?> GetEpochAsync(long number, CancellationToken cancellationToken) => _store.GetEpochAsync(number, cancellationToken);

    /// <summary>The latest closed epoch, or null before the first.</summary>
    public Task<EpochRecord?> GetLatestEpochAsync(CancellationToken cancellationToken) => _store.GetLatestEpochAsync(cancellationToken);

    /// <summary>The user an escrow refunds to, or null for an escrow never opened.</summary>
    public string? GetEscrowOwner(EscrowId escrow)
    {
        lock (_stateLock)
        {
            return _state.EscrowOwner(escrow);
        }
    }

    /// <summary>The payment posted under <paramref name="paymentKey"/>, or null.</summary>
    public HeldPayment? GetPayment(string paymentKey)
    {
        lock (_stateLock)
        {
            return _state.Payment(paymentKey);
        }
    }

    /// <summary>Payments still in their audit window (held), oldest first: for releasing them when it closes.</summary>
    public IReadOnlyList<HeldPayment> GetHeldPayments()
    {
        lock (_stateLock)
        {
            return _state.HeldPayments();
        }
    }

    /// <summary>The nodes with unstakes not yet completed.</summary>
    public IReadOnlyList<EthAddress> GetNodesUnstaking()
    {
        lock (_stateLock)
        {
            return _state.NodesUnstaking();
        }
    }

    /// <summary>The node's unstakes not yet completed, oldest first.</summary>
    public IReadOnlyList<PendingUnstake> GetPendingUnstakes(EthAddress node)
    {
        lock (_stateLock)
        {
            return _state.Unstakes(node);
        }
    }

    public void Dispose() => _writeGate.Dispose();

    private Task<LedgerTransaction> StakeFromAsync(
        string key, string operation, TransactionKind kind, AccountId source, EthAddress node, long amount, TransactionReferences? references, CancellationToken cancellationToken)
    {
        CheckAmount(amount);
        var refs = CheckRequest(key, references);
        var digest = new RequestFingerprint(operation).Add(node).Add(amount).Add(refs).Digest();
        return PostAsync(key, digest, now => Draft(key, now, kind, refs, new TransactionSubject { Node = node }, digest,
            new LedgerEntry(source, -amount),
            new LedgerEntry(AccountId.Stake(node), amount)), cancellationToken)!;
    }

    private async Task<SlashResult> SlashCoreAsync(
        string key, string digest, EthAddress node, Func<long, long> toSlash, TransactionReferences refs, CancellationToken cancellationToken)
    {
        var stake = AccountId.Stake(node);
        var unstaking = AccountId.Unstaking(node);
        var transaction = await PostAsync(key, digest, now =>
        {
            var staked = _state.Balance(stake);
            var leaving = _state.Balance(unstaking);
            var amount = toSlash(LedgerUnits.Add(staked, leaving, "the node's stake"));
            if (amount == 0)
            {
                return null;
            }

            var fromStake = Math.Min(amount, staked);
            List<LedgerEntry> entries = [];
            if (fromStake > 0)
            {
                entries.Add(new LedgerEntry(stake, -fromStake));
            }

            if (amount > fromStake)
            {
                entries.Add(new LedgerEntry(unstaking, fromStake - amount));
            }

            entries.Add(new LedgerEntry(AccountId.Slashed, amount));
            return Draft(key, now, TransactionKind.Slash, refs, new TransactionSubject { Node = node }, digest, [.. entries]);
        }, cancellationToken);

        return transaction is null
            ? new SlashResult(null, 0, 0, 0)
            : new SlashResult(transaction, transaction.AmountFor(AccountId.Slashed), -transaction.AmountFor(stake), -transaction.AmountFor(unstaking));
    }

    // The one path every write takes: under the write gate, a key already used is a repeat (same
    // digest) or a conflict; otherwise the draft is built from the current state, appended, and only
    // then applied to the state, so a refused or failed append leaves the state as it was.
    private async Task<LedgerTransaction?> PostAsync(string key, string digest, Func<DateTimeOffset, TransactionDraft?> build, CancellationToken cancellationToken)
    {
        await _writeGate.WaitAsync(cancellationToken);
        try
        {
            await CatchUpIfStaleAsync(cancellationToken);
            if (await _store.FindAsync(key, cancellationToken) is { } existing)
            {
                return Repeat(key, digest, existing);
            }

            if (build(Now()) is not { } draft)
            {
                return null;
            }

            AppendResult result;
            try
            {
                // Past this point the write may land; cancelling it would leave the caller unsure.
                result = await _store.AppendAsync(draft, CancellationToken.None);
            }
            catch (Exception exception) when (exception is not LedgerException)
            {
                _stale = true;
                throw;
            }

            if (result.Existing)
            {
                return Repeat(key, digest, result.Transaction);
            }

            lock (_stateLock)
            {
                _state.Apply(result.Transaction);
            }

            return result.Transaction;
        }
        finally
        {
            _writeGate.Release();
        }
    }

    private static LedgerTransaction Repeat(string key, string digest, LedgerTransaction existing) =>
        string.Equals(existing.RequestDigest, digest, StringComparison.Ordinal)
            ? existing
            : throw IdempotencyConflictException.For(key, existing);

    private async Task CatchUpIfStaleAsync(CancellationToken cancellationToken)
    {
        if (_stale)
        {
            await CatchUpAsync(cancellationToken);
            _stale = false;
        }
    }

    // Applies whatever the store holds beyond the state: the whole journal when opening, and after a
    // failed write whatever part of it landed (nothing, or the whole transaction).
    private async Task CatchUpAsync(CancellationToken cancellationToken)
    {
        while (true)
        {
            var page = await _store.GetTransactionsAfterAsync(_state.LastSequence, MaxPageSize, cancellationToken);
            if (page.Count == 0)
            {
                break;
            }

            lock (_stateLock)
            {
                foreach (var transaction in page)
                {
                    _state.Apply(transaction);
                }
            }
        }

        var latest = await _store.GetLatestEpochAsync(cancellationToken);
        lock (_stateLock)
        {
            _state.LastEpoch = latest?.Number ?? 0;
        }
    }

    private async Task VerifyAsync(CancellationToken cancellationToken)
    {
        var stored = await _store.GetBalancesAsync(cancellationToken);
        foreach (var account in stored.Keys.Union(_state.Balances.Keys))
        {
            var expected = _state.Balance(account);
            var actual = stored.GetValueOrDefault(account);
            if (expected != actual)
            {
                throw new LedgerCorruptException($"the stored balance of {account} is {actual} but its entries sum to {expected}");
            }
        }

        var latest = await _store.GetLatestEpochAsync(cancellationToken);
        var leaves = latest?.Leaves ?? [];
        if (leaves.Length != _state.Settled.Count
            || leaves.Any(leaf => _state.Settled.GetValueOrDefault(leaf.Account) != leaf.CumulativeAmount))
        {
            throw new LedgerCorruptException($"the leaves of epoch {latest?.Number ?? 0} do not match the settlements in the journal");
        }
    }

    private static TransactionDraft Draft(
        string key, DateTimeOffset time, TransactionKind kind, TransactionReferences refs, TransactionSubject subject, string digest, params LedgerEntry[] entries) =>
        new(key, kind, time, entries, refs, subject, digest);

    private AccountId OwnerOf(EscrowId escrow) =>
        _state.EscrowOwner(escrow) is { } owner
            ? AccountId.User(owner)
            : throw new UnknownEscrowException($"escrow {escrow} was never opened");

    private HeldPayment HeldPaymentOf(string paymentKey)
    {
        var payment = _state.Payment(paymentKey)
            ?? throw new PaymentStateException($"no payment was made under key '{paymentKey}'");
        return payment.Status == PaymentStatus.Held
            ? payment
            : throw new PaymentStateException($"payment '{paymentKey}' is not held: it was already {payment.Status.ToString().ToLowerInvariant()}");
    }

    private static TransactionSubject SubjectOf(HeldPayment payment) =>
        new() { Escrow = payment.Escrow, Node = payment.Node, Payment = payment.Key };

    private static TransactionReferences CheckRequest(string key, TransactionReferences? references)
    {
        TransactionDraft.CheckKey(key);
        if (key.StartsWith(ReservedKeyPrefix, StringComparison.Ordinal))
        {
            throw new ArgumentException($"Keys starting with '{ReservedKeyPrefix}' are the ledger's own.", nameof(key));
        }

        var refs = references ?? TransactionReferences.None;
        refs.Validate();
        return refs;
    }

    private static void CheckAmount(long amount, string name = "amount")
    {
        if (amount <= 0)
        {
            throw new ArgumentOutOfRangeException(name, amount, "An amount is a positive number of units.");
        }
    }

    private static void CheckLimit(int limit)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(limit);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(limit, MaxPageSize);
    }

    // Times are kept to whole milliseconds, so a store that keeps no finer precision replays the
    // same due-or-not decisions for unstakes.
    private DateTimeOffset Now() => Truncate(_time.GetUtcNow());

    private static DateTimeOffset Truncate(DateTimeOffset time) =>
        new(time.UtcTicks - (time.UtcTicks % TimeSpan.TicksPerMillisecond), TimeSpan.Zero);

    private static string EpochKey(long number) => $"{ReservedKeyPrefix}epoch:{number}";

    private static string Hex(ImmutableArray<byte> bytes) => "0x" + Convert.ToHexStringLower(bytes.AsSpan());
}
