namespace Emc.Ledger.Tests;

public sealed class TransactionDraftTests
{
    private static readonly AccountId Alice = AccountId.User("alice");
    private static readonly AccountId Bob = AccountId.User("bob");

    [Fact]
    public void Constructor_BalancedEntries_KeepsThem()
    {
        var draft = Draft("k", new LedgerEntry(Alice, -5), new LedgerEntry(Bob, 3), new LedgerEntry(AccountId.Treasury, 2));

        Assert.Equal(3, draft.Entries.Length);
        var transaction = draft.ToTransaction(7);
        Assert.Equal(7, transaction.Sequence);
        Assert.Equal(-5, transaction.AmountFor(Alice));
        Assert.Equal(0, transaction.AmountFor(AccountId.Slashed));
    }

    [Fact]
    public void Constructor_OneEntry_IsRefused()
    {
        var ex = Assert.Throws<InvalidTransactionException>(() => Draft("k", new LedgerEntry(Alice, 0)));
        Assert.Contains("at least two entries", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Constructor_ZeroEntry_IsRefused()
    {
        var ex = Assert.Throws<InvalidTransactionException>(() =>
            Draft("k", new LedgerEntry(Alice, -1), new LedgerEntry(Bob, 1), new LedgerEntry(AccountId.Treasury, 0)));
        Assert.Contains("treasury is zero", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Constructor_SameAccountTwice_IsRefused()
    {
        var ex = Assert.Throws<InvalidTransactionException>(() =>
            Draft("k", new LedgerEntry(Alice, -1), new LedgerEntry(Bob, 2), new LedgerEntry(AccountId.User("alice"), -1)));
        Assert.Contains("user:alice appears twice", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Constructor_Unbalanced_IsRefused()
    {
        var ex = Assert.Throws<InvalidTransactionException>(() => Draft("k", new LedgerEntry(Alice, -1), new LedgerEntry(Bob, 2)));
        Assert.Contains("sum to 1, not zero", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Constructor_SumBeyondLong_IsStillCheckedExactly()
    {
        // Two long.MaxValue credits and one debit would wrap to zero in 64-bit arithmetic.
        Assert.Throws<InvalidTransactionException>(() => Draft(
            "k",
            new LedgerEntry(Alice, long.MaxValue),
            new LedgerEntry(Bob, long.MaxValue),
            new LedgerEntry(AccountId.External, 2)));
    }

    [Theory]
    [InlineData("")]
    [InlineData("a\nb")]
    public void CheckKey_BadKey_ThrowsArgumentException(string key) =>
        Assert.Throws<ArgumentException>(() => Draft(key, new LedgerEntry(Alice, -1), new LedgerEntry(Bob, 1)));

    [Fact]
    public void CheckKey_LongestKey_IsAcceptedAndOneMoreIsNot()
    {
        TransactionDraft.CheckKey(new string('k', TransactionDraft.MaxKeyLength));
        Assert.Throws<ArgumentException>(() => TransactionDraft.CheckKey(new string('k', TransactionDraft.MaxKeyLength + 1)));
    }

    private static TransactionDraft Draft(string key, params LedgerEntry[] entries) =>
        new(key, TransactionKind.Fund, LedgerFixture.Start, entries, TransactionReferences.None, TransactionSubject.None, "digest");
}
