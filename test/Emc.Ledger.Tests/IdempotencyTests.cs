using Emc.Core.Identity;
namespace Emc.Ledger.Tests;

public sealed class IdempotencyTests
{
    private static readonly CancellationToken None = CancellationToken.None;
    private static readonly EscrowId Job = EscrowId.Job("job-1");
    private static readonly EthAddress NodeA = LedgerFixture.Node(0xa);

    [Fact]
    public async Task Repeat_SameKeySameRequest_ReturnsOriginalAndChangesNothing()
    {
        using var f = await LedgerFixture.CreateAsync();
        var refs = new TransactionReferences { RequestId = "req-1" };
        var first = await f.Ledger.FundAsync("k", "alice", 10, refs, None);
        var before = await f.SnapshotAsync();
        f.Time.Advance(TimeSpan.FromMinutes(5));

        var again = await f.Ledger.FundAsync("k", "alice", 10, new TransactionReferences { RequestId = "req-1" }, None);

        Assert.Same(first, again);
        Assert.Equal(before, await f.SnapshotAsync());
    }

    [Fact]
    public async Task Repeat_AfterBalanceChanged_StillReturnsOriginal()
    {
        using var f = await LedgerFixture.CreateAsync();
        await GeneralLedgerTests.FundedEscrowAsync(f, 100);
        var refund = await f.Ledger.RefundAsync("refund", Job, null, None);
        await f.Ledger.TopUpEscrowAsync("top-up", Job, 50, null, None);
        var before = await f.SnapshotAsync();

        // "Refund everything left" would now move 50, but the repeat is the original request.
        Assert.Same(refund, await f.Ledger.RefundAsync("refund", Job, null, None));
        Assert.Equal(before, await f.SnapshotAsync());
    }

    [Fact]
    public async Task Repeat_OfRefusedRequest_RunsAgain()
    {
        using var f = await LedgerFixture.CreateAsync();
        await Assert.ThrowsAsync<InsufficientBalanceException>(() => f.Ledger.OpenEscrowAsync("open", "alice", Job, 10, null, None));
        await f.Ledger.FundAsync("fund", "alice", 10, null, None);

        var opened = await f.Ledger.OpenEscrowAsync("open", "alice", Job, 10, null, None);

        Assert.Equal(10, await f.BalanceAsync("escrow:job:job-1"));
        Assert.Equal("open", opened.IdempotencyKey);
    }

    [Fact]
    public async Task Repeat_OpenEscrowAfterItOpened_IsARepeatNotEscrowExists()
    {
        using var f = await LedgerFixture.CreateAsync();
        await GeneralLedgerTests.FundedEscrowAsync(f, 100);

        var again = await f.Ledger.OpenEscrowAsync("open-job-1", "alice", Job, 100, null, None);

        Assert.Equal(TransactionKind.OpenEscrow, again.Kind);
        Assert.Equal(100, await f.BalanceAsync("escrow:job:job-1"));
    }

    [Fact]
    public async Task Conflict_SameKeyOtherAmount_ThrowsAndChangesNothing()
    {
        using var f = await LedgerFixture.CreateAsync();
        var first = await f.Ledger.FundAsync("k", "alice", 10, null, None);
        var before = await f.SnapshotAsync();

        var ex = await Assert.ThrowsAsync<IdempotencyConflictException>(() => f.Ledger.FundAsync("k", "alice", 11, null, None));

        Assert.Equal("k", ex.Key);
        Assert.Same(first, ex.Existing);
        Assert.Contains("already used by transaction 1 (Fund)", ex.Message, StringComparison.Ordinal);
        Assert.Equal(before, await f.SnapshotAsync());
    }

    [Fact]
    public async Task Conflict_SameKeyOtherOperationOrReferences_Throws()
    {
        using var f = await LedgerFixture.CreateAsync();
        await f.Ledger.FundAsync("k", "alice", 10, new TransactionReferences { Memo = "a" }, None);
        await f.Ledger.StakeFromExternalAsync("s", NodeA, 10, null, None);

        await Assert.ThrowsAsync<IdempotencyConflictException>(() => f.Ledger.FundAsync("k", "bob", 10, new TransactionReferences { Memo = "a" }, None));
        await Assert.ThrowsAsync<IdempotencyConflictException>(() => f.Ledger.FundAsync("k", "alice", 10, new TransactionReferences { Memo = "b" }, None));
        await Assert.ThrowsAsync<IdempotencyConflictException>(() => f.Ledger.FundAsync("k", "alice", 10, null, None));
        await Assert.ThrowsAsync<IdempotencyConflictException>(() => f.Ledger.StakeFromExternalAsync("k", NodeA, 10, null, None));
        await Assert.ThrowsAsync<IdempotencyConflictException>(() => f.Ledger.StakeAsync("s", NodeA, 10, null, None));
        await Assert.ThrowsAsync<IdempotencyConflictException>(() => f.Ledger.SlashShareAsync("s", NodeA, 10, null, None));
        Assert.Equal(2, (await f.JournalAsync()).Count);
    }

    [Fact]
    public async Task Conflict_PayWithOtherFee_Throws()
    {
        using var f = await LedgerFixture.CreateAsync();
        await GeneralLedgerTests.FundedEscrowAsync(f, 100);
        await f.Ledger.PayAsync("p", Job, NodeA, 10, 100, null, None);

        await Assert.ThrowsAsync<IdempotencyConflictException>(() => f.Ledger.PayAsync("p", Job, NodeA, 10, 200, null, None));
        await Assert.ThrowsAsync<IdempotencyConflictException>(() => f.Ledger.PayAsync("p", Job, LedgerFixture.Node(0xb), 10, 100, null, None));
        await Assert.ThrowsAsync<IdempotencyConflictException>(() => f.Ledger.VoidAsync("p", "p", VoidDestination.Escrow, null, None));
        Assert.Equal(90, await f.BalanceAsync("escrow:job:job-1"));
    }

    [Fact]
    public async Task Repeat_AfterReopen_ReturnsOriginal()
    {
        using var f = await LedgerFixture.CreateAsync();
        await GeneralLedgerTests.FundedEscrowAsync(f, 100);
        var payment = await f.Ledger.PayAsync("p", Job, NodeA, 10, 100, null, None);
        await f.ReopenAsync();

        var again = await f.Ledger.PayAsync("p", Job, NodeA, 10, 100, null, None);

        Assert.Equal(payment, again);
        Assert.Equal(90, await f.BalanceAsync("escrow:job:job-1"));
    }
}
