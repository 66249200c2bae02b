using System.Globalization;
using Emc.Coordinator.Ledger;
using Emc.Coordinator.Persistence;
using Emc.Core.Identity;
using Emc.Ledger;
using Microsoft.Data.Sqlite;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Time.Testing;

namespace Emc.Coordinator.Tests.Ledger;

/// <summary>
/// The ledger's SQLite journal against the in-memory store the ledger's own property tests use: the same
/// random operations on both, with restarts, must leave the same journal, balances and epochs.
/// </summary>
public sealed class EfLedgerStoreTests : IDisposable
{
    private static readonly DateTimeOffset Start = new(2026, 1, 1, 0, 0, 0, TimeSpan.Zero);
    private readonly string _directory = Directory.CreateTempSubdirectory("emc-ledger-store-").FullName;

    public void Dispose()
    {
        SqliteConnection.ClearAllPools();
        Directory.Delete(_directory, recursive: true);
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    public async Task RandomOperations_WithRestarts_MatchTheInMemoryStoreExactly(int seed)
    {
        var factory = Factory($"ledger-{seed}.db");
        var sqlite = new EfLedgerStore(factory);
        var memory = new InMemoryLedgerStore();
        var clock = new FakeTimeProvider(Start);
        var options = new LedgerOptions { UnstakeDelay = TimeSpan.FromHours(1) };
        var a = await GeneralLedger.OpenAsync(sqlite, options, clock, CancellationToken.None);
        var b = await GeneralLedger.OpenAsync(memory, options, clock, CancellationToken.None);
        var random = new Random(seed);
        var done = new List<(string Key, int Operation, int Seed)>();
        try
        {
            for (var step = 0; step < 250; step++)
            {
                clock.Advance(TimeSpan.FromMinutes(random.Next(0, 20)));
                var operation = random.Next(12);
                if (operation == 11)
                {
                    // A restart: both ledgers reopen from their stores and replay their journals.
                    a.Dispose();
                    b.Dispose();
                    a = await GeneralLedger.OpenAsync(new EfLedgerStore(factory), options, clock, CancellationToken.None);
                    b = await GeneralLedger.OpenAsync(memory, options, clock, CancellationToken.None);
                    continue;
                }

                // Now and then a repeat of an earlier operation (same key, same arguments: nothing changes)
                // or an earlier key with other arguments (a conflict: nothing changes either).
                var (key, argumentSeed) = ($"k{step}", random.Next());
                var roll = random.Next(10);
                if (roll < 2 && done.Count > 0)
                {
                    var earlier = done[random.Next(done.Count)];
                    (key, operation, argumentSeed) = roll == 0 ? earlier : (earlier.Key, operation, argumentSeed);
                }

                var first = await Outcome(() => Apply(a, operation, key, argumentSeed));
                var second = await Outcome(() => Apply(b, operation, key, argumentSeed));
                Assert.Equal(first, second);
                if (first.StartsWith("ok", StringComparison.Ordinal))
                {
                    done.Add((key, operation, argumentSeed));
                }
            }

            var fromSqlite = await Journal(sqlite);
            var fromMemory = await Journal(memory);
            Assert.Equal(fromMemory.Count, fromSqlite.Count);
            Assert.True(fromMemory.Count > 60, $"only {fromMemory.Count} transactions were posted");
            for (var i = 0; i < fromMemory.Count; i++)
            {
                Assert.Equal(Describe(fromMemory[i]), Describe(fromSqlite[i]));
            }

            var balances = await sqlite.GetBalancesAsync(CancellationToken.None);
            Assert.Equal(
                (await memory.GetBalancesAsync(CancellationToken.None)).OrderBy(p => p.Key.ToString(), StringComparer.Ordinal).Select(p => $"{p.Key}={p.Value}"),
                balances.OrderBy(p => p.Key.ToString(), StringComparer.Ordinal).Select(p => $"{p.Key}={p.Value}"));
            Assert.Equal(0, balances.Values.Sum());
            Assert.Equal((await memory.GetLatestEpochAsync(CancellationToken.None))?.Root, (await sqlite.GetLatestEpochAsync(CancellationToken.None))?.Root);
        }
        finally
        {
            a.Dispose();
            b.Dispose();
        }
    }

    [Fact]
    public async Task Append_RepeatedKey_ReturnsTheOriginal_AndAnOverdraftWritesNothing()
    {
        var store = new EfLedgerStore(Factory("append.db"));
        var ledger = await GeneralLedger.OpenAsync(store, new LedgerOptions(), TimeProvider.System, CancellationToken.None);

        var funded = await ledger.FundAsync("fund-1", "alice", 500, null, CancellationToken.None);
        var again = await ledger.FundAsync("fund-1", "alice", 500, null, CancellationToken.None);
        await Assert.ThrowsAsync<InsufficientBalanceException>(() => ledger.OpenEscrowAsync("escrow-1", "alice", EscrowId.Job("j1"), 501, null, CancellationToken.None));

        Assert.Equal(funded.Sequence, again.Sequence);
        Assert.Equal(500, await store.GetBalanceAsync(AccountId.User("alice"), CancellationToken.None));
        Assert.Single(await Journal(store));
        Assert.Null(await store.FindAsync("escrow-1", CancellationToken.None));
    }

    private static async Task<string> Outcome(Func<Task<string>> run)
    {
        try
        {
            return await run();
        }
        catch (LedgerException ex)
        {
            return ex.GetType().Name;
        }
    }

    /// <summary>One operation chosen by <paramref name="operation"/>, its arguments drawn from <paramref name="seed"/>.</summary>
    private static async Task<string> Apply(GeneralLedger ledger, int operation, string key, int seed)
    {
        var draw = new Random(seed);
        var user = $"u{draw.Next(3)}";
        var job = EscrowId.Job($"j{draw.Next(4)}");
        var node = EthAddress.Parse("0x" + (draw.Next(3) + 1).ToString("x40", CultureInfo.InvariantCulture));
        var amount = draw.Next(1, 400);
        var none = CancellationToken.None;
        var result = operation switch
        {
            0 => (await ledger.FundAsync(key, user, amount * 5, null, none)).Sequence.ToString(CultureInfo.InvariantCulture),
            1 => (await ledger.OpenEscrowAsync(key, user, job, amount, null, none)).Sequence.ToString(CultureInfo.InvariantCulture),
            2 => (await ledger.PayAsync(key, job, node, amount, 500, null, none)).Net.ToString(CultureInfo.InvariantCulture),
            3 => (await ledger.ReleaseAsync(key, $"k{draw.Next(250)}", null, none)).Sequence.ToString(CultureInfo.InvariantCulture),
            4 => (await ledger.VoidAsync(key, $"k{draw.Next(250)}", VoidDestination.Escrow, null, none)).Sequence.ToString(CultureInfo.InvariantCulture),
            5 => (await ledger.RefundAsync(key, job, null, none))?.Sequence.ToString(CultureInfo.InvariantCulture) ?? "none",
            6 => (await ledger.StakeFromExternalAsync(key, node, amount, null, none)).Sequence.ToString(CultureInfo.InvariantCulture),
            7 => (await ledger.RequestUnstakeAsync(key, node, amount / 4 + 1, null, none)).Sequence.ToString(CultureInfo.InvariantCulture),
            8 => (await ledger.CompleteUnstakeAsync(key, node, null, none)).Sequence.ToString(CultureInfo.InvariantCulture),
            9 => (await ledger.SlashShareAsync(key, node, 2500, null, none)).Slashed.ToString(CultureInfo.InvariantCulture),
            _ => (await ledger.CloseEpochAsync(((await ledger.GetLatestEpochAsync(none))?.Number ?? 0) + 1, none)).Root,
        };
        return "ok " + result;
    }

    private static string Describe(LedgerTransaction t) =>
        $"{t.Sequence} {t.IdempotencyKey} {t.Kind} {t.Time.ToUnixTimeMilliseconds()} {t.RequestDigest} {string.Join(',', t.Entries.OrderBy(e => e.Account.ToString(), StringComparer.Ordinal))} {t.References} {t.Subject}";

    private static async Task<List<LedgerTransaction>> Journal(ILedgerStore store)
    {
        var all = new List<LedgerTransaction>();
        while (true)
        {
            var page = await store.GetTransactionsAfterAsync(all.Count == 0 ? 0 : all[^1].Sequence, 100, CancellationToken.None);
            if (page.Count == 0)
            {
                return all;
            }

            all.AddRange(page);
        }
    }

    private ContextFactory Factory(string file)
    {
        var options = new DbContextOptionsBuilder<EmcDbContext>().UseSqlite($"Data Source={Path.Combine(_directory, file)}").Options;
        using (var db = new EmcDbContext(options))
        {
            db.Database.EnsureCreated();
        }

        return new ContextFactory(options);
    }

    private sealed class ContextFactory(DbContextOptions<EmcDbContext> options) : IDbContextFactory<EmcDbContext>
    {
        public EmcDbContext CreateDbContext() => new(options);
    }
}
