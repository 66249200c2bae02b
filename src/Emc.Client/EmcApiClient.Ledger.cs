using System.Globalization;
using Emc.Core.Accounts;

namespace Emc.Client;

/// <summary>The ledger: balances, funding, journals, stake and settlement. Writes take an idempotency key: the same key again changes nothing.</summary>
public sealed partial class EmcApiClient
{
    /// <summary>An account's balance and escrows (<see cref="Me"/> or, for the operator, any account).</summary>
    public Task<BalanceView> GetBalanceAsync(string account, CancellationToken cancellationToken) =>
        GetAsync<BalanceView>($"api/v1/accounts/{Uri.EscapeDataString(account)}/balance", cancellationToken);

    /// <summary>Credits an account (operator only: the stand-in for a token on-ramp).</summary>
    public Task<BalanceView> FundAsync(string account, long amount, string idempotencyKey, CancellationToken cancellationToken) =>
        SendAsync<BalanceView>(HttpMethod.Post, $"api/v1/accounts/{Uri.EscapeDataString(account)}/fund", new AmountRequest(amount), cancellationToken, idempotencyKey);

    /// <summary>Ledger transactions of one account (or, with none, the caller's own; the operator's: all), after a sequence number.</summary>
    public Task<IReadOnlyList<LedgerTransactionView>> GetLedgerAsync(string? account, long after, int limit, CancellationToken cancellationToken) =>
        GetAsync<IReadOnlyList<LedgerTransactionView>>("api/v1/ledger" + Query(("account", account), ("after", after.ToString(CultureInfo.InvariantCulture)), ("limit", limit.ToString(CultureInfo.InvariantCulture))), cancellationToken);

    /// <summary>A node's stake.</summary>
    public Task<StakeView> GetStakeAsync(string node, CancellationToken cancellationToken) =>
        GetAsync<StakeView>($"api/v1/nodes/{Uri.EscapeDataString(node)}/stake", cancellationToken);

    /// <summary>Stakes for a node: "earnings" (its released balance) or "deposit" (new money, operator only).</summary>
    public Task<StakeView> StakeAsync(string node, long amount, string source, string idempotencyKey, CancellationToken cancellationToken) =>
        SendAsync<StakeView>(HttpMethod.Post, $"api/v1/nodes/{Uri.EscapeDataString(node)}/stake", new StakeRequest(amount, source), cancellationToken, idempotencyKey);

    /// <summary>Starts unstaking: the amount leaves the stake after the ledger's delay.</summary>
    public Task<StakeView> UnstakeAsync(string node, long amount, string idempotencyKey, CancellationToken cancellationToken) =>
        SendAsync<StakeView>(HttpMethod.Post, $"api/v1/nodes/{Uri.EscapeDataString(node)}/unstake", new AmountRequest(amount), cancellationToken, idempotencyKey);

    /// <summary>Closes the next settlement epoch (operator only).</summary>
    public Task<EpochView> SettleAsync(CancellationToken cancellationToken) =>
        SendAsync<EpochView>(HttpMethod.Post, "api/v1/settlement/epochs", null, cancellationToken);

    /// <summary>A closed epoch, or the latest with null.</summary>
    public Task<EpochView> GetEpochAsync(long? number, CancellationToken cancellationToken) =>
        GetAsync<EpochView>($"api/v1/settlement/epochs/{(number is { } n ? n.ToString(CultureInfo.InvariantCulture) : "latest")}", cancellationToken);

    /// <summary>A node's claim and Merkle proof for an epoch (the latest with null).</summary>
    public Task<ClaimProofView> GetClaimProofAsync(string node, long? epoch, CancellationToken cancellationToken) =>
        GetAsync<ClaimProofView>($"api/v1/settlement/proofs/{Uri.EscapeDataString(node)}" + Query(("epoch", epoch?.ToString(CultureInfo.InvariantCulture))), cancellationToken);
}
