namespace Emc.Coordinator.Ledger;

/// <summary>One posted ledger transaction (table ledger_transactions); its entries are <see cref="LedgerEntryRow"/>s.</summary>
public sealed class LedgerTransactionRow
{
    public long Sequence { get; set; }

    public required string IdempotencyKey { get; set; }

    public required string Kind { get; set; }

    public long TimeUnixMs { get; set; }

    public required string RequestDigest { get; set; }

    public string? JobId { get; set; }

    public long? Round { get; set; }

    public string? RequestId { get; set; }

    public string? Memo { get; set; }

    public string? SubjectEscrow { get; set; }

    public string? SubjectNode { get; set; }

    public string? SubjectPayment { get; set; }

    public long? SubjectDueAtUnixMs { get; set; }

    public long? SubjectEpoch { get; set; }
}

/// <summary>One entry of a transaction (table ledger_entries).</summary>
public sealed class LedgerEntryRow
{
    public long Sequence { get; set; }

    public required string Account { get; set; }

    public long Amount { get; set; }
}

/// <summary>The balance of one account (table ledger_balances), kept in the same database transaction as its entries.</summary>
public sealed class LedgerBalanceRow
{
    public required string Account { get; set; }

    public long Balance { get; set; }
}

/// <summary>A closed settlement epoch (table ledger_epochs). Its leaves are JSON: [{"i":0,"a":"0x…","c":123}, …].</summary>
public sealed class LedgerEpochRow
{
    public long Number { get; set; }

    public long ClosedAtUnixMs { get; set; }

    public long LastSequence { get; set; }

    public long? SettlementSequence { get; set; }

    public required string Root { get; set; }

    public required string LeavesJson { get; set; }
}
