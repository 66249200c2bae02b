using System.Collections.Immutable;
using System.Text.Json;
using System.Text.Json.Serialization;
using Emc.Coordinator.Persistence;
using Emc.Core.Identity;
using Emc.Ledger;
using Emc.Ledger.Settlement;
using Microsoft.EntityFrameworkCore;

namespace Emc.Coordinator.Ledger;

/// <summary>
/// The ledger's journal in the coordinator's database. Every write is one database transaction: the
/// transaction row, its entry rows and the balance updates (and, when an epoch closes, the epoch row) are
/// committed together or not at all, so a coordinator killed at any moment leaves each transaction wholly
/// in the journal or wholly absent. The idempotency key has a unique index, and a balance that would go
/// below zero (any account but <c>external</c>) refuses the whole write.
/// </summary>
public sealed class EfLedgerStore(IDbContextFactory<EmcDbContext> factory) : ILedgerStore
{
    private static readonly JsonSerializerOptions LeafJson = new() { DefaultIgnoreCondition = JsonIgnoreCondition.Never };

    public async Task<AppendResult> AppendAsync(TransactionDraft draft, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(draft);
        await using var db = await factory.CreateDbContextAsync(cancellationToken);
        await using var transaction = await db.Database.BeginTransactionAsync(cancellationToken);
        if (await FindAsync(db, draft.IdempotencyKey, cancellationToken) is { } existing)
        {
            return new AppendResult(existing, Existing: true);
        }

        var posted = await WriteAsync(db, draft, cancellationToken);
        await db.SaveChangesAsync(cancellationToken);
        await transaction.CommitAsync(cancellationToken);
        return new AppendResult(posted, Existing: false);
    }

    public async Task<EpochAppendResult> AppendEpochAsync(EpochDraft epoch, TransactionDraft? settlement, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(epoch);
        await using var db = await factory.CreateDbContextAsync(cancellationToken);
        await using var transaction = await db.Database.BeginTransactionAsync(cancellationToken);
        var latest = await db.LedgerEpochs.MaxAsync(e => (long?)e.Number, cancellationToken) ?? 0;
        if (epoch.Number != latest + 1)
        {
            throw new EpochOrderException($"epoch {epoch.Number} cannot close: the latest closed epoch is {latest}");
        }

        LedgerTransaction? posted = null;
        if (settlement is not null)
        {
            if (await FindAsync(db, settlement.IdempotencyKey, cancellationToken) is not null)
            {
                throw new IdempotencyConflictException($"the settlement key '{settlement.IdempotencyKey}' is already used");
            }

            posted = await WriteAsync(db, settlement, cancellationToken);
        }

        var last = posted?.Sequence ?? await db.LedgerTransactions.MaxAsync(t => (long?)t.Sequence, cancellationToken) ?? 0;
        var record = epoch.ToRecord(last, posted?.Sequence);
        db.LedgerEpochs.Add(new LedgerEpochRow
        {
            Number = record.Number,
            ClosedAtUnixMs = record.ClosedAt.ToUnixTimeMilliseconds(),
            LastSequence = record.LastSequence,
            SettlementSequence = record.SettlementSequence,
            Root = record.Root,
            LeavesJson = JsonSerializer.Serialize(record.Leaves.Select(l => new LeafRow(l.Index, l.Account.ToString(), l.CumulativeAmount)), LeafJson),
        });
        await db.SaveChangesAsync(cancellationToken);
        await transaction.CommitAsync(cancellationToken);
        return new EpochAppendResult(record, posted);
    }

    public async Task<LedgerTransaction?> FindAsync(string idempotencyKey, CancellationToken cancellationToken)
    {
        await using var db = await factory.CreateDbContextAsync(cancellationToken);
        return await FindAsync(db, idempotencyKey, cancellationToken);
    }

    public async Task<long> GetBalanceAsync(AccountId account, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(account);
        await using var db = await factory.CreateDbContextAsync(cancellationToken);
        var text = account.ToString();
        return await db.LedgerBalances.Where(b => b.Account == text).Select(b => (long?)b.Balance).FirstOrDefaultAsync(cancellationToken) ?? 0;
    }

    public async Task<IReadOnlyDictionary<AccountId, long>> GetBalancesAsync(CancellationToken cancellationToken)
    {
        await using var db = await factory.CreateDbContextAsync(cancellationToken);
        var rows = await db.LedgerBalances.AsNoTracking().ToListAsync(cancellationToken);
        return rows.ToDictionary(r => AccountId.Parse(r.Account), r => r.Balance);
    }

    public async Task<IReadOnlyList<LedgerTransaction>> GetAccountJournalAsync(AccountId account, long afterSequence, int limit, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(account);
        await using var db = await factory.CreateDbContextAsync(cancellationToken);
        var text = account.ToString();
        var sequences = await db.LedgerEntries
            .Where(e => e.Account == text && e.Sequence > afterSequence)
            .OrderBy(e => e.Sequence)
            .Select(e => e.Sequence)
            .Take(Math.Max(0, limit))
            .ToListAsync(cancellationToken);
        return await LoadAsync(db, db.LedgerTransactions.Where(t => sequences.Contains(t.Sequence)), cancellationToken);
    }

    public async Task<IReadOnlyList<LedgerTransaction>> GetTransactionsAfterAsync(long afterSequence, int limit, CancellationToken cancellationToken)
    {
        await using var db = await factory.CreateDbContextAsync(cancellationToken);
        return await LoadAsync(db, db.LedgerTransactions.Where(t => t.Sequence > afterSequence).OrderBy(t => t.Sequence).Take(Math.Max(0, limit)), cancellationToken);
    }

    public async Task<EpochRecord?> GetEpochAsync(long number, CancellationToken cancellationToken)
    {
        await using var db = await factory.CreateDbContextAsync(cancellationToken);
        var row = await db.LedgerEpochs.AsNoTracking().FirstOrDefaultAsync(e => e.Number == number, cancellationToken);
        return row is null ? null : ToRecord(row);
    }

    public async Task<EpochRecord?> GetLatestEpochAsync(CancellationToken cancellationToken)
    {
        await using var db = await factory.CreateDbContextAsync(cancellationToken);
        var row = await db.LedgerEpochs.AsNoTracking().OrderByDescending(e => e.Number).FirstOrDefaultAsync(cancellationToken);
        return row is null ? null : ToRecord(row);
    }

    /// <summary>Adds the rows of <paramref name="draft"/> and its balance changes to <paramref name="db"/> (not yet saved), checking balances.</summary>
    private static async Task<LedgerTransaction> WriteAsync(EmcDbContext db, TransactionDraft draft, CancellationToken cancellationToken)
    {
        var sequence = (await db.LedgerTransactions.MaxAsync(t => (long?)t.Sequence, cancellationToken) ?? 0) + 1;
        var accounts = draft.Entries.Select(e => e.Account.ToString()).ToList();
        var balances = await db.LedgerBalances.Where(b => accounts.Contains(b.Account)).ToDictionaryAsync(b => b.Account, StringComparer.Ordinal, cancellationToken);
        foreach (var entry in draft.Entries)
        {
            var text = entry.Account.ToString();
            if (!balances.TryGetValue(text, out var row))
            {
                row = new LedgerBalanceRow { Account = text, Balance = 0 };
                db.LedgerBalances.Add(row);
                balances[text] = row;
            }

            long next;
            try
            {
                next = checked(row.Balance + entry.Amount);
            }
            catch (OverflowException)
            {
                throw new LedgerOverflowException($"the balance of {text} would overflow");
            }

            if (next < 0 && !entry.Account.MayGoNegative)
            {
                throw InsufficientBalanceException.For(entry.Account, row.Balance, -entry.Amount);
            }

            row.Balance = next;
            db.LedgerEntries.Add(new LedgerEntryRow { Sequence = sequence, Account = text, Amount = entry.Amount });
        }

        var references = draft.References;
        var subject = draft.Subject;
        db.LedgerTransactions.Add(new LedgerTransactionRow
        {
            Sequence = sequence,
            IdempotencyKey = draft.IdempotencyKey,
            Kind = draft.Kind.ToString(),
            TimeUnixMs = draft.Time.ToUnixTimeMilliseconds(),
            RequestDigest = draft.RequestDigest,
            JobId = references.JobId,
            Round = references.Round,
            RequestId = references.RequestId,
            Memo = references.Memo,
            SubjectEscrow = subject.Escrow?.ToString(),
            SubjectNode = subject.Node?.ToString(),
            SubjectPayment = subject.Payment,
            SubjectDueAtUnixMs = subject.DueAt?.ToUnixTimeMilliseconds(),
            SubjectEpoch = subject.Epoch,
        });
        return draft.ToTransaction(sequence);
    }

    private static async Task<LedgerTransaction?> FindAsync(EmcDbContext db, string key, CancellationToken cancellationToken)
    {
        var found = await LoadAsync(db, db.LedgerTransactions.Where(t => t.IdempotencyKey == key), cancellationToken);
        return found.Count == 0 ? null : found[0];
    }

    private static async Task<IReadOnlyList<LedgerTransaction>> LoadAsync(EmcDbContext db, IQueryable<LedgerTransactionRow> query, CancellationToken cancellationToken)
    {
        var rows = await query.AsNoTracking().OrderBy(t => t.Sequence).ToListAsync(cancellationToken);
        if (rows.Count == 0)
        {
            return [];
        }

        var sequences = rows.Select(r => r.Sequence).ToList();
        var entries = (await db.LedgerEntries.AsNoTracking().Where(e => sequences.Contains(e.Sequence)).ToListAsync(cancellationToken))
            .ToLookup(e => e.Sequence);
        return [.. rows.Select(row => new LedgerTransaction(
            row.Sequence,
            row.IdempotencyKey,
            Enum.Parse<TransactionKind>(row.Kind),
            DateTimeOffset.FromUnixTimeMilliseconds(row.TimeUnixMs),
            [.. entries[row.Sequence].Select(e => new LedgerEntry(AccountId.Parse(e.Account), e.Amount))],
            new TransactionReferences { JobId = row.JobId, Round = row.Round, RequestId = row.RequestId, Memo = row.Memo },
            new TransactionSubject
            {
                Escrow = row.SubjectEscrow is null ? null : EscrowId.Parse(row.SubjectEscrow),
                Node = row.SubjectNode is null ? null : EthAddress.Parse(row.SubjectNode),
                Payment = row.SubjectPayment,
                DueAt = row.SubjectDueAtUnixMs is { } due ? DateTimeOffset.FromUnixTimeMilliseconds(due) : null,
                Epoch = row.SubjectEpoch,
            },
            row.RequestDigest))];
    }

    private static EpochRecord ToRecord(LedgerEpochRow row)
    {
        var leaves = JsonSerializer.Deserialize<List<LeafRow>>(row.LeavesJson, LeafJson) ?? [];
        return new EpochRecord(
            row.Number,
            DateTimeOffset.FromUnixTimeMilliseconds(row.ClosedAtUnixMs),
            row.LastSequence,
            row.SettlementSequence,
            [.. leaves.Select(l => new SettlementLeaf(l.I, EthAddress.Parse(l.A), l.C))],
            row.Root);
    }

    private sealed record LeafRow(
        [property: JsonPropertyName("i")] int I,
        [property: JsonPropertyName("a")] string A,
        [property: JsonPropertyName("c")] long C);
}
