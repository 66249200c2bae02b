using System.Globalization;
using System.Text.Json;
using Emc.Coordinator.Accounts;
using Emc.Core;
using Emc.Core.Accounts;
using Emc.Core.Identity;
using Emc.Ledger;
using Emc.Ledger.Settlement;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Routing;

namespace Emc.Coordinator.Ledger;

/// <summary>
/// The ledger over REST (docs/ledger.md):
/// GET /api/v1/accounts/{account}/balance; POST /api/v1/accounts/{account}/fund (operator);
/// GET /api/v1/ledger[?account=A&amp;after=S&amp;limit=N];
/// GET /api/v1/nodes/{address}/stake; POST /api/v1/nodes/{address}/stake and /unstake (the node itself, by
/// its signature, or the operator); POST /api/v1/settlement/epochs (operator: close the next epoch);
/// GET /api/v1/settlement/epochs/{number|latest}; GET /api/v1/settlement/proofs/{address}[?epoch=E].
/// Every write takes the client's <c>Idempotency-Key</c> header: the same key again changes nothing.
/// </summary>
internal static class LedgerApi
{
    private const string KeyHeader = "Idempotency-Key";

    public static RouteGroupBuilder MapLedgerApi(this RouteGroupBuilder api)
    {
        api.MapGet("/accounts/{account}/balance", BalanceAsync).RequireAccount();
        api.MapPost("/accounts/{account}/fund", FundAsync).RequireOperator();
        api.MapGet("/ledger", JournalAsync).RequireAccount();
        api.MapGet("/nodes/{address}/stake", StakeAsync).RequireAccount();
        api.MapPost("/nodes/{address}/stake", AddStakeAsync).RequireAuthorization(AccessPolicies.NodeOrAccount);
        api.MapPost("/nodes/{address}/unstake", UnstakeAsync).RequireAuthorization(AccessPolicies.NodeOrAccount);
        api.MapPost("/deployments/{id}/budget", TopUpAsync).RequireAccount();
        api.MapPost("/settlement/epochs", CloseEpochAsync).RequireOperator();
        api.MapGet("/settlement/epochs/{number}", EpochAsync).RequireAccount();
        api.MapGet("/settlement/proofs/{address}", ProofAsync).RequireAccount();
        return api;
    }

    private static async Task<IResult> BalanceAsync(LedgerService service, AccountStore accounts, Caller caller, string account, CancellationToken cancellationToken)
    {
        var id = account == "me" ? caller.AccountId : account;
        if (!caller.MayAccess(id))
        {
            return AccessProblems.Forbidden(caller, $"the balance of account '{id}'");
        }

        if (await accounts.GetAccountAsync(id, cancellationToken) is null)
        {
            return Problem(404, "No such account", $"There is no account '{id}'.");
        }

        if (!AccountId.TryParse("user:" + id, out var user))
        {
            return Problem(400, "Invalid account", $"'{id}' is not an account id.");
        }

        return Results.Ok(await BalanceOfAsync(service.Ledger, user, id, cancellationToken));
    }

    private static async Task<IResult> FundAsync(LedgerService service, AccountStore accounts, Caller caller, string account, HttpRequest request, CancellationToken cancellationToken)
    {
        var id = account == "me" ? caller.AccountId : account;
        if (await accounts.GetAccountAsync(id, cancellationToken) is null)
        {
            return Problem(404, "No such account", $"There is no account '{id}' to fund; create it first (emc account create).");
        }

        var (body, key, problem) = await ReadWriteAsync<AmountRequest>(request, r => r.Amount, cancellationToken);
        if (problem is not null)
        {
            return problem;
        }

        var amount = body!.Amount;
        if (!AccountId.TryParse("user:" + id, out var user))
        {
            return Problem(400, "Invalid account", $"'{id}' is not an account id.");
        }

        return await WriteAsync(async () =>
        {
            await service.Ledger.FundAsync($"api:{caller.AccountId}:{key}", id, amount, new TransactionReferences { Memo = $"funded by {caller.AccountId}" }, cancellationToken);
            return Results.Ok(await BalanceOfAsync(service.Ledger, user, id, cancellationToken));
        });
    }

    /// <summary>Adds to a paid deployment's budget from the account that opened it; answers the deployment as it is then.</summary>
    private static async Task<IResult> TopUpAsync(InferenceBilling billing, Inference.DeploymentService deployments, Caller caller, string id, HttpRequest request, CancellationToken cancellationToken)
    {
        if (await deployments.GetAsync(id, cancellationToken) is not { } view)
        {
            return Problem(404, "Deployment not found", $"No deployment '{id}'.");
        }

        if (!caller.MayAccess(view.Owner))
        {
            return AccessProblems.Forbidden(caller, $"the deployment '{id}'");
        }

        if (view.Spec.Escrow is null)
        {
            return Problem(409, "No budget", $"The deployment '{id}' is free (the operator's, deployed without a budget); there is nothing to top up.");
        }

        var (body, key, problem) = await ReadWriteAsync<AmountRequest>(request, r => r.Amount, cancellationToken);
        if (problem is not null)
        {
            return problem;
        }

        return await WriteAsync(async () =>
            await billing.TopUpAsync(id, $"api:{caller.AccountId}:{key}", body!.Amount, cancellationToken)
                && await deployments.GetAsync(id, cancellationToken) is { } topped
                    ? Results.Ok(topped)
                    : Problem(409, "Deployment going away", $"The deployment '{id}' is being removed; its budget is refunded, not topped up."));
    }

    private static async Task<IResult> JournalAsync(LedgerService service, Caller caller, string? account, long? after, int? limit, CancellationToken cancellationToken)
    {
        var take = Math.Clamp(limit ?? 100, 1, GeneralLedger.MaxPageSize);
        var from = Math.Max(0, after ?? 0);
        IReadOnlyList<LedgerTransaction> page;
        if (string.IsNullOrEmpty(account))
        {
            if (!caller.IsOperator)
            {
                // A user's own journal: its account's transactions.
                page = await service.Ledger.GetJournalAsync(AccountId.User(caller.AccountId), from, take, cancellationToken);
                return Results.Ok(page.Select(ToView).ToList());
            }

            page = await service.Ledger.GetTransactionsAsync(from, take, cancellationToken);
            return Results.Ok(page.Select(ToView).ToList());
        }

        if (!AccountId.TryParse(account, out var id))
        {
            return Problem(400, "Invalid account", $"'{account}' is not a ledger account: user:ID, node:0xADDR, held:0xADDR, stake:0xADDR, unstaking:0xADDR, escrow:job:ID, escrow:deployment:ID, treasury, slashed, settled or external.");
        }

        var owner = id.Kind switch
        {
            AccountKind.User => id.UserId,
            AccountKind.Escrow => service.Ledger.GetEscrowOwner(id.Escrow!),
            _ => null,
        };
        if (!caller.IsOperator && owner != caller.AccountId)
        {
            return AccessProblems.Forbidden(caller, $"the journal of {id}");
        }

        page = await service.Ledger.GetJournalAsync(id, from, take, cancellationToken);
        return Results.Ok(page.Select(ToView).ToList());
    }

    private static async Task<IResult> StakeAsync(LedgerService service, string address, CancellationToken cancellationToken)
    {
        if (!EthAddress.TryParse(address, out var node))
        {
            return Problem(400, "Invalid address", $"'{address}' is not a node address (0x and 40 hex digits).");
        }

        return Results.Ok(await StakeOfAsync(service, node.Value, cancellationToken));
    }

    private static async Task<IResult> AddStakeAsync(LedgerService service, HttpContext context, string address, CancellationToken cancellationToken)
    {
        if (!EthAddress.TryParse(address, out var parsed))
        {
            return Problem(400, "Invalid address", $"'{address}' is not a node address (0x and 40 hex digits).");
        }

        var node = parsed.Value;
        var (body, key, problem) = await ReadWriteAsync<StakeRequest>(context.Request, r => r.Amount, cancellationToken);
        if (problem is not null)
        {
            return problem;
        }

        var source = body!.Source ?? "earnings";
        if (source is not ("earnings" or "deposit"))
        {
            return Problem(400, "Invalid stake", $"source must be \"earnings\" (the node's released balance) or \"deposit\" (new money through the operator), not \"{source}\".");
        }

        // Earnings are the node's to stake (its own signature) or the operator's; a deposit is new money, the operator's on-ramp.
        var who = Who(context, node, allowNode: source == "earnings");
        if (who is IResult refused)
        {
            return refused;
        }

        return await WriteAsync(async () =>
        {
            var ledgerKey = $"api:{who}:{key}";
            if (source == "deposit")
            {
                await service.Ledger.StakeFromExternalAsync(ledgerKey, node, body.Amount, null, cancellationToken);
            }
            else
            {
                await service.Ledger.StakeAsync(ledgerKey, node, body.Amount, null, cancellationToken);
            }

            return Results.Ok(await StakeOfAsync(service, node, cancellationToken));
        });
    }

    private static async Task<IResult> UnstakeAsync(LedgerService service, HttpContext context, string address, CancellationToken cancellationToken)
    {
        if (!EthAddress.TryParse(address, out var parsed))
        {
            return Problem(400, "Invalid address", $"'{address}' is not a node address (0x and 40 hex digits).");
        }

        var node = parsed.Value;
        var (body, key, problem) = await ReadWriteAsync<AmountRequest>(context.Request, r => r.Amount, cancellationToken);
        if (problem is not null)
        {
            return problem;
        }

        var who = Who(context, node, allowNode: true);
        if (who is IResult refused)
        {
            return refused;
        }

        return await WriteAsync(async () =>
        {
            await service.Ledger.RequestUnstakeAsync($"api:{who}:{key}", node, body!.Amount, null, cancellationToken);
            return Results.Ok(await StakeOfAsync(service, node, cancellationToken));
        });
    }

    private static async Task<IResult> CloseEpochAsync(LedgerService service, CancellationToken cancellationToken)
    {
        var latest = await service.Ledger.GetLatestEpochAsync(cancellationToken);
        return await WriteAsync(async () => Results.Ok(ToView(await service.Ledger.CloseEpochAsync((latest?.Number ?? 0) + 1, cancellationToken))));
    }

    private static async Task<IResult> EpochAsync(LedgerService service, string number, CancellationToken cancellationToken)
    {
        EpochRecord? epoch;
        if (number == "latest")
        {
            epoch = await service.Ledger.GetLatestEpochAsync(cancellationToken);
        }
        else if (long.TryParse(number, NumberStyles.None, CultureInfo.InvariantCulture, out var n) && n > 0)
        {
            epoch = await service.Ledger.GetEpochAsync(n, cancellationToken);
        }
        else
        {
            return Problem(400, "Invalid epoch", $"'{number}' is not an epoch: a number from 1, or \"latest\".");
        }

        return epoch is null ? Problem(404, "No such epoch", number == "latest" ? "No epoch has been closed yet." : $"Epoch {number} is not closed.") : Results.Ok(ToView(epoch));
    }

    private static async Task<IResult> ProofAsync(LedgerService service, string address, long? epoch, CancellationToken cancellationToken)
    {
        if (!EthAddress.TryParse(address, out var node))
        {
            return Problem(400, "Invalid address", $"'{address}' is not a node address (0x and 40 hex digits).");
        }

        if (epoch is < 1)
        {
            return Problem(400, "Invalid epoch", "epoch must be 1 or more.");
        }

        var proof = await service.Ledger.GetClaimProofAsync(node.Value, epoch, cancellationToken);
        return proof is null
            ? Problem(404, "No claim", epoch is null ? $"{node} has nothing settled in the latest epoch (or no epoch is closed)." : $"{node} has nothing settled in epoch {epoch} (or it is not closed).")
            : Results.Ok(new ClaimProofView(proof.Epoch, proof.Index, proof.Account.ToString(), proof.Amount, [.. proof.Proof], proof.Root, proof.Leaf));
    }

    /// <summary>Who may act on <paramref name="node"/>'s stake: the node itself by its signature (when allowed) or the operator; the string names them for the idempotency key.</summary>
    private static object Who(HttpContext context, EthAddress node, bool allowNode)
    {
        if (context.GetNodeCaller() is { } signer)
        {
            return allowNode && string.Equals(signer.Address, node.ToString(), StringComparison.OrdinalIgnoreCase)
                ? $"node-{node}"
                : Problem(403, "Forbidden", allowNode ? $"node {signer.Address} may act only on its own stake, not {node}'s." : "only the operator may deposit new stake; a node stakes its earnings (source \"earnings\").");
        }

        var caller = context.GetCaller();
        return caller is { IsOperator: true }
            ? caller.AccountId
            : Problem(403, "Forbidden", $"only node {node} itself (by its signature) or the operator may change its stake; the key given is the account '{caller?.AccountId}''s.");
    }

    private static async Task<(T? Body, string Key, IResult? Problem)> ReadWriteAsync<T>(HttpRequest request, Func<T, long> amount, CancellationToken cancellationToken)
        where T : class
    {
        var key = request.Headers[KeyHeader].ToString();
        if (key.Length is 0 or > 128 || key.Any(char.IsControl))
        {
            return (null, "", Problem(400, "Missing idempotency key", $"Every ledger write needs an {KeyHeader} header of 1 to 128 printable characters (a new random one per operation; repeat it to retry safely)."));
        }

        T? body;
        try
        {
            body = await request.ReadFromJsonAsync<T>(EmcJson.Options, cancellationToken);
        }
        catch (Exception ex) when (ex is JsonException or InvalidOperationException or BadHttpRequestException)
        {
            return (null, key, Problem(400, "Malformed request", $"The body must be JSON like {{\"amount\": 1000000}}: {ex.Message}"));
        }

        if (body is null || amount(body) <= 0)
        {
            return (null, key, Problem(400, "Invalid amount", "amount must be a whole number of ledger units above 0 (1 EMC = 1000000 units)."));
        }

        return (body, key, null);
    }

    private static async Task<IResult> WriteAsync(Func<Task<IResult>> write)
    {
        try
        {
            return await write();
        }
        catch (InsufficientBalanceException ex)
        {
            return Problem(402, "Insufficient balance", ex.Message);
        }
        catch (IdempotencyConflictException ex)
        {
            return Problem(409, "Idempotency key reused", ex.Message);
        }
        catch (UnstakeNotDueException ex)
        {
            return Problem(409, "Unstake not due", ex.Message);
        }
        catch (Exception ex) when (ex is LedgerException or ArgumentException)
        {
            return Problem(400, "Refused by the ledger", ex.Message);
        }
    }

    private static async Task<BalanceView> BalanceOfAsync(GeneralLedger ledger, AccountId user, string id, CancellationToken cancellationToken)
    {
        var balances = await ledger.GetBalancesAsync(cancellationToken);
        var escrows = balances
            .Where(b => b.Key.Kind == AccountKind.Escrow && b.Value != 0 && ledger.GetEscrowOwner(b.Key.Escrow!) == id)
            .Select(b => new EscrowBalance(b.Key.Escrow!.ToString(), b.Value))
            .OrderBy(e => e.Escrow, StringComparer.Ordinal)
            .ToList();
        return new BalanceView(id, balances.GetValueOrDefault(user), escrows);
    }

    private static async Task<StakeView> StakeOfAsync(LedgerService service, EthAddress node, CancellationToken cancellationToken)
    {
        var ledger = service.Ledger;
        var (staked, unstaking, eligible) = await service.StakeOfAsync(node, cancellationToken);
        return new StakeView(
            node.ToString(),
            staked,
            unstaking,
            [.. ledger.GetPendingUnstakes(node).Select(u => new UnstakeView(u.Amount, u.DueAt))],
            service.Prices.MinimumStake,
            eligible,
            await ledger.GetBalanceAsync(AccountId.Node(node), cancellationToken),
            await ledger.GetBalanceAsync(AccountId.Held(node), cancellationToken));
    }

    private static LedgerTransactionView ToView(LedgerTransaction t) =>
        new(t.Sequence, t.IdempotencyKey, t.Kind.ToString(), t.Time, [.. t.Entries.Select(e => new LedgerEntryView(e.Account.ToString(), e.Amount))], t.References.JobId, t.References.Round, t.References.Memo);

    private static EpochView ToView(EpochRecord epoch) =>
        new(epoch.Number, epoch.ClosedAt, epoch.Root, epoch.Leaves.Length, epoch.TotalSettled, epoch.LastSequence);

    private static ProblemHttpResult Problem(int status, string title, string detail) =>
        TypedResults.Problem(title: title, detail: detail, statusCode: status);
}
