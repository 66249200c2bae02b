using Emc.Core.Identity;
using Emc.Ledger.Settlement;

namespace Emc.Ledger.Tests;

/// <summary>Writes that fail inside the store, before or after the store committed them.</summary>
public sealed class StoreFailureTests
{
    private static readonly CancellationToken None = CancellationToken.None;
    private static readonly EscrowId Job = EscrowId.Job("job-1");
    private static readonly EthAddress NodeA = LedgerFixture.Node(0xa);

    [Fact]
    public async Task Pay_StoreFailsPartWay_NothingChangesAndTheSameLedgerGoesOn()
    {
        using var f = await LedgerFixture.CreateAsync();
        await GeneralLedgerTests.FundedEscrowAsync(f, 100);
        var before = await f.SnapshotAsync();
        f.Store.BeforeChange = what => throw new IOException($"disk gone while writing the {what}");

        await Assert.ThrowsAsync<IOException>(() => f.Ledger.PayAsync("p", Job, NodeA, 10, 0, null, None));

        f.Store.BeforeChange = null;
        Assert.Equal(before, await f.SnapshotAsync());
        Assert.Null(f.Ledger.GetPayment("p"));
        var payment = await f.Ledger.PayAsync("p", Job, NodeA, 10, 0, null, None);
        Assert.Equal(90, await f.BalanceAsync("escrow:job:job-1"));
        await f.Ledger.ReleaseAsync("r", payment.Transaction.IdempotencyKey, null, None);
    }

    [Fact]
    public async Task Pay_StoreCommitsThenFails_LedgerCatchesUpAndRepeatReturnsTheCommittedPayment()
    {
        var inner = new InMemoryLedgerStore();
        var store = new CommitThenFailStore(inner);
        using var ledger = await GeneralLedger.OpenAsync(store, new LedgerOptions(), TimeProvider.System, None);
        await ledger.FundAsync("f", "alice", 100, null, None);
        await ledger.OpenEscrowAsync("o", "alice", Job, 100, null, None);
        store.FailAfterNextAppend = true;

        // The caller cannot know whether the payment landed; it did.
        await Assert.ThrowsAsync<TimeoutException>(() => ledger.PayAsync("p", Job, NodeA, 10, 0, null, None));

        // The ledger's next write first reads what it missed, so it knows the payment is held.
        await ledger.ReleaseAsync("r", "p", null, None);
        var again = await ledger.PayAsync("p", Job, NodeA, 10, 0, null, None);
        Assert.Equal(3, again.Transaction.Sequence);
        Assert.Equal(90, await inner.GetBalanceAsync(AccountId.ForEscrow(Job), None));
        Assert.Equal(10, await inner.GetBalanceAsync(AccountId.Node(NodeA), None));
    }

    [Fact]
    public async Task CloseEpoch_StoreCommitsThenFails_ClosingAgainReturnsTheStoredEpoch()
    {
        var inner = new InMemoryLedgerStore();
        var store = new CommitThenFailStore(inner);
        using var ledger = await GeneralLedger.OpenAsync(store, new LedgerOptions(), TimeProvider.System, None);
        await ledger.FundAsync("f", "alice", 100, null, None);
        await ledger.OpenEscrowAsync("o", "alice", Job, 100, null, None);
        await ledger.PayAsync("p", Job, NodeA, 10, 0, null, None);
        await ledger.ReleaseAsync("r", "p", null, None);
        store.FailAfterNextAppend = true;

        await Assert.ThrowsAsync<TimeoutException>(() => ledger.CloseEpochAsync(1, None));

        var epoch = await ledger.CloseEpochAsync(1, None);
        Assert.Equal(await inner.GetEpochAsync(1, None), epoch);
        Assert.Equal(5, epoch.SettlementSequence);
        var next = await ledger.CloseEpochAsync(2, None);
        Assert.Null(next.SettlementSequence);
        Assert.Equal(10, await inner.GetBalanceAsync(AccountId.Settled, None));
        Assert.Equal(10, next.Leaves.Single().CumulativeAmount);
    }

    /// <summary>Commits a write and then reports a failure, as a database whose commit reply is lost does.</summary>
    private sealed class CommitThenFailStore(InMemoryLedgerStore inner) : ILedgerStore
    {
        public bool FailAfterNextAppend { get; set; }

        public async Task<AppendResult> AppendAsync(TransactionDraft draft, CancellationToken cancellationToken)
        {
            var result = await inner.AppendAsync(draft, cancellationToken);
            ThrowIfFailing();
            return result;
        }

        public async Task<EpochAppendResult> AppendEpochAsync(EpochDraft epoch, TransactionDraft? settlement, CancellationToken cancellationToken)
        {
            var result = await inner.AppendEpochAsync(epoch, settlement, cancellationToken);
            ThrowIfFailing();
            return result;
        }

        public Task<LedgerTransaction?> FindAsync(string idempotencyKey, CancellationToken cancellationToken) => inner.FindAsync(idempotencyKey, cancellationToken);

        public Task<long> GetBalanceAsync(AccountId account, CancellationToken cancellationToken) => inner.GetBalanceAsync(account, cancellationToken);

        public Task<IReadOnlyDictionary<AccountId, long>> GetBalancesAsync(CancellationToken cancellationToken) => inner.GetBalancesAsync(cancellationToken);

        public Task<IReadOnlyList<LedgerTransaction>> GetAccountJournalAsync(AccountId account, long afterSequence, int limit, CancellationToken cancellationToken) =>
            inner.GetAccountJournalAsync(account, afterSequence, limit, cancellationToken);

        public Task<IReadOnlyList<LedgerTransaction>> GetTransactionsAfterAsync(long afterSequence, int limit, CancellationToken cancellationToken) =>
            inner.GetTransactionsAfterAsync(afterSequence, limit, cancellationToken);

        public Task<EpochRecord?> GetEpochAsync(long number, CancellationToken cancellationToken) => inner.GetEpochAsync(number, cancellationToken);

        public Task<EpochRecord?> GetLatestEpochAsync(CancellationToken cancellationToken) => inner.GetLatestEpochAsync(cancellationToken);

        private void ThrowIfFailing()
        {
            if (FailAfterNextAppend)
            {
                FailAfterNextAppend = false;
                throw new TimeoutException("the commit's reply was lost");
            }
        }
    }
}
