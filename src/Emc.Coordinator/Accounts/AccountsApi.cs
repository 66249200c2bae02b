using System.Text.Json;
using Emc.Core;
using Emc.Core.Accounts;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;

namespace Emc.Coordinator.Accounts;

/// <summary>
/// Accounts and keys: POST /api/v1/accounts (operator: a user account and its first key),
/// GET /api/v1/accounts/{account}, GET and POST /api/v1/accounts/{account}/keys,
/// DELETE /api/v1/accounts/{account}/keys/{id} (revoke). {account} is "me" or an id; a user may name
/// only its own account, the operator any.
/// </summary>
internal static class AccountsApi
{
    public static RouteGroupBuilder MapAccountsApi(this RouteGroupBuilder api)
    {
        api.MapPost("/accounts", CreateAsync).RequireOperator();
        api.MapGet("/accounts/{account}", GetAsync).RequireAccount();
        api.MapGet("/accounts/{account}/keys", ListKeysAsync).RequireAccount();
        api.MapPost("/accounts/{account}/keys", CreateKeyAsync).RequireAccount();
        api.MapDelete("/accounts/{account}/keys/{id}", RevokeAsync).RequireAccount();
        return api;
    }

    private static async Task<IResult> CreateAsync(AccountStore accounts, HttpRequest request, CancellationToken cancellationToken)
    {
        AccountRequest? body;
        try
        {
            body = await request.ReadFromJsonAsync<AccountRequest>(EmcJson.Options, cancellationToken);
        }
        catch (Exception ex) when (ex is JsonException or InvalidOperationException or BadHttpRequestException)
        {
            return Problem(400, "Malformed account", $"The body must be {{\"name\": NAME}}: {ex.Message}");
        }

        var (created, error, conflict) = await accounts.CreateUserAsync(body?.Name, cancellationToken);
        return created is null
            ? Problem(conflict ? 409 : 400, conflict ? "Account exists" : "Invalid account", error!)
            : Results.Created($"/api/v1/accounts/{created.Account.Id}", created);
    }

    private static async Task<IResult> GetAsync(AccountStore accounts, Caller caller, string account, CancellationToken cancellationToken)
    {
        if (Refuse(caller, account) is { } refused)
        {
            return refused;
        }

        var id = Id(caller, account);
        return await accounts.GetAccountAsync(id, cancellationToken) is { } view ? Results.Ok(view) : NoAccount(id);
    }

    private static async Task<IResult> ListKeysAsync(AccountStore accounts, Caller caller, string account, CancellationToken cancellationToken)
    {
        if (Refuse(caller, account) is { } refused)
        {
            return refused;
        }

        var id = Id(caller, account);
        return await accounts.GetAccountAsync(id, cancellationToken) is null
            ? NoAccount(id)
            : Results.Ok(await accounts.ListKeysAsync(id, cancellationToken));
    }

    private static async Task<IResult> CreateKeyAsync(AccountStore accounts, Caller caller, string account, HttpRequest request, CancellationToken cancellationToken)
    {
        if (Refuse(caller, account) is { } refused)
        {
            return refused;
        }

        var name = "";
        if (request.ContentLength is not 0 && request.HasJsonContentType())
        {
            try
            {
                name = (await request.ReadFromJsonAsync<ApiKeyRequest>(EmcJson.Options, cancellationToken))?.Name ?? "";
            }
            catch (Exception ex) when (ex is JsonException or InvalidOperationException or BadHttpRequestException)
            {
                return Problem(400, "Malformed key request", $"The body must be empty or {{\"name\": LABEL}}: {ex.Message}");
            }
        }

        if (name.Length > 64 || name.Any(char.IsControl))
        {
            return Problem(400, "Invalid key name", "a key's name is at most 64 characters, without control characters");
        }

        var id = Id(caller, account);
        return await accounts.CreateKeyAsync(id, name, cancellationToken) is { } created
            ? Results.Created($"/api/v1/accounts/{id}/keys/{created.Id}", created)
            : NoAccount(id);
    }

    private static async Task<IResult> RevokeAsync(AccountStore accounts, Caller caller, string account, string id, CancellationToken cancellationToken)
    {
        if (Refuse(caller, account) is { } refused)
        {
            return refused;
        }

        var owner = Id(caller, account);
        if (!ApiKeys.IsId(id))
        {
            return Problem(400, "Bad key id", $"'{id}' is not a key id: {ApiKeys.IdLength} lowercase hex digits (the part after emc_)");
        }

        return await accounts.RevokeAsync(owner, id, cancellationToken) == RevokeOutcome.NotFound
            ? Problem(404, "Key not found", $"The account '{owner}' has no key {id}.")
            : Results.Ok(await accounts.GetKeyAsync(owner, id, cancellationToken));
    }

    private static string Id(Caller caller, string account) => account == AccountIds.Me ? caller.AccountId : account;

    private static IResult? Refuse(Caller caller, string account) =>
        caller.MayAccess(Id(caller, account))
            ? null
            : Problem(403, "Forbidden", $"the key given is the account '{caller.AccountId}''s; it sees only its own account (use 'me')");

    private static IResult NoAccount(string id) => Problem(404, "Account not found", $"No account '{id}'.");

    private static IResult Problem(int status, string title, string detail) =>
        Results.Problem(title: title, detail: detail, statusCode: status);
}
