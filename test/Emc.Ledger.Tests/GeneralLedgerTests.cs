using Emc.Core.Identity;
namespace Emc.Ledger.Tests;

public sealed class GeneralLedgerTests
{
    private static readonly CancellationToken None = CancellationToken.None;
    private static readonly EscrowId Job = EscrowId.Job("job-1");
    private static readonly EthAddress NodeA = LedgerFixture.Node(0xa);

    [Fact]
    public async Task Fund_CreditsUserFromExternal()
    {
        using var f = await LedgerFixture.CreateAsync();

        var transaction = await f.Ledger.FundAsync("fund-1", "alice", 5 * LedgerUnits.PerEmc, new TransactionReferences { Memo = "on-ramp" }, None);

        Assert.Equal(1, transaction.Sequence);
        Assert.Equal(TransactionKind.Fund, transaction.Kind);
        Assert.Equal(LedgerFixture.Start, transaction.Time);
        Assert.Equal("on-ramp", transaction.References.Memo);
        Assert.Equal(5_000_000, await f.BalanceAsync("user:alice"));
        Assert.Equal(-5_000_000, await f.BalanceAsync("external"));
    }

    [Fact]
    public async Task Fund_ZeroOrNegative_ThrowsAndChangesNothing()
    {
        using var f = await LedgerFixture.CreateAsync();
        var before = await f.SnapshotAsync();

        await Assert.ThrowsAsync<ArgumentOutOfRangeException>(() => f.Ledger.FundAsync("k", "alice", 0, null, None));
        await Assert.ThrowsAsync<ArgumentOutOfRangeException>(() => f.Ledger.FundAsync("k", "alice", -3, null, None));

        Assert.Equal(before, await f.SnapshotAsync());
    }

    [Fact]
    public async Task Fund_BadUserOrKey_IsRefused()
    {
        using var f = await LedgerFixture.CreateAsync();

        await Assert.ThrowsAsync<ArgumentException>(() => f.Ledger.FundAsync("k", "not a user", 1, null, None));
        await Assert.ThrowsAsync<ArgumentException>(() => f.Ledger.FundAsync("", "alice", 1, null, None));
        await Assert.ThrowsAsync<ArgumentException>(() => f.Ledger.FundAsync(new string('k', 201), "alice", 1, null, None));
        await Assert.ThrowsAsync<ArgumentException>(() => f.Ledger.FundAsync("ledger:epoch:1", "alice", 1, null, None));
        await Assert.ThrowsAsync<ArgumentException>(() => f.Ledger.FundAsync("k", "alice", 1, new TransactionReferences { Memo = new string('m', 1001) }, None));
        await Assert.ThrowsAsync<ArgumentOutOfRangeException>(() => f.Ledger.FundAsync("k", "alice", 1, new TransactionReferences { Round = -1 }, None));
        Assert.Empty(await f.JournalAsync());
    }

    [Fact]
    public async Task Fund_Overflow_ThrowsAndChangesNothing()
    {
        using var f = await LedgerFixture.CreateAsync();
        await f.Ledger.FundAsync("f1", "alice", long.MaxValue, null, None);
        var before = await f.SnapshotAsync();

        // Either alice's balance would pass long.MaxValue or external's would pass long.MinValue.
        await Assert.ThrowsAsync<LedgerOverflowException>(() => f.Ledger.FundAsync("f2", "alice", 1, null, None));
        await Assert.ThrowsAsync<LedgerOverflowException>(() => f.Ledger.FundAsync("f3", "bob", 2, null, None));

        Assert.Equal(before, await f.SnapshotAsync());
    }

    [Fact]
    public async Task OpenEscrow_ShortBalance_SaysHasAndNeeds()
    {
        using var f = await LedgerFixture.CreateAsync();
        await f.Ledger.FundAsync("f", "alice", 5, null, None);
        var before = await f.SnapshotAsync();

        var ex = await Assert.ThrowsAsync<InsufficientBalanceException>(() => f.Ledger.OpenEscrowAsync("o", "alice", Job, 8, null, None));

        Assert.Equal("insufficient balance: user:alice has 5 units, needs 8 units", ex.Message);
        Assert.Equal(AccountId.User("alice"), ex.Account);
        Assert.Equal(5, ex.Balance);
        Assert.Equal(8, ex.Needed);
        Assert.Equal(before, await f.SnapshotAsync());
        Assert.Null(f.Ledger.GetEscrowOwner(Job));
    }

    [Fact]
    public async Task OpenEscrow_ReservesBudgetAndRecordsOwner()
    {
        using var f = await LedgerFixture.CreateAsync();
        await f.Ledger.FundAsync("f", "alice", 100, null, None);

        var transaction = await f.Ledger.OpenEscrowAsync("o", "alice", Job, 60, null, None);

        Assert.Equal(Job, transaction.Subject.Escrow);
        Assert.Equal("alice", f.Ledger.GetEscrowOwner(Job));
        Assert.Equal(40, await f.BalanceAsync("user:alice"));
        Assert.Equal(60, await f.BalanceAsync("escrow:job:job-1"));
    }

    [Fact]
    public async Task OpenEscrow_SameEscrowAgainUnderNewKey_ThrowsEscrowExists()
    {
        using var f = await LedgerFixture.CreateAsync();
        await f.Ledger.FundAsync("f", "alice", 100, null, None);
        await f.Ledger.FundAsync("g", "bob", 100, null, None);
        await f.Ledger.OpenEscrowAsync("o1", "alice", Job, 10, null, None);

        var ex = await Assert.ThrowsAsync<EscrowExistsException>(() => f.Ledger.OpenEscrowAsync("o2", "bob", Job, 10, null, None));

        Assert.Contains("owned by user:alice", ex.Message, StringComparison.Ordinal);
        Assert.Equal(100, await f.BalanceAsync("user:bob"));
    }

    [Fact]
    public async Task TopUpEscrow_TakesFromOwnerOnly()
    {
        using var f = await LedgerFixture.CreateAsync();
        await f.Ledger.FundAsync("f", "alice", 100, null, None);
        await f.Ledger.OpenEscrowAsync("o", "alice", Job, 10, null, None);

        var transaction = await f.Ledger.TopUpEscrowAsync("t", Job, 15, null, None);

        Assert.Equal(-15, transaction.AmountFor(AccountId.User("alice")));
        Assert.Equal(25, await f.BalanceAsync("escrow:job:job-1"));
        await Assert.ThrowsAsync<InsufficientBalanceException>(() => f.Ledger.TopUpEscrowAsync("t2", Job, 76, null, None));
        await Assert.ThrowsAsync<UnknownEscrowException>(() => f.Ledger.TopUpEscrowAsync("t3", EscrowId.Job("nope"), 1, null, None));
    }

    [Fact]
    public async Task Pay_SplitsFeeToTreasuryAndNetIntoHeld()
    {
        using var f = await LedgerFixture.CreateAsync();
        await FundedEscrowAsync(f, 10_000);

        var payment = await f.Ledger.PayAsync("pay-1", Job, NodeA, 1_001, 250, new TransactionReferences { JobId = "job-1", Round = 3 }, None);

        // 2.5% of 1001 is 25.025: the fee rounds down, in the node's favour.
        Assert.Equal(1_001, payment.Gross);
        Assert.Equal(25, payment.Fee);
        Assert.Equal(976, payment.Net);
        Assert.False(payment.IsPartial);
        Assert.Equal(976, await f.BalanceAsync(AccountId.Held(NodeA)));
        Assert.Equal(25, await f.BalanceAsync("treasury"));
        Assert.Equal(8_999, await f.BalanceAsync("escrow:job:job-1"));
        Assert.Equal(0, await f.BalanceAsync(AccountId.Node(NodeA)));
        Assert.Equal(new HeldPayment("pay-1", payment.Transaction.Sequence, Job, NodeA, 976, 25, PaymentStatus.Held) { PaidAt = payment.Transaction.Time }, f.Ledger.GetPayment("pay-1"));
        Assert.Equal(3, payment.Transaction.References.Round);
    }

    [Fact]
    public async Task Pay_ZeroFee_HasNoTreasuryEntry()
    {
        using var f = await LedgerFixture.CreateAsync();
        await FundedEscrowAsync(f, 100);

        var payment = await f.Ledger.PayAsync("p", Job, NodeA, 10, 0, null, None);

        Assert.Equal(2, payment.Transaction.Entries.Length);
        Assert.Equal(10, payment.Net);
    }

    [Fact]
    public async Task Pay_MoreThanEscrowHolds_PaysWhatIsLeftAndReportsShortfall()
    {
        using var f = await LedgerFixture.CreateAsync();
        await FundedEscrowAsync(f, 300);

        var payment = await f.Ledger.PayAsync("p", Job, NodeA, 500, 1_000, null, None);

        Assert.True(payment.IsPartial);
        Assert.Equal(500, payment.Requested);
        Assert.Equal(300, payment.Gross);
        Assert.Equal(200, payment.Shortfall);
        Assert.Equal(30, payment.Fee);
        Assert.Equal(270, payment.Net);
        Assert.Equal(0, await f.BalanceAsync("escrow:job:job-1"));

        // The same request repeated reports the same outcome, even though the escrow is now empty.
        var again = await f.Ledger.PayAsync("p", Job, NodeA, 500, 1_000, null, None);
        Assert.Equal(payment, again);
    }

    [Fact]
    public async Task Pay_EmptyEscrow_ThrowsInsufficientBalance()
    {
        using var f = await LedgerFixture.CreateAsync();
        await FundedEscrowAsync(f, 10);
        await f.Ledger.PayAsync("p1", Job, NodeA, 10, 0, null, None);

        var ex = await Assert.ThrowsAsync<InsufficientBalanceException>(() => f.Ledger.PayAsync("p2", Job, NodeA, 1, 0, null, None));

        Assert.Equal("insufficient balance: escrow:job:job-1 has 0 units, needs 1 units", ex.Message);
        Assert.Null(f.Ledger.GetPayment("p2"));
    }

    [Fact]
    public async Task Pay_BadArguments_AreRefused()
    {
        using var f = await LedgerFixture.CreateAsync();
        await FundedEscrowAsync(f, 100);

        await Assert.ThrowsAsync<UnknownEscrowException>(() => f.Ledger.PayAsync("p", EscrowId.Deployment("nope"), NodeA, 1, 0, null, None));
        await Assert.ThrowsAsync<ArgumentOutOfRangeException>(() => f.Ledger.PayAsync("p", Job, NodeA, 0, 0, null, None));
        await Assert.ThrowsAsync<ArgumentOutOfRangeException>(() => f.Ledger.PayAsync("p", Job, NodeA, 1, -1, null, None));
        await Assert.ThrowsAsync<ArgumentOutOfRangeException>(() => f.Ledger.PayAsync("p", Job, NodeA, 1, 10_000, null, None));
        Assert.Equal(100, await f.BalanceAsync("escrow:job:job-1"));
    }

    [Fact]
    public async Task Release_MovesHeldToNodeOnce()
    {
        using var f = await LedgerFixture.CreateAsync();
        await FundedEscrowAsync(f, 100);
        await f.Ledger.PayAsync("p", Job, NodeA, 50, 1_000, null, None);

        var release = await f.Ledger.ReleaseAsync("r", "p", null, None);

        Assert.Equal("p", release.Subject.Payment);
        Assert.Equal(0, await f.BalanceAsync(AccountId.Held(NodeA)));
        Assert.Equal(45, await f.BalanceAsync(AccountId.Node(NodeA)));
        Assert.Equal(PaymentStatus.Released, f.Ledger.GetPayment("p")!.Status);

        var twice = await Assert.ThrowsAsync<PaymentStateException>(() => f.Ledger.ReleaseAsync("r2", "p", null, None));
        Assert.Contains("already released", twice.Message, StringComparison.Ordinal);
        await Assert.ThrowsAsync<PaymentStateException>(() => f.Ledger.VoidAsync("v", "p", VoidDestination.Escrow, null, None));
        await Assert.ThrowsAsync<PaymentStateException>(() => f.Ledger.ReleaseAsync("r3", "unknown", null, None));
    }

    [Fact]
    public async Task Void_ReturnsNetAndFeeToEscrow()
    {
        using var f = await LedgerFixture.CreateAsync();
        await FundedEscrowAsync(f, 100);
        await f.Ledger.PayAsync("p1", Job, NodeA, 40, 500, null, None);
        await f.Ledger.PayAsync("p2", Job, NodeA, 20, 500, null, None);

        var voided = await f.Ledger.VoidAsync("v", "p1", VoidDestination.Escrow, new TransactionReferences { Memo = "sign-flip in round 3" }, None);

        Assert.Equal(NodeA, voided.Subject.Node);
        Assert.Equal(80, await f.BalanceAsync("escrow:job:job-1"));
        Assert.Equal(19, await f.BalanceAsync(AccountId.Held(NodeA)));
        Assert.Equal(1, await f.BalanceAsync("treasury"));
        Assert.Equal(PaymentStatus.Voided, f.Ledger.GetPayment("p1")!.Status);
        Assert.Equal(PaymentStatus.Held, f.Ledger.GetPayment("p2")!.Status);
        await Assert.ThrowsAsync<PaymentStateException>(() => f.Ledger.ReleaseAsync("r", "p1", null, None));
    }

    [Fact]
    public async Task Void_ToOwnerAfterRefund_PaysTheEscrowOwnerNotTheCaller()
    {
        using var f = await LedgerFixture.CreateAsync();
        await FundedEscrowAsync(f, 100);
        await f.Ledger.PayAsync("p", Job, NodeA, 40, 500, null, None);
        await f.Ledger.RefundAsync("refund", Job, null, None);
        Assert.Equal(1_100 - 40, await f.BalanceAsync("user:alice"));

        await f.Ledger.VoidAsync("v", "p", VoidDestination.Owner, null, None);

        Assert.Equal(1_100, await f.BalanceAsync("user:alice"));
        Assert.Equal(0, await f.BalanceAsync("escrow:job:job-1"));
        Assert.Equal(0, await f.BalanceAsync("treasury"));
    }

    [Fact]
    public async Task Refund_ReturnsEverythingLeftToOwner()
    {
        using var f = await LedgerFixture.CreateAsync();
        await FundedEscrowAsync(f, 100);
        await f.Ledger.PayAsync("p", Job, NodeA, 30, 0, null, None);

        var refund = await f.Ledger.RefundAsync("r", Job, null, None);

        Assert.NotNull(refund);
        Assert.Equal(70, refund.AmountFor(AccountId.User("alice")));
        Assert.Equal(1_070, await f.BalanceAsync("user:alice"));
        Assert.Equal(0, await f.BalanceAsync("escrow:job:job-1"));
    }

    [Fact]
    public async Task Refund_EmptyEscrow_ReturnsNullAndPostsNothing()
    {
        using var f = await LedgerFixture.CreateAsync();
        await FundedEscrowAsync(f, 10);
        await f.Ledger.PayAsync("p", Job, NodeA, 10, 0, null, None);
        var before = await f.SnapshotAsync();

        Assert.Null(await f.Ledger.RefundAsync("r", Job, null, None));

        Assert.Equal(before, await f.SnapshotAsync());
        await Assert.ThrowsAsync<UnknownEscrowException>(() => f.Ledger.RefundAsync("r2", EscrowId.Job("nope"), null, None));
    }

    [Fact]
    public async Task Stake_FromEarningsOrExternal()
    {
        using var f = await LedgerFixture.CreateAsync();
        await EarnAsync(f, NodeA, 100);

        await f.Ledger.StakeAsync("s1", NodeA, 60, null, None);
        await f.Ledger.StakeFromExternalAsync("s2", NodeA, 1_000, null, None);

        Assert.Equal(40, await f.BalanceAsync(AccountId.Node(NodeA)));
        Assert.Equal(1_060, await f.BalanceAsync(AccountId.Stake(NodeA)));
        var ex = await Assert.ThrowsAsync<InsufficientBalanceException>(() => f.Ledger.StakeAsync("s3", NodeA, 41, null, None));
        Assert.Equal($"insufficient balance: node:{NodeA} has 40 units, needs 41 units", ex.Message);
        await Assert.ThrowsAsync<ArgumentOutOfRangeException>(() => f.Ledger.StakeFromExternalAsync("s4", NodeA, 0, null, None));
    }

    [Fact]
    public async Task Unstake_CompletesOnlyAfterTheDelay()
    {
        using var f = await LedgerFixture.CreateAsync(TimeSpan.FromHours(24));
        await f.Ledger.StakeFromExternalAsync("s", NodeA, 100, null, None);

        var request = await f.Ledger.RequestUnstakeAsync("u1", NodeA, 30, null, None);
        Assert.Equal(LedgerFixture.Start.AddHours(24), request.Subject.DueAt);
        Assert.Equal(70, await f.BalanceAsync(AccountId.Stake(NodeA)));
        Assert.Equal(30, await f.BalanceAsync(AccountId.Unstaking(NodeA)));

        f.Time.Advance(TimeSpan.FromHours(23));
        var early = await Assert.ThrowsAsync<UnstakeNotDueException>(() => f.Ledger.CompleteUnstakeAsync("c1", NodeA, null, None));
        Assert.Contains("due at 2025-01-02T00:00:00.0000000+00:00", early.Message, StringComparison.Ordinal);

        await f.Ledger.RequestUnstakeAsync("u2", NodeA, 20, null, None);
        f.Time.Advance(TimeSpan.FromHours(1));
        var complete = await f.Ledger.CompleteUnstakeAsync("c2", NodeA, null, None);

        // Only the first request is due; the second waits for its own delay.
        Assert.Equal(30, complete.AmountFor(AccountId.Node(NodeA)));
        Assert.Equal(20, await f.BalanceAsync(AccountId.Unstaking(NodeA)));
        Assert.Equal(30, await f.BalanceAsync(AccountId.Node(NodeA)));
        Assert.Equal(["u2"], f.Ledger.GetPendingUnstakes(NodeA).Select(u => u.Key));
    }

    [Fact]
    public async Task Unstake_MoreThanStaked_OrNonePending_IsRefused()
    {
        using var f = await LedgerFixture.CreateAsync();
        await f.Ledger.StakeFromExternalAsync("s", NodeA, 10, null, None);

        await Assert.ThrowsAsync<InsufficientBalanceException>(() => f.Ledger.RequestUnstakeAsync("u", NodeA, 11, null, None));
        var ex = await Assert.ThrowsAsync<UnstakeNotDueException>(() => f.Ledger.CompleteUnstakeAsync("c", NodeA, null, None));
        Assert.Contains("no unstake", ex.Message, StringComparison.Ordinal);
        await Assert.ThrowsAsync<ArgumentOutOfRangeException>(() => f.Ledger.RequestUnstakeAsync("u", NodeA, -1, null, None));
    }

    [Fact]
    public async Task Slash_MoreThanStake_IsCappedAndReachesUnstakingNewestFirst()
    {
        using var f = await LedgerFixture.CreateAsync(TimeSpan.FromDays(1));
        await f.Ledger.StakeFromExternalAsync("s", NodeA, 100, null, None);
        await f.Ledger.RequestUnstakeAsync("u1", NodeA, 30, null, None);
        await f.Ledger.RequestUnstakeAsync("u2", NodeA, 20, null, None);

        var result = await f.Ledger.SlashAsync("x", NodeA, 60, null, None);

        Assert.Equal(60, result.Slashed);
        Assert.Equal(50, result.FromStake);
        Assert.Equal(10, result.FromUnstaking);
        Assert.Equal(new long[] { 30, 10 }, f.Ledger.GetPendingUnstakes(NodeA).Select(u => u.Amount));

        var capped = await f.Ledger.SlashAsync("y", NodeA, 1_000, null, None);
        Assert.Equal(40, capped.Slashed);
        Assert.Equal(0, capped.FromStake);
        Assert.Empty(f.Ledger.GetPendingUnstakes(NodeA));
        Assert.Equal(100, await f.BalanceAsync("slashed"));
        Assert.Equal(0, await f.BalanceAsync(AccountId.Unstaking(NodeA)));

        var nothing = await f.Ledger.SlashAsync("z", NodeA, 5, null, None);
        Assert.Null(nothing.Transaction);
        Assert.Equal(0, nothing.Slashed);
        f.Time.Advance(TimeSpan.FromDays(2));
        await Assert.ThrowsAsync<UnstakeNotDueException>(() => f.Ledger.CompleteUnstakeAsync("c", NodeA, null, None));
    }

    [Fact]
    public async Task SlashShare_TakesAFractionRoundedDown()
    {
        using var f = await LedgerFixture.CreateAsync();
        await f.Ledger.StakeFromExternalAsync("s", NodeA, 1_001, null, None);

        var result = await f.Ledger.SlashShareAsync("x", NodeA, 1_000, null, None);

        Assert.Equal(100, result.Slashed);
        Assert.Equal(901, await f.BalanceAsync(AccountId.Stake(NodeA)));
        await Assert.ThrowsAsync<ArgumentOutOfRangeException>(() => f.Ledger.SlashShareAsync("y", NodeA, 0, null, None));
        await Assert.ThrowsAsync<ArgumentOutOfRangeException>(() => f.Ledger.SlashShareAsync("y", NodeA, 10_001, null, None));
        var all = await f.Ledger.SlashShareAsync("y", NodeA, 10_000, null, None);
        Assert.Equal(901, all.Slashed);
    }

    [Fact]
    public async Task Journal_PagesByAccountAndSequence()
    {
        using var f = await LedgerFixture.CreateAsync();
        for (var i = 0; i < 5; i++)
        {
            await f.Ledger.FundAsync($"a{i}", "alice", 1, null, None);
            await f.Ledger.FundAsync($"b{i}", "bob", 1, null, None);
        }

        var first = await f.Ledger.GetJournalAsync(AccountId.User("alice"), 0, 2, None);
        var second = await f.Ledger.GetJournalAsync(AccountId.User("alice"), first[^1].Sequence, 10, None);

        Assert.Equal(["a0", "a1"], first.Select(t => t.IdempotencyKey));
        Assert.Equal(["a2", "a3", "a4"], second.Select(t => t.IdempotencyKey));
        Assert.Equal(10, (await f.Ledger.GetJournalAsync(AccountId.External, 0, 100, None)).Count);
        Assert.Equal([9L, 10L], (await f.Ledger.GetTransactionsAsync(8, 100, None)).Select(t => t.Sequence));
        await Assert.ThrowsAsync<ArgumentOutOfRangeException>(() => f.Ledger.GetTransactionsAsync(0, 0, None));
        await Assert.ThrowsAsync<ArgumentOutOfRangeException>(() => f.Ledger.GetTransactionsAsync(0, GeneralLedger.MaxPageSize + 1, None));
    }

    [Fact]
    public async Task Writes_FromManyThreads_AllLandOnceAndBalance()
    {
        using var f = await LedgerFixture.CreateAsync();
        await FundedEscrowAsync(f, 1_000_000);

        // Each payment is sent twice at once: the second must find the first.
        var tasks = Enumerable.Range(0, 200)
            .SelectMany(i => new[] { i, i })
            .Select(i => Task.Run(() => f.Ledger.PayAsync($"p{i}", Job, LedgerFixture.Node(i % 7), 10, 100, null, None)));
        var payments = await Task.WhenAll(tasks);

        Assert.Equal(200, payments.Select(p => p.Transaction.Sequence).Distinct().Count());
        Assert.Equal(1_000_000 - 2_000, await f.BalanceAsync("escrow:job:job-1"));
        Assert.Equal(0, (await f.Ledger.GetBalancesAsync(None)).Values.Sum());
    }

    [Fact]
    public async Task Reopen_RebuildsEscrowsPaymentsAndUnstakes()
    {
        using var f = await LedgerFixture.CreateAsync(TimeSpan.FromHours(1));
        await FundedEscrowAsync(f, 100);
        await f.Ledger.PayAsync("p1", Job, NodeA, 10, 0, null, None);
        await f.Ledger.PayAsync("p2", Job, NodeA, 10, 0, null, None);
        await f.Ledger.ReleaseAsync("r1", "p1", null, None);
        await f.Ledger.StakeFromExternalAsync("s", NodeA, 50, null, None);
        await f.Ledger.RequestUnstakeAsync("u", NodeA, 20, null, None);

        await f.ReopenAsync();

        Assert.Equal("alice", f.Ledger.GetEscrowOwner(Job));
        Assert.Equal(PaymentStatus.Released, f.Ledger.GetPayment("p1")!.Status);
        Assert.Equal(PaymentStatus.Held, f.Ledger.GetPayment("p2")!.Status);
        Assert.Single(f.Ledger.GetPendingUnstakes(NodeA));
        await Assert.ThrowsAsync<PaymentStateException>(() => f.Ledger.ReleaseAsync("r1b", "p1", null, None));
        f.Time.Advance(TimeSpan.FromHours(1));
        await f.Ledger.CompleteUnstakeAsync("c", NodeA, null, None);
        Assert.Equal(30, await f.BalanceAsync(AccountId.Node(NodeA)));
    }

    [Fact]
    public async Task Open_JournalThatDoesNotReplay_IsRefused()
    {
        using var f = await LedgerFixture.CreateAsync();
        await f.Ledger.FundAsync("f", "alice", 10, null, None);
        // A release that names no payment: the store takes it (it checks only keys and balances), a replay cannot.
        await f.Store.AppendAsync(
            new TransactionDraft("bad", TransactionKind.Release, LedgerFixture.Start, [new(AccountId.User("alice"), -5), new(AccountId.User("bob"), 5)],
                TransactionReferences.None, TransactionSubject.None, "x"),
            None);

        var ex = await Assert.ThrowsAsync<LedgerCorruptException>(() => GeneralLedger.OpenAsync(f.Store, f.Options, f.Time, None));

        Assert.Contains("names no payment", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Options_NegativeUnstakeDelay_IsRefusedAtOpen()
    {
        var options = new LedgerOptions { UnstakeDelay = TimeSpan.FromSeconds(-1) };

        await Assert.ThrowsAsync<ArgumentOutOfRangeException>(() => GeneralLedger.OpenAsync(new InMemoryLedgerStore(), options, TimeProvider.System, None));
    }

    internal static async Task FundedEscrowAsync(LedgerFixture f, long amount)
    {
        await f.Ledger.FundAsync("fund-alice", "alice", 1_000 + amount, null, None);
        await f.Ledger.OpenEscrowAsync("open-job-1", "alice", Job, amount, null, None);
    }

    internal static async Task EarnAsync(LedgerFixture f, EthAddress node, long amount)
    {
        var key = $"earn-{node}-{amount}";
        var escrow = EscrowId.Job($"earn-{node.ToString()[^8..]}-{amount}");
        await f.Ledger.FundAsync(key + "-fund", "payer", amount, null, None);
        await f.Ledger.OpenEscrowAsync(key + "-open", "payer", escrow, amount, null, None);
        await f.Ledger.PayAsync(key + "-pay", escrow, node, amount, 0, null, None);
        await f.Ledger.ReleaseAsync(key + "-release", key + "-pay", null, None);
    }
}
