using Emc.Core.Identity;
using Emc.Ledger.Settlement;

namespace Emc.Ledger.Tests.Settlement;

public sealed class SettlementTests
{
    private static readonly CancellationToken None = CancellationToken.None;
    private static readonly EthAddress NodeA = LedgerFixture.Node(0xa);
    private static readonly EthAddress NodeB = LedgerFixture.Node(0xb);
    private static readonly EthAddress NodeC = LedgerFixture.Node(0xc);

    [Fact]
    public async Task CloseEpoch_NothingEverSettled_HasZeroRootAndNoLeaves()
    {
        using var f = await LedgerFixture.CreateAsync();
        await f.Ledger.FundAsync("f", "alice", 10, null, None);

        var epoch = await f.Ledger.CloseEpochAsync(1, None);

        Assert.Equal(1, epoch.Number);
        Assert.Empty(epoch.Leaves);
        Assert.Equal("0x" + new string('0', 64), epoch.Root);
        Assert.Null(epoch.SettlementSequence);
        Assert.Equal(1, epoch.LastSequence);
        Assert.Equal(LedgerFixture.Start, epoch.ClosedAt);
    }

    [Fact]
    public async Task CloseEpoch_MovesReleasedBalancesToSettledButNotHeldOnes()
    {
        using var f = await LedgerFixture.CreateAsync();
        await GeneralLedgerTests.EarnAsync(f, NodeB, 300);
        await GeneralLedgerTests.EarnAsync(f, NodeA, 100);
        await GeneralLedgerTests.FundedEscrowAsync(f, 1_000);
        await f.Ledger.PayAsync("held-pay", EscrowId.Job("job-1"), NodeC, 50, 0, null, None);

        var epoch = await f.Ledger.CloseEpochAsync(1, None);

        Assert.Equal([NodeA, NodeB], epoch.Leaves.Select(l => l.Account));
        Assert.Equal([0, 1], epoch.Leaves.Select(l => l.Index));
        Assert.Equal([100L, 300L], epoch.Leaves.Select(l => l.CumulativeAmount));
        Assert.Equal(400, epoch.TotalSettled);
        Assert.Equal(400, await f.BalanceAsync("settled"));
        Assert.Equal(0, await f.BalanceAsync(AccountId.Node(NodeA)));
        Assert.Equal(50, await f.BalanceAsync(AccountId.Held(NodeC)));
        var settlement = (await f.JournalAsync())[^1];
        Assert.Equal(TransactionKind.Settle, settlement.Kind);
        Assert.Equal(epoch.SettlementSequence, settlement.Sequence);
        Assert.Equal(epoch.LastSequence, settlement.Sequence);
        Assert.Equal(1, settlement.Subject.Epoch);
    }

    [Fact]
    public async Task CloseEpoch_AmountsAreCumulativeAcrossEpochs()
    {
        using var f = await LedgerFixture.CreateAsync();
        await GeneralLedgerTests.EarnAsync(f, NodeA, 100);
        var first = await f.Ledger.CloseEpochAsync(1, None);
        await GeneralLedgerTests.EarnAsync(f, NodeA, 40);
        await GeneralLedgerTests.EarnAsync(f, NodeC, 7);

        var second = await f.Ledger.CloseEpochAsync(2, None);
        var third = await f.Ledger.CloseEpochAsync(3, None);

        Assert.Equal([140L, 7L], second.Leaves.Select(l => l.CumulativeAmount));
        Assert.Equal(147, await f.BalanceAsync("settled"));
        Assert.NotEqual(first.Root, second.Root);
        // Nothing new: the same leaves and root, and no settlement transaction.
        Assert.Equal(second.Root, third.Root);
        Assert.Null(third.SettlementSequence);
        Assert.Equal(second.LastSequence, third.LastSequence);
    }

    [Fact]
    public async Task CloseEpoch_Twice_ReturnsTheSameRecordAndChangesNothing()
    {
        using var f = await LedgerFixture.CreateAsync();
        await GeneralLedgerTests.EarnAsync(f, NodeA, 100);
        var first = await f.Ledger.CloseEpochAsync(1, None);
        await GeneralLedgerTests.EarnAsync(f, NodeA, 50);
        var before = await f.SnapshotAsync();

        var again = await f.Ledger.CloseEpochAsync(1, None);

        Assert.Same(first, again);
        Assert.Equal(before, await f.SnapshotAsync());
        Assert.Equal(50, await f.BalanceAsync(AccountId.Node(NodeA)));
    }

    [Fact]
    public async Task CloseEpoch_OutOfOrder_IsRefused()
    {
        using var f = await LedgerFixture.CreateAsync();

        var ex = await Assert.ThrowsAsync<EpochOrderException>(() => f.Ledger.CloseEpochAsync(2, None));

        Assert.Contains("the next epoch to close is 1", ex.Message, StringComparison.Ordinal);
        await Assert.ThrowsAsync<ArgumentOutOfRangeException>(() => f.Ledger.CloseEpochAsync(0, None));
        Assert.Null(await f.Ledger.GetLatestEpochAsync(None));
    }

    [Fact]
    public async Task ClaimProof_VerifiesAgainstEpochRootWithIndependentKeccak()
    {
        using var f = await LedgerFixture.CreateAsync();
        var nodes = Enumerable.Range(1, 11).Select(i => LedgerFixture.Node(i * 7919)).ToList();
        for (var i = 0; i < nodes.Count; i++)
        {
            await GeneralLedgerTests.EarnAsync(f, nodes[i], 1_000 + i);
        }

        await f.Ledger.CloseEpochAsync(1, None);
        await GeneralLedgerTests.EarnAsync(f, nodes[3], 5);
        var epoch = await f.Ledger.CloseEpochAsync(2, None);

        foreach (var node in nodes)
        {
            var claim = await f.Ledger.GetClaimProofAsync(node, null, None);

            Assert.NotNull(claim);
            Assert.Equal(2, claim.Epoch);
            Assert.Equal(epoch.Root, claim.Root);
            var leaf = ReferenceMerkle.Leaf(claim.Index, node.ToString(), claim.Amount);
            Assert.Equal(ReferenceMerkle.FromHex(claim.Leaf), leaf);
            Assert.True(ReferenceMerkle.Verify(claim.Proof.Select(ReferenceMerkle.FromHex), ReferenceMerkle.FromHex(epoch.Root), leaf));
            Assert.False(ReferenceMerkle.Verify(
                claim.Proof.Select(ReferenceMerkle.FromHex), ReferenceMerkle.FromHex(epoch.Root), ReferenceMerkle.Leaf(claim.Index, node.ToString(), claim.Amount + 1)));
        }

        Assert.Equal(1_008, (await f.Ledger.GetClaimProofAsync(nodes[3], null, None))!.Amount);
        Assert.Equal(1_003, (await f.Ledger.GetClaimProofAsync(nodes[3], 1, None))!.Amount);
        var older = await f.Ledger.GetClaimProofAsync(nodes[3], 1, None);
        Assert.True(ReferenceMerkle.Verify(
            older!.Proof.Select(ReferenceMerkle.FromHex),
            ReferenceMerkle.FromHex((await f.Ledger.GetEpochAsync(1, None))!.Root),
            ReferenceMerkle.Leaf(older.Index, nodes[3].ToString(), 1_003)));
    }

    [Fact]
    public async Task ClaimProof_UnknownAddressOrEpoch_IsNull()
    {
        using var f = await LedgerFixture.CreateAsync();
        await GeneralLedgerTests.EarnAsync(f, NodeA, 100);
        await f.Ledger.CloseEpochAsync(1, None);

        Assert.Null(await f.Ledger.GetClaimProofAsync(NodeB, null, None));
        Assert.Null(await f.Ledger.GetClaimProofAsync(NodeA, 2, None));
        var single = await f.Ledger.GetClaimProofAsync(NodeA, 1, None);
        Assert.Empty(single!.Proof);
        Assert.Equal(single.Root, single.Leaf);
    }

    [Fact]
    public async Task Reopen_KeepsEpochsAndCumulativeAmounts()
    {
        using var f = await LedgerFixture.CreateAsync();
        await GeneralLedgerTests.EarnAsync(f, NodeA, 100);
        var first = await f.Ledger.CloseEpochAsync(1, None);
        var proof = await f.Ledger.GetClaimProofAsync(NodeA, 1, None);

        await f.ReopenAsync();
        await GeneralLedgerTests.EarnAsync(f, NodeA, 1);
        var second = await f.Ledger.CloseEpochAsync(2, None);

        Assert.Equal(first, await f.Ledger.GetEpochAsync(1, None));
        Assert.Equal(proof, await f.Ledger.GetClaimProofAsync(NodeA, 1, None), ClaimEquals);
        Assert.Equal(101, second.Leaves.Single().CumulativeAmount);
        Assert.Same(first, await f.Ledger.CloseEpochAsync(1, None));
    }

    private static bool ClaimEquals(ClaimProof? a, ClaimProof? b) =>
        a is not null && b is not null && a with { Proof = [] } == b with { Proof = [] } && a.Proof.SequenceEqual(b.Proof);
}
