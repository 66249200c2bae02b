using Emc.Coordinator.Persistence;
using Emc.Core.Identity;
using Emc.Core.Pricing;
using Emc.Ledger;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Emc.Coordinator.Ledger;

/// <summary>
/// The coordinator's ledger: a <see cref="GeneralLedger"/> over the database (<see cref="EfLedgerStore"/>),
/// opened at start by replaying the journal, plus the money the coordinator moves on its own: it releases
/// held payments whose audit window has closed, and completes unstakes whose delay has passed. Every write
/// carries an idempotency key derived from what it is about, so a coordinator that crashes and repeats a
/// write changes nothing the second time.
/// </summary>
public sealed partial class LedgerService : BackgroundService
{
    private readonly IDbContextFactory<EmcDbContext> _factory;
    private readonly LedgerOptions _ledgerOptions;
    private readonly PaymentOptions _options;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly TaskCompletionSource<GeneralLedger> _opened = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private GeneralLedger? _ledger;

    public LedgerService(IDbContextFactory<EmcDbContext> factory, LedgerOptions ledgerOptions, PaymentOptions options, PriceTable prices, TimeProvider timeProvider, ILogger<LedgerService> logger)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(prices);
        var errors = options.Validate().Concat(prices.Validate()).ToList();
        if (errors.Count > 0)
        {
            throw new ArgumentException(string.Join("; ", errors));
        }

        _factory = factory;
        _ledgerOptions = ledgerOptions;
        _options = options;
        Prices = prices;
        _time = timeProvider;
        _logger = logger;
    }

    /// <summary>How the keys of training rounds' payments begin: <c>pay:train-N:rROUND:NODE</c>.</summary>
    public const string TrainingPaymentPrefix = "pay:train-";

    /// <summary>The key of the payment to <paramref name="node"/> for <paramref name="round"/> of training job <paramref name="jobId"/>.</summary>
    public static string TrainingPaymentKey(string jobId, long round, string node) =>
        $"pay:{jobId}:r{round.ToString(System.Globalization.CultureInfo.InvariantCulture)}:{node.ToLowerInvariant()}";

    /// <summary>The prices of work and the stake rules.</summary>
    public PriceTable Prices { get; }

    /// <summary>The ledger; throws before the service has started.</summary>
    public GeneralLedger Ledger => _ledger ?? throw new InvalidOperationException("The ledger is not open yet.");

    /// <summary>Completes with the ledger once it is open.</summary>
    public Task<GeneralLedger> Opened => _opened.Task;

    public override async Task StartAsync(CancellationToken cancellationToken)
    {
        _ledger = await GeneralLedger.OpenAsync(new EfLedgerStore(_factory), _ledgerOptions, _time, cancellationToken);
        _opened.TrySetResult(_ledger);
        await base.StartAsync(cancellationToken);
    }

    public override void Dispose()
    {
        _ledger?.Dispose();
        base.Dispose();
    }

    /// <summary>The node's stake: staked, on its way out, and whether that is enough for paid work.</summary>
    public async Task<(long Staked, long Unstaking, bool Eligible)> StakeOfAsync(EthAddress node, CancellationToken cancellationToken)
    {
        var staked = await Ledger.GetBalanceAsync(AccountId.Stake(node), cancellationToken);
        var unstaking = await Ledger.GetBalanceAsync(AccountId.Unstaking(node), cancellationToken);
        return (staked, unstaking, staked >= Prices.MinimumStake);
    }

    /// <summary>The nodes whose stake reaches the minimum paid work needs, as lower-case addresses.</summary>
    public async Task<IReadOnlyList<string>> StakedNodesAsync(CancellationToken cancellationToken)
    {
        var nodes = new List<string>();
        foreach (var (account, balance) in await Ledger.GetBalancesAsync(cancellationToken))
        {
            if (account.Kind == AccountKind.Stake && balance >= Prices.MinimumStake && account.Address is { } address)
            {
                nodes.Add(address.ToString().ToLowerInvariant());
            }
        }

        nodes.Sort(StringComparer.Ordinal);
        return nodes;
    }

    /// <summary>Releases every held payment whose audit window has closed and completes every due unstake; returns how many writes it made.</summary>
    public async Task<int> SweepAsync(CancellationToken cancellationToken)
    {
        var ledger = Ledger;
        var now = _time.GetUtcNow();
        var writes = 0;
        foreach (var payment in ledger.GetHeldPayments())
        {
            var window = payment.Key.StartsWith(TrainingPaymentPrefix, StringComparison.Ordinal) ? _options.TrainingAuditWindow : _options.AuditWindow;
            if (now - payment.PaidAt < window)
            {
                continue;
            }

            try
            {
                await ledger.ReleaseAsync($"release:{payment.Key}", payment.Key, null, cancellationToken);
                writes++;
            }
            catch (PaymentStateException)
            {
                // Voided or released meanwhile.
            }
        }

        foreach (var node in ledger.GetNodesUnstaking())
        {
            var due = ledger.GetPendingUnstakes(node).Where(u => u.DueAt <= now).ToList();
            if (due.Count == 0)
            {
                continue;
            }

            try
            {
                await ledger.CompleteUnstakeAsync($"unstake-done:{node}:{due[^1].Sequence}", node, null, cancellationToken);
                writes++;
            }
            catch (UnstakeNotDueException)
            {
                // A clock between the two reads.
            }
        }

        return writes;
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(_options.Interval, _time);
        try
        {
            while (await timer.WaitForNextTickAsync(stoppingToken))
            {
                try
                {
                    await SweepAsync(stoppingToken);
                }
                catch (Exception ex) when (ex is LedgerException or DbUpdateException or InvalidOperationException)
                {
                    Log.SweepFailed(_logger, ex);
                }
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 1, Level = LogLevel.Warning, Message = "Releasing held payments or completing unstakes failed; the next sweep tries again")]
        public static partial void SweepFailed(ILogger logger, Exception exception);
    }
}
