using System.Collections.Concurrent;
using System.Data.Common;
using System.Globalization;
using Emc.Coordinator.Verification;
using Emc.Core.Identity;
using Emc.Ledger;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Emc.Coordinator.Ledger;

/// <summary>Where the usage journal lives and how often it is posted to the ledger.</summary>
public sealed class InferenceBillingOptions
{
    /// <summary>The journal's folder; null keeps it in a fresh temporary folder (tests that never restart).</summary>
    public string? Directory { get; set; }

    /// <summary>How often answered requests are posted to the ledger as payments. Default 1 s.</summary>
    public TimeSpan PostInterval { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>How long undeploying waits for requests still running before it refunds what is left. Default 30 s.</summary>
    public TimeSpan CloseWait { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>The tokens an external engine's request is reserved for when it names no <c>max_tokens</c>. Default 4,096.</summary>
    public long EngineTokenEstimate { get; set; } = 4_096;
}

/// <summary>A deployment's budget can pay for no more requests (or the deployment is being removed).</summary>
public sealed class BudgetSpentException(string message) : Exception(message);

/// <summary>
/// A request admitted against a paid deployment's budget: the most it may cost is reserved until it is
/// completed (charged) or cancelled. The default ticket belongs to a free deployment and does nothing.
/// </summary>
public readonly struct BillingTicket
{
    internal BillingTicket(InferenceBilling.Account account, long reserved)
    {
        Account = account;
        Reserved = reserved;
    }

    internal InferenceBilling.Account? Account { get; }

    internal long Reserved { get; }

    /// <summary>Whether the request is paid for (its deployment has a budget).</summary>
    public bool IsPaid => Account is not null;
}

/// <summary>
/// Inference money. A deployment with a budget has an escrow (<c>escrow:deployment:ID.CREATED</c>), opened
/// when it is deployed; each request is admitted only while the escrow, less what is charged but not yet
/// posted and what running requests may still cost, covers it; each answered request is written to the
/// <see cref="UsageJournal"/> before its answer leaves, and every <see cref="InferenceBillingOptions.PostInterval"/>
/// the journal's new records are cut into a batch and paid, per node, from the escrow into the node's audit
/// window, under keys <c>pay:inf:BATCH:NODE:ESCROW</c>: a coordinator that stops anywhere posts the same batch
/// under the same keys when it starts again, so nothing answered goes unpaid and nothing is paid twice.
/// A node proven to have answered wrongly loses its held payments for the deployment and is not paid for
/// its records not yet posted. Undeploying posts what is left and refunds the escrow.
/// </summary>
public sealed partial class InferenceBilling : BackgroundService
{
    /// <summary>How the keys of inference payments begin.</summary>
    public const string PaymentPrefix = "pay:inf:";

    private readonly LedgerService _ledger;
    private readonly InferenceAuditor _auditor;
    private readonly InferenceBillingOptions _options;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly SemaphoreSlim _posting = new(1, 1);
    private readonly ConcurrentDictionary<string, Account> _accounts = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, long> _unposted = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, string> _refunds = new(StringComparer.Ordinal);
    private readonly TaskCompletionSource _opened = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private UsageJournal? _journal;
    private long _unanswered;

    public InferenceBilling(LedgerService ledger, InferenceAuditor auditor, InferenceBillingOptions options, TimeProvider timeProvider, ILogger<InferenceBilling> logger)
    {
        _ledger = ledger;
        _auditor = auditor;
        _options = options;
        _time = timeProvider;
        _logger = logger;
    }

    /// <summary>Completes once the journal is open and its unfinished batch posted.</summary>
    public Task Opened => _opened.Task;

    private UsageJournal Journal => _journal ?? throw new InvalidOperationException("The usage journal is not open yet.");

    /// <summary>The escrow name of a deployment created at <paramref name="createdAt"/>: unique even when an id is deployed again.</summary>
    public static string EscrowName(string deploymentId, DateTimeOffset createdAt) =>
        $"{deploymentId}.{createdAt.ToUnixTimeMilliseconds().ToString(CultureInfo.InvariantCulture)}";

    /// <summary>The nodes that may serve a paid deployment: those with the minimum stake, so that a proven fault has something to slash.</summary>
    public Task<IReadOnlyList<string>> StakedNodesAsync(CancellationToken cancellationToken) => _ledger.StakedNodesAsync(cancellationToken);

    /// <summary>What one request of a tensor model may cost.</summary>
    public long RequestCharge => _ledger.Prices.InferenceCharge(1, 0);

    /// <summary>What one language-model request of up to <paramref name="tokens"/> tokens may cost.</summary>
    public long TokenCharge(long tokens) => _ledger.Prices.InferenceCharge(1, Math.Max(0, tokens));

    /// <summary>What an engine request with <paramref name="bodyBytes"/> bytes and <paramref name="maxTokens"/> asked for may cost (a prompt has at most one token per byte).</summary>
    public long EngineCharge(long bodyBytes, long? maxTokens) => TokenCharge(bodyBytes + (maxTokens ?? _options.EngineTokenEstimate));

    /// <summary>
    /// Reserves <paramref name="budget"/> units of <paramref name="owner"/>'s balance for a new deployment's escrow
    /// <paramref name="escrow"/>; throws <see cref="InsufficientBalanceException"/> when the balance is short.
    /// </summary>
    public Task OpenEscrowAsync(string escrow, string owner, long budget, string deploymentId, CancellationToken cancellationToken) =>
        _ledger.Ledger.OpenEscrowAsync($"escrow:{escrow}", owner, EscrowId.Deployment(escrow), budget, new TransactionReferences { JobId = deploymentId }, cancellationToken);

    /// <summary>Returns what is left in <paramref name="escrow"/> to its owner (a deployment that could not be stored, or was removed).</summary>
    public Task RefundAsync(string escrow, string deploymentId, string memo, CancellationToken cancellationToken) =>
        _ledger.Ledger.RefundAsync($"refund:{escrow}", EscrowId.Deployment(escrow), new TransactionReferences { JobId = deploymentId, Memo = memo }, cancellationToken);

    /// <summary>Starts charging requests of a deployment to <paramref name="escrow"/> (at deploy time, or when a restarted coordinator loads it).</summary>
    public async Task AttachAsync(string deploymentId, string escrow, CancellationToken cancellationToken)
    {
        var account = new Account(deploymentId, escrow);
        await RefreshAsync(account, cancellationToken);
        _accounts[deploymentId] = account;
    }

    /// <summary>Reads the escrow's balance from the ledger into <paramref name="account"/>.</summary>
    private async Task RefreshAsync(Account account, CancellationToken cancellationToken)
    {
        var balance = await _ledger.Ledger.GetBalanceAsync(AccountId.ForEscrow(EscrowId.Deployment(account.Escrow)), cancellationToken);
        lock (account)
        {
            account.Balance = balance;
        }
    }

    /// <summary>The deployment's budget as the API shows it: what is left (less charges not yet posted), or null for a free deployment.</summary>
    public long? Remaining(string deploymentId)
    {
        if (!_accounts.TryGetValue(deploymentId, out var account))
        {
            return null;
        }

        lock (account)
        {
            return Math.Max(0, account.Balance - _unposted.GetValueOrDefault(account.Escrow));
        }
    }

    /// <summary>
    /// Admits one request of <paramref name="deploymentId"/> that may cost up to <paramref name="charge"/>; throws
    /// <see cref="BudgetSpentException"/> when its budget cannot cover it. A free deployment's ticket does nothing.
    /// </summary>
    public BillingTicket Admit(string deploymentId, long charge)
    {
        if (_accounts.IsEmpty || !_accounts.TryGetValue(deploymentId, out var account))
        {
            return default;
        }

        lock (account)
        {
            if (account.Closed)
            {
                throw new BudgetSpentException($"the deployment '{deploymentId}' is being removed");
            }

            var left = account.Balance - _unposted.GetValueOrDefault(account.Escrow) - account.Reserved;
            if (left < charge)
            {
                throw new BudgetSpentException(
                    $"the budget of deployment '{deploymentId}' is spent: {LedgerUnits.Format(Math.Max(0, left))} EMC left, a request may cost {LedgerUnits.Format(charge)} EMC; top it up (emc model top-up) or undeploy it");
            }

            account.Reserved += charge;
            account.Running++;
            return new BillingTicket(account, charge);
        }
    }

    /// <summary>
    /// Charges an admitted request that <paramref name="node"/> answered with <paramref name="tokens"/> tokens:
    /// the journal holds it when this returns. Call it before the answer leaves the coordinator.
    /// </summary>
    public void Complete(BillingTicket ticket, string? node, long tokens)
    {
        if (ticket.Account is not { } account)
        {
            return;
        }

        if (node is null || !EthAddress.TryParse(node, out var address))
        {
            // The router always names the node that answered; without one there is no one to pay.
            Cancel(ticket);
            return;
        }

        // Counted before the record exists, so that a batch posting it never makes the count fall below what is owed.
        var charge = _ledger.Prices.InferenceCharge(1, Math.Max(0, tokens));
        _unposted.AddOrUpdate(account.Escrow, charge, (_, sum) => sum + charge);
        try
        {
            Journal.Append(account.Escrow, address.Value.ToString().ToLowerInvariant(), Math.Max(0, tokens));
        }
        catch
        {
            _unposted.AddOrUpdate(account.Escrow, 0, (_, sum) => sum - charge);
            throw;
        }
        finally
        {
            Release(account, ticket.Reserved);
        }
    }

    /// <summary>Lets go of an admitted request that was not answered.</summary>
    public void Cancel(BillingTicket ticket)
    {
        if (ticket.Account is { } account)
        {
            Release(account, ticket.Reserved);
            Interlocked.Increment(ref _unanswered);
        }
    }

    /// <summary>Paid requests admitted and then not answered (so not charged) since the start.</summary>
    public long Unanswered => Interlocked.Read(ref _unanswered);

    /// <summary>
    /// Adds <paramref name="amount"/> units from the owner's balance to the deployment's escrow; false (nothing
    /// moved) when the deployment has no budget or is being removed.
    /// </summary>
    public async Task<bool> TopUpAsync(string deploymentId, string key, long amount, CancellationToken cancellationToken)
    {
        if (!_accounts.TryGetValue(deploymentId, out var account))
        {
            return false;
        }

        lock (account)
        {
            if (account.Closed)
            {
                return false;
            }
        }

        await _ledger.Ledger.TopUpEscrowAsync(key, EscrowId.Deployment(account.Escrow), amount, new TransactionReferences { JobId = deploymentId }, cancellationToken);
        await RefreshAsync(account, cancellationToken);
        return true;
    }

    /// <summary>
    /// Stops charging a removed deployment: refuses new requests, waits (up to <see cref="InferenceBillingOptions.CloseWait"/>)
    /// for those running, posts every answered request, and refunds what is left of the escrow.
    /// </summary>
    public async Task CloseAsync(string deploymentId, CancellationToken cancellationToken)
    {
        if (!_accounts.TryGetValue(deploymentId, out var account))
        {
            return;
        }

        lock (account)
        {
            account.Closed = true;
        }

        var until = _time.GetUtcNow() + _options.CloseWait;
        while (Volatile.Read(ref account.Running) > 0 && _time.GetUtcNow() < until)
        {
            await Task.Delay(20, cancellationToken);
        }

        _accounts.TryRemove(KeyValuePair.Create(deploymentId, account));
        try
        {
            await PostAsync(cancellationToken);
            await RefundAsync(account.Escrow, deploymentId, "undeployed", cancellationToken);
        }
        catch (Exception ex) when (ex is LedgerException or IOException or DbException or DbUpdateException or InvalidOperationException)
        {
            // The control loop tries again every tick (and a restart refunds escrows of removed deployments).
            _refunds[account.Escrow] = deploymentId;
            Log.PostFailed(_logger, ex);
        }
    }

    /// <summary>
    /// Refunds every deployment escrow that holds money but belongs to none of <paramref name="liveEscrows"/>: a
    /// coordinator that stopped between removing a deployment and refunding it, or between opening an escrow
    /// and storing its deployment. Posts the journal first, so the refund comes after every payment.
    /// </summary>
    public async Task RefundOrphansAsync(IReadOnlySet<string> liveEscrows, CancellationToken cancellationToken)
    {
        await PostAsync(cancellationToken);
        foreach (var (account, balance) in await _ledger.Ledger.GetBalancesAsync(cancellationToken))
        {
            if (account.Escrow is { Kind: EscrowKind.Deployment } escrow && balance > 0 && !liveEscrows.Contains(escrow.Id))
            {
                await RefundAsync(escrow.Id, DeploymentOf(escrow.Id), "the deployment no longer exists", cancellationToken);
                Log.OrphanRefunded(_logger, escrow.Id, balance);
            }
        }
    }

    /// <summary>Cuts the records waiting into a batch and pays it (after the unfinished batch, if any). Safe to call at any time.</summary>
    public async Task PostAsync(CancellationToken cancellationToken)
    {
        await _posting.WaitAsync(cancellationToken);
        try
        {
            var journal = Journal;
            if (journal.Unfinished is { } unfinished)
            {
                await PayAsync(unfinished, cancellationToken);
                journal.Finish(unfinished);
            }

            if (journal.Cut() is { } batch)
            {
                await PayAsync(batch, cancellationToken);
                journal.Finish(batch);
            }
        }
        finally
        {
            _posting.Release();
        }
    }

    public override async Task StartAsync(CancellationToken cancellationToken)
    {
        await _ledger.Opened.WaitAsync(cancellationToken);
        var directory = _options.Directory ?? Path.Combine(Path.GetTempPath(), "emc-usage-" + Guid.NewGuid().ToString("N"));
        _journal = UsageJournal.Open(directory);
        foreach (var record in _journal.Pending)
        {
            var charge = _ledger.Prices.InferenceCharge(1, record.Tokens);
            _unposted.AddOrUpdate(record.Escrow, charge, (_, sum) => sum + charge);
        }

        if (_journal.Unfinished is { } unfinished)
        {
            foreach (var record in unfinished.Records)
            {
                var charge = _ledger.Prices.InferenceCharge(1, record.Tokens);
                _unposted.AddOrUpdate(record.Escrow, charge, (_, sum) => sum + charge);
            }

            Log.Resuming(_logger, unfinished.Number, unfinished.Records.Count);
        }

        await PostAsync(cancellationToken);
        _auditor.FaultProven += OnFaultProven;
        _opened.TrySetResult();
        await base.StartAsync(cancellationToken);
    }

    public override async Task StopAsync(CancellationToken cancellationToken)
    {
        _auditor.FaultProven -= OnFaultProven;
        await base.StopAsync(cancellationToken);
        try
        {
            await PostAsync(cancellationToken);
        }
        catch (Exception ex) when (ex is LedgerException or OperationCanceledException or ObjectDisposedException or InvalidOperationException)
        {
            // What is not posted now is posted at the next start.
            Log.PostFailed(_logger, ex);
        }
    }

    public override void Dispose()
    {
        _journal?.Dispose();
        _posting.Dispose();
        base.Dispose();
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(_options.PostInterval, _time);
        try
        {
            while (await timer.WaitForNextTickAsync(stoppingToken))
            {
                try
                {
                    await PostAsync(stoppingToken);
                    foreach (var (escrow, deploymentId) in _refunds)
                    {
                        await RefundAsync(escrow, deploymentId, "undeployed", stoppingToken);
                        _refunds.TryRemove(escrow, out _);
                    }
                }
                catch (Exception ex) when (ex is LedgerException or InvalidOperationException or IOException or DbException or DbUpdateException)
                {
                    Log.PostFailed(_logger, ex);
                }
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }
    }

    private static string DeploymentOf(string escrow)
    {
        var dot = escrow.LastIndexOf('.');
        return dot > 0 ? escrow[..dot] : escrow;
    }

    private static void Release(Account account, long reserved)
    {
        lock (account)
        {
            account.Reserved -= reserved;
            account.Running--;
        }
    }

    /// <summary>Pays one batch: per escrow and node, the requests and tokens it answered, unless the node was convicted for that escrow.</summary>
    private async Task PayAsync(UsageBatch batch, CancellationToken cancellationToken)
    {
        var ledger = _ledger.Ledger;
        var prices = _ledger.Prices;
        var groups = batch.Records
            .GroupBy(r => (r.Escrow, r.Node))
            .OrderBy(g => g.Key.Escrow, StringComparer.Ordinal)
            .ThenBy(g => g.Key.Node, StringComparer.Ordinal);
        var charged = new Dictionary<string, long>(StringComparer.Ordinal);
        foreach (var group in groups)
        {
            var (escrow, node) = group.Key;
            charged[escrow] = charged.GetValueOrDefault(escrow) + group.Sum(r => prices.InferenceCharge(1, r.Tokens));
            if (batch.Convicted.Contains((escrow, node)))
            {
                Log.Withheld(_logger, batch.Number, node, escrow, group.Count());
                continue;
            }

            var requests = group.LongCount();
            var tokens = group.Sum(r => r.Tokens);
            var charge = prices.InferenceCharge(requests, tokens);
            if (charge <= 0 || !EthAddress.TryParse(node, out var address))
            {
                continue;
            }

            var key = $"{PaymentPrefix}{batch.Number.ToString(CultureInfo.InvariantCulture)}:{node}:{escrow}";
            try
            {
                var payment = await ledger.PayAsync(
                    key,
                    EscrowId.Deployment(escrow),
                    address.Value,
                    charge,
                    prices.FeeBasisPoints,
                    new TransactionReferences
                    {
                        JobId = DeploymentOf(escrow),
                        Round = batch.Number,
                        Memo = string.Create(CultureInfo.InvariantCulture, $"{requests} requests, {tokens} tokens"),
                    },
                    cancellationToken);
                if (payment.Shortfall > 0)
                {
                    Log.Shortfall(_logger, batch.Number, node, escrow, payment.Shortfall);
                }
            }
            catch (InsufficientBalanceException)
            {
                Log.Shortfall(_logger, batch.Number, node, escrow, charge);
            }
            catch (IdempotencyConflictException ex)
            {
                // Posted before under other prices (the configuration changed across a restart): it stands.
                Log.Conflict(_logger, key, ex.Message);
            }
        }

        foreach (var (escrow, sum) in charged)
        {
            var balance = await ledger.GetBalanceAsync(AccountId.ForEscrow(EscrowId.Deployment(escrow)), cancellationToken);
            var account = _accounts.TryGetValue(DeploymentOf(escrow), out var found) && found.Escrow == escrow ? found : null;
            if (account is null)
            {
                _unposted.AddOrUpdate(escrow, 0, (_, left) => left - sum);
                continue;
            }

            lock (account)
            {
                _unposted.AddOrUpdate(escrow, 0, (_, left) => left - sum);
                account.Balance = balance;
            }
        }
    }

    /// <summary>A proven fault: the node's records not yet posted go unpaid, and its held payments for the deployment are voided.</summary>
    private void OnFaultProven(AuditFinding finding)
    {
        if (!_accounts.TryGetValue(finding.DeploymentId, out var account) || !EthAddress.TryParse(finding.Node, out var address))
        {
            return;
        }

        _ = VoidAsync(account, address.Value);
    }

    private async Task VoidAsync(Account account, EthAddress node)
    {
        var nodeText = node.ToString().ToLowerInvariant();
        try
        {
            await _posting.WaitAsync();
            try
            {
                Journal.Convict(account.Escrow, nodeText);
            }
            finally
            {
                _posting.Release();
            }

            var escrow = EscrowId.Deployment(account.Escrow);
            foreach (var payment in _ledger.Ledger.GetHeldPayments())
            {
                if (payment.Key.StartsWith(PaymentPrefix, StringComparison.Ordinal) && payment.Escrow == escrow && payment.Node == node)
                {
                    try
                    {
                        bool closed;
                        lock (account)
                        {
                            closed = account.Closed;
                        }

                        await _ledger.Ledger.VoidAsync($"void:{payment.Key}", payment.Key, closed ? VoidDestination.Owner : VoidDestination.Escrow, new TransactionReferences { JobId = account.DeploymentId, Memo = "a proven wrong answer" }, CancellationToken.None);
                        Log.Voided(_logger, payment.Key, payment.Net + payment.Fee);
                    }
                    catch (PaymentStateException)
                    {
                        // Released or voided meanwhile.
                    }
                }
            }

            await RefreshAsync(account, CancellationToken.None);
        }
        catch (Exception ex) when (ex is LedgerException or InvalidOperationException or IOException or ObjectDisposedException)
        {
            Log.VoidFailed(_logger, account.DeploymentId, nodeText, ex);
        }
    }

    /// <summary>A paid deployment's money as requests see it.</summary>
    internal sealed class Account(string deploymentId, string escrow)
    {
        public string DeploymentId { get; } = deploymentId;

        public string Escrow { get; } = escrow;

        /// <summary>The escrow's balance in the ledger, as last read.</summary>
        public long Balance { get; set; }

        /// <summary>What running requests may still cost.</summary>
        public long Reserved { get; set; }

        /// <summary>Requests admitted and not yet completed or cancelled.</summary>
        public int Running;

        public bool Closed { get; set; }
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 1, Level = LogLevel.Warning, Message = "Usage batch {Batch}: node {Node} is not paid for {Count} answers on {Escrow}: it was proven to answer wrongly there.")]
        public static partial void Withheld(ILogger logger, long batch, string node, string escrow, int count);

        [LoggerMessage(EventId = 2, Level = LogLevel.Warning, Message = "Usage batch {Batch}: the escrow {Escrow} could not pay node {Node} {Units} units of its answers: it ran out.")]
        public static partial void Shortfall(ILogger logger, long batch, string node, string escrow, long units);

        [LoggerMessage(EventId = 3, Level = LogLevel.Warning, Message = "Inference payment {Key} was posted before with other amounts; it stands: {Problem}")]
        public static partial void Conflict(ILogger logger, string key, string problem);

        [LoggerMessage(EventId = 4, Level = LogLevel.Error, Message = "Posting inference usage to the ledger failed; it is tried again.")]
        public static partial void PostFailed(ILogger logger, Exception exception);

        [LoggerMessage(EventId = 5, Level = LogLevel.Information, Message = "Usage batch {Batch} ({Count} answers) was cut before the coordinator stopped; posting it again under the same keys.")]
        public static partial void Resuming(ILogger logger, long batch, int count);

        [LoggerMessage(EventId = 6, Level = LogLevel.Warning, Message = "Voided inference payment {Key} ({Units} units) for a proven wrong answer.")]
        public static partial void Voided(ILogger logger, string key, long units);

        [LoggerMessage(EventId = 7, Level = LogLevel.Error, Message = "Voiding the payments of node {Node} on deployment {Deployment} failed.")]
        public static partial void VoidFailed(ILogger logger, string deployment, string node, Exception exception);

        [LoggerMessage(EventId = 8, Level = LogLevel.Information, Message = "Refunded the escrow {Escrow} ({Units} units): its deployment no longer exists.")]
        public static partial void OrphanRefunded(ILogger logger, string escrow, long units);
    }
}
