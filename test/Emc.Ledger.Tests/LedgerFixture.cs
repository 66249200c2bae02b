using System.Globalization;
using Emc.Core.Identity;
using Microsoft.Extensions.Time.Testing;

namespace Emc.Ledger.Tests;

/// <summary>A ledger over an in-memory store with a fake clock, and helpers the tests share.</summary>
internal sealed class LedgerFixture : IDisposable
{
    public static readonly DateTimeOffset Start = new(2025, 1, 1, 0, 0, 0, TimeSpan.Zero);

    private LedgerFixture(InMemoryLedgerStore store, FakeTimeProvider time, LedgerOptions options, GeneralLedger ledger)
    {
        Store = store;
        Time = time;
        Options = options;
        Ledger = ledger;
    }

    public InMemoryLedgerStore Store { get; }

    public FakeTimeProvider Time { get; }

    public LedgerOptions Options { get; }

    public GeneralLedger Ledger { get; private set; }

    public static async Task<LedgerFixture> CreateAsync(TimeSpan? unstakeDelay = null)
    {
        var store = new InMemoryLedgerStore();
        var time = new FakeTimeProvider(Start);
        var options = new LedgerOptions { UnstakeDelay = unstakeDelay ?? TimeSpan.FromDays(7) };
        return new LedgerFixture(store, time, options, await GeneralLedger.OpenAsync(store, options, time, CancellationToken.None));
    }

    /// <summary>Drops the ledger object and opens a new one over the same store, as after a restart.</summary>
    public async Task ReopenAsync()
    {
        Ledger.Dispose();
        Ledger = await GeneralLedger.OpenAsync(Store, Options, Time, CancellationToken.None);
    }

    public static EthAddress Node(int n) => EthAddress.Parse("0x" + n.ToString("x40", CultureInfo.InvariantCulture));

    public Task<long> BalanceAsync(AccountId account) => Ledger.GetBalanceAsync(account, CancellationToken.None);

    public Task<long> BalanceAsync(string account) => BalanceAsync(AccountId.Parse(account));

    public async Task<IReadOnlyList<LedgerTransaction>> JournalAsync()
    {
        var all = new List<LedgerTransaction>();
        while (true)
        {
            var page = await Store.GetTransactionsAfterAsync(all.Count == 0 ? 0 : all[^1].Sequence, 500, CancellationToken.None);
            if (page.Count == 0)
            {
                return all;
            }

            all.AddRange(page);
        }
    }

    /// <summary>Balances, journal length and epoch count: equal snapshots mean nothing changed.</summary>
    public async Task<string> SnapshotAsync()
    {
        var balances = await Store.GetBalancesAsync(CancellationToken.None);
        var journal = await JournalAsync();
        var epoch = await Store.GetLatestEpochAsync(CancellationToken.None);
        return string.Join(",", balances.OrderBy(b => b.Key.ToString(), StringComparer.Ordinal).Select(b => $"{b.Key}={b.Value}"))
            + $"|{journal.Count}|{(journal.Count == 0 ? 0 : journal[^1].Sequence)}|{epoch?.Number}|{epoch?.Root}";
    }

    public void Dispose() => Ledger.Dispose();
}
