using Emc.Core.Identity;
using Emc.Ledger.Settlement;

namespace Emc.Ledger.Tests;

/// <summary>
/// Random sequences of every operation, restarts, crashes in the middle of a write, repeats and
/// conflicting reuses of keys, with the ledger's invariants checked after every step.
/// </summary>
public sealed class LedgerPropertyTests
{
    private const int SequencesPerBlock = 30;
    private const int Blocks = 10;
    private const int StepsPerSequence = 250;

    public static TheoryData<int> SeedBlocks()
    {
        var data = new TheoryData<int>();
        for (var block = 0; block < Blocks; block++)
        {
            data.Add(block);
        }

        return data;
    }

    [Theory]
    [MemberData(nameof(SeedBlocks))]
    public async Task RandomOperations_KeepEveryInvariant(int block)
    {
        var kinds = new HashSet<TransactionKind>();
        var (crashes, repeats, partialPayments) = (0, 0, 0);
        for (var seed = block * SequencesPerBlock; seed < (block + 1) * SequencesPerBlock; seed++)
        {
            var run = await Run.CreateAsync(seed);
            for (var step = 0; step < StepsPerSequence; step++)
            {
                await run.StepAsync(step);
            }

            await run.CollectKindsAsync();

            Assert.True(run.Posted > StepsPerSequence / 5, $"seed {seed}: only {run.Posted} of {StepsPerSequence} steps posted; the generator is too timid to test much");
            kinds.UnionWith(run.Kinds);
            (crashes, repeats, partialPayments) = (crashes + run.Crashes, repeats + run.Repeats, partialPayments + run.PartialPayments);
        }

        // The block reached every kind of transaction and every kind of trouble.
        Assert.Equal(Enum.GetValues<TransactionKind>().Order(), kinds.Order());
        Assert.True(crashes > 10, $"only {crashes} simulated crashes hit a write");
        Assert.True(repeats > 100, $"only {repeats} repeats");
        Assert.True(partialPayments > 0, "no payment ran an escrow dry");
    }

    private sealed class Run
    {
        private static readonly string[] Users = ["alice", "bob", "carol", "dave"];
        private static readonly EthAddress[] Nodes = [.. Enumerable.Range(1, 5).Select(i => LedgerFixture.Node(i * 0x1111))];

        // What an operation that posts under no caller key (an epoch close) returns instead of a sequence.
        private const long Unkeyed = -1;

        private readonly int _seed;
        private readonly Random _random;
        private readonly LedgerFixture _f;
        private readonly List<EscrowId> _escrows = [];
        private readonly List<string> _payments = [];
        private readonly List<(string Key, Func<Task<long?>> Action)> _done = [];
        private readonly Dictionary<EthAddress, long> _lastSettled = [];
        private long _funded;
        private long _epoch;
        private int _keys;

        private Run(int seed, LedgerFixture f)
        {
            _seed = seed;
            _random = new Random(seed);
            _f = f;
        }

        public int Posted { get; private set; }

        public int Crashes { get; private set; }

        public int Repeats { get; private set; }

        public int PartialPayments { get; private set; }

        public HashSet<TransactionKind> Kinds { get; } = [];

        public static async Task<Run> CreateAsync(int seed) => new(seed, await LedgerFixture.CreateAsync(TimeSpan.FromHours(1)));

        private GeneralLedger Ledger => _f.Ledger;

        public async Task CollectKindsAsync() => Kinds.UnionWith((await _f.JournalAsync()).Select(t => t.Kind));

        private static CancellationToken None => CancellationToken.None;

        public async Task StepAsync(int step)
        {
            var before = await _f.SnapshotAsync();
            var roll = _random.Next(100);
            var context = $"seed {_seed}, step {step}, roll {roll}";

            if (roll < 4)
            {
                // Crash and recover: drop the ledger object and rebuild it from the store.
                await _f.ReopenAsync();
                Assert.Equal(before, await _f.SnapshotAsync());
            }
            else if (roll < 8)
            {
                _f.Time.Advance(TimeSpan.FromMinutes(_random.Next(1, 90)));
            }
            else if (roll < 16 && _done.Count > 0)
            {
                // The same request under the same key: the original comes back and nothing changes.
                var (key, action) = _done[_random.Next(_done.Count)];
                var original = (await _f.Store.FindAsync(key, None))!.Sequence;
                Assert.Equal(original, await action());
                Repeats++;
                Assert.True(before == await _f.SnapshotAsync(), $"{context}: repeating '{key}' changed the ledger");
            }
            else if (roll < 20 && _done.Count > 0)
            {
                // Another request under a used key: a conflict, and nothing changes.
                var (key, _) = _done[_random.Next(_done.Count)];
                await Assert.ThrowsAsync<IdempotencyConflictException>(() => Ledger.FundAsync(key, "conflict", 1, null, None));
                Assert.True(before == await _f.SnapshotAsync(), $"{context}: a conflicting reuse of '{key}' changed the ledger");
            }
            else if (roll < 26)
            {
                await CrashInTheMiddleAsync(before, context);
            }
            else
            {
                await TryAsync(NextOperation(), before, context);
            }

            await CheckInvariantsAsync(context);
        }

        // A write that fails part-way through its append must leave no trace, and the ledger must go
        // on (with the same object or a rebuilt one) as if the request had never been made.
        private async Task CrashInTheMiddleAsync(string before, string context)
        {
            var crashAt = _random.Next(12);
            var changes = 0;
            _f.Store.BeforeChange = _ =>
            {
                if (changes++ == crashAt)
                {
                    throw new InvalidOperationException("simulated crash");
                }
            };
            var (fundedBefore, payments) = (_funded, _payments.Count);
            try
            {
                await TryAsync(NextOperation(), before, context);
            }
            catch (InvalidOperationException ex) when (ex.Message == "simulated crash")
            {
                Assert.True(before == await _f.SnapshotAsync(), $"{context}: a crash at change {crashAt} left a partial write");
                Crashes++;
                _funded = fundedBefore;
                _payments.RemoveRange(payments, _payments.Count - payments);
            }
            finally
            {
                _f.Store.BeforeChange = null;
            }

            if (_random.Next(2) == 0)
            {
                await _f.ReopenAsync();
            }
        }

        private async Task TryAsync((string Key, Func<Task<long?>> Action, long Funding) operation, string before, string context)
        {
            long? sequence;
            try
            {
                sequence = await operation.Action();
            }
            catch (LedgerException ex) when (ex is not (LedgerCorruptException or IdempotencyConflictException))
            {
                Assert.True(before == await _f.SnapshotAsync(), $"{context}: refused '{operation.Key}' ({ex.Message}) but the ledger changed");
                return;
            }

            if (sequence is null)
            {
                Assert.True(before == await _f.SnapshotAsync(), $"{context}: '{operation.Key}' moved nothing but the ledger changed");
                return;
            }

            Posted++;
            _funded = LedgerUnits.Add(_funded, operation.Funding, "funding");
            if (sequence != Unkeyed)
            {
                _done.Add((operation.Key, operation.Action));
            }
        }

        private (string Key, Func<Task<long?>> Action, long Funding) NextOperation()
        {
            var key = $"op-{_keys++}";
            var user = Users[_random.Next(Users.Length)];
            var node = Nodes[_random.Next(Nodes.Length)];
            var amount = Amount();
            var escrow = _escrows.Count > 0 && _random.Next(10) > 0 ? _escrows[_random.Next(_escrows.Count)] : EscrowId.Job($"j{_random.Next(1000)}");
            var payment = _payments.Count > 0 && _random.Next(10) > 0 ? _payments[_random.Next(_payments.Count)] : "no-such-payment";

            switch (_random.Next(15))
            {
                case 0 or 1:
                    return (key, async () => (await Ledger.FundAsync(key, user, amount, null, None)).Sequence, amount);
                case 2:
                    var opened = EscrowId.Job($"j{_random.Next(1000)}");
                    return (key, async () =>
                    {
                        var t = await Ledger.OpenEscrowAsync(key, user, opened, amount, null, None);
                        if (!_escrows.Contains(opened))
                        {
                            _escrows.Add(opened);
                        }

                        return t.Sequence;
                    }, 0);
                case 3:
                    return (key, async () => (await Ledger.TopUpEscrowAsync(key, escrow, amount, null, None)).Sequence, 0);
                case 4 or 5:
                    var fee = _random.Next(3) == 0 ? 0 : _random.Next(2_000);
                    var refs = new TransactionReferences { JobId = escrow.Id, Round = _random.Next(10) == 0 ? null : _random.Next(100) };
                    return (key, async () =>
                    {
                        var p = await Ledger.PayAsync(key, escrow, node, amount, fee, refs, None);
                        Assert.Equal(p.Gross, p.Fee + p.Net);
                        Assert.True(p.Gross <= amount);
                        PartialPayments += p.IsPartial ? 1 : 0;
                        if (!_payments.Contains(key))
                        {
                            _payments.Add(key);
                        }

                        return p.Transaction.Sequence;
                    }, 0);
                case 6:
                    return (key, async () => (await Ledger.ReleaseAsync(key, payment, null, None)).Sequence, 0);
                case 7:
                    var destination = _random.Next(2) == 0 ? VoidDestination.Escrow : VoidDestination.Owner;
                    return (key, async () => (await Ledger.VoidAsync(key, payment, destination, null, None)).Sequence, 0);
                case 8:
                    return (key, async () => (await Ledger.RefundAsync(key, escrow, null, None))?.Sequence, 0);
                case 9:
                    return (key, async () => (await Ledger.StakeAsync(key, node, amount, null, None)).Sequence, 0);
                case 10:
                    return (key, async () => (await Ledger.StakeFromExternalAsync(key, node, amount, null, None)).Sequence, amount);
                case 11:
                    return (key, async () => (await Ledger.RequestUnstakeAsync(key, node, amount, null, None)).Sequence, 0);
                case 12:
                    return (key, async () => (await Ledger.CompleteUnstakeAsync(key, node, null, None)).Sequence, 0);
                case 13:
                    if (_random.Next(2) == 0)
                    {
                        return (key, async () => (await Ledger.SlashAsync(key, node, amount, null, None)).Transaction?.Sequence, 0);
                    }

                    var share = _random.Next(1, LedgerUnits.BasisPointsPerWhole + 1);
                    return (key, async () => (await Ledger.SlashShareAsync(key, node, share, null, None)).Transaction?.Sequence, 0);
                default:
                    // Mostly the next epoch; sometimes one already closed (idempotent) or one too far.
                    var number = _random.Next(6) switch
                    {
                        0 when _epoch > 0 => _random.NextInt64(1, _epoch + 1),
                        1 => _epoch + 2,
                        _ => _epoch + 1,
                    };
                    // Not a keyed request: it is idempotent by its number, so it is never repeated by key.
                    return ($"epoch-{number}", async () =>
                    {
                        var wasClosed = number <= _epoch;
                        var epoch = await Ledger.CloseEpochAsync(number, None);
                        Assert.Equal(number, epoch.Number);
                        _epoch = Math.Max(_epoch, number);
                        return wasClosed ? null : Unkeyed;
                    }, 0);
            }
        }

        // Now and then an amount near the limit, to reach the overflow checks (two such funds
        // overflow external, after which funding is refused for the rest of the sequence).
        private long Amount() => _random.Next(500) switch
        {
            0 => long.MaxValue / 2 + _random.NextInt64(long.MaxValue / 2),
            < 100 => _random.NextInt64(1, 5 * LedgerUnits.PerEmc),
            _ => _random.Next(1, 500),
        };

        private async Task CheckInvariantsAsync(string context)
        {
            var balances = await _f.Store.GetBalancesAsync(None);

            // Money is neither created nor lost: everything sums to zero, so all but external sum to what was funded.
            Int128 total = 0;
            foreach (var (account, balance) in balances)
            {
                total += balance;
                Assert.True(balance >= 0 || account.MayGoNegative, $"{context}: {account} is {balance}");
            }

            Assert.True(total == 0, $"{context}: balances sum to {total}");
            Assert.Equal(-_funded, balances.GetValueOrDefault(AccountId.External));

            // The stored balances are exactly what the journal's entries add up to.
            var recomputed = new Dictionary<AccountId, long>();
            foreach (var transaction in await _f.JournalAsync())
            {
                Assert.True(transaction.Entries.Length >= 2, $"{context}: transaction {transaction.Sequence} has one entry");
                Assert.Equal(0, transaction.Entries.Sum(e => (decimal)e.Amount));
                foreach (var entry in transaction.Entries)
                {
                    recomputed[entry.Account] = recomputed.GetValueOrDefault(entry.Account) + entry.Amount;
                }
            }

            Assert.Equal(recomputed.Count, balances.Count);
            foreach (var (account, balance) in recomputed)
            {
                Assert.True(balance == balances[account], $"{context}: {account} is stored as {balances[account]} but its entries sum to {balance}");
            }

            // Held earnings are exactly the payments still in their audit window; unstaking is exactly the pending unstakes.
            foreach (var node in Nodes)
            {
                var held = _payments.Select(Ledger.GetPayment).Where(p => p is { Status: PaymentStatus.Held } && p.Node == node).Sum(p => p!.Net);
                Assert.Equal(held, balances.GetValueOrDefault(AccountId.Held(node)));
                Assert.Equal(Ledger.GetPendingUnstakes(node).Sum(u => u.Amount), balances.GetValueOrDefault(AccountId.Unstaking(node)));
            }

            // Settled amounts only grow from epoch to epoch, and the settled account holds the latest epoch's total.
            var latest = await _f.Store.GetLatestEpochAsync(None);
            Assert.Equal(_epoch, latest?.Number ?? 0);
            Assert.Equal(latest?.TotalSettled ?? 0, balances.GetValueOrDefault(AccountId.Settled));
            if (latest is not null)
            {
                foreach (var (address, amount) in _lastSettled)
                {
                    Assert.True(latest.FindLeaf(address) is { } leaf && leaf.CumulativeAmount >= amount, $"{context}: {address} settled less than before");
                }

                foreach (var leaf in latest.Leaves)
                {
                    _lastSettled[leaf.Account] = leaf.CumulativeAmount;
                }

                CheckRoot(latest, context);
            }
        }

        private static void CheckRoot(EpochRecord epoch, string context)
        {
            var hashes = epoch.Leaves.Select(l => Settlement.ReferenceMerkle.Leaf(l.Index, l.Account.ToString(), l.CumulativeAmount)).ToList();
            Assert.True(
                Settlement.ReferenceMerkle.FromHex(epoch.Root).AsSpan().SequenceEqual(Settlement.ReferenceMerkle.Root(hashes)),
                $"{context}: epoch {epoch.Number}'s root is not the root of its leaves");
        }
    }
}
