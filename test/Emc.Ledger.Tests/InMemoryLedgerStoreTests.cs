namespace Emc.Ledger.Tests;

public sealed class InMemoryLedgerStoreTests
{
    private static readonly CancellationToken None = CancellationToken.None;

    [Fact]
    public async Task Append_AssignsSequencesAndIndexesAccounts()
    {
        var store = new InMemoryLedgerStore();

        var a = await store.AppendAsync(Draft("a", ("external", -5), ("user:alice", 5)), None);
        var b = await store.AppendAsync(Draft("b", ("user:alice", -2), ("user:bob", 2)), None);

        Assert.Equal((1L, false), (a.Transaction.Sequence, a.Existing));
        Assert.Equal(2, b.Transaction.Sequence);
        Assert.Equal(3, await store.GetBalanceAsync(AccountId.User("alice"), None));
        Assert.Equal(0, await store.GetBalanceAsync(AccountId.User("carol"), None));
        Assert.Equal(["b"], (await store.GetAccountJournalAsync(AccountId.User("bob"), 0, 10, None)).Select(t => t.IdempotencyKey));
        Assert.Equal(["b"], (await store.GetAccountJournalAsync(AccountId.User("alice"), 1, 10, None)).Select(t => t.IdempotencyKey));
        Assert.Same(a.Transaction, await store.FindAsync("a", None));
        Assert.Null(await store.FindAsync("c", None));
    }

    [Fact]
    public async Task Append_KnownKey_ReturnsExistingAndWritesNothing()
    {
        var store = new InMemoryLedgerStore();
        var first = await store.AppendAsync(Draft("a", ("external", -5), ("user:alice", 5)), None);

        var second = await store.AppendAsync(Draft("a", ("external", -7), ("user:bob", 7)), None);

        Assert.True(second.Existing);
        Assert.Same(first.Transaction, second.Transaction);
        Assert.Equal(0, await store.GetBalanceAsync(AccountId.User("bob"), None));
    }

    [Fact]
    public async Task Append_Overdraft_ThrowsAndWritesNothing()
    {
        var store = new InMemoryLedgerStore();
        await store.AppendAsync(Draft("a", ("external", -5), ("user:alice", 5)), None);

        var ex = await Assert.ThrowsAsync<InsufficientBalanceException>(() => store.AppendAsync(Draft("b", ("user:alice", -6), ("user:bob", 6)), None));

        Assert.Equal("insufficient balance: user:alice has 5 units, needs 6 units", ex.Message);
        Assert.Single(await store.GetTransactionsAfterAsync(0, 10, None));
        Assert.Null(await store.FindAsync("b", None));
    }

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    [InlineData(4)]
    [InlineData(5)]
    [InlineData(6)]
    [InlineData(7)]
    public async Task Append_CrashAtEveryChange_LeavesNoTrace(int crashAt)
    {
        var store = new InMemoryLedgerStore();
        await store.AppendAsync(Draft("a", ("external", -9), ("user:alice", 9)), None);
        var changes = 0;
        store.BeforeChange = _ =>
        {
            if (changes++ == crashAt)
            {
                throw new InvalidOperationException("simulated crash");
            }
        };

        // transaction, key, 3 entries, 3 balances: 8 changes.
        await Assert.ThrowsAsync<InvalidOperationException>(() =>
            store.AppendAsync(Draft("b", ("user:alice", -4), ("user:bob", 3), ("treasury", 1)), None));

        store.BeforeChange = null;
        Assert.Null(await store.FindAsync("b", None));
        Assert.Single(await store.GetTransactionsAfterAsync(0, 10, None));
        Assert.Empty(await store.GetAccountJournalAsync(AccountId.User("bob"), 0, 10, None));
        Assert.Single(await store.GetAccountJournalAsync(AccountId.User("alice"), 0, 10, None));
        var balances = await store.GetBalancesAsync(None);
        Assert.Equal(2, balances.Count);
        Assert.Equal(9, balances[AccountId.User("alice")]);

        // And the same append then goes through whole.
        var retried = await store.AppendAsync(Draft("b", ("user:alice", -4), ("user:bob", 3), ("treasury", 1)), None);
        Assert.Equal(2, retried.Transaction.Sequence);
        Assert.Equal(5, await store.GetBalanceAsync(AccountId.User("alice"), None));
    }

    private static TransactionDraft Draft(string key, params (string Account, long Amount)[] entries) =>
        new(key, TransactionKind.Fund, LedgerFixture.Start, entries.Select(e => new LedgerEntry(AccountId.Parse(e.Account), e.Amount)),
            TransactionReferences.None, TransactionSubject.None, "digest-" + key);
}
