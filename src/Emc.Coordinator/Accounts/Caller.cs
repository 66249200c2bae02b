using System.Security.Claims;
using Microsoft.AspNetCore.Http;

namespace Emc.Coordinator.Accounts;

/// <summary>
/// The account an API request acts for, as its key proved. Endpoints take it as a parameter (minimal
/// APIs bind it through <see cref="BindAsync"/>); handlers written as plain delegates, and gRPC services,
/// read it with <see cref="CallerExtensions.GetCaller(HttpContext)"/>. It is the one way any part of the
/// coordinator learns who is asking.
/// </summary>
public sealed class Caller
{
    internal const string AccountClaim = "emc:account";
    internal const string RoleClaim = "emc:role";
    internal const string KeyClaim = "emc:key";

    public Caller(string accountId, string role, string? keyId)
    {
        AccountId = accountId;
        Role = role;
        KeyId = keyId;
    }

    /// <summary>The operator acting on its own behalf, for work the coordinator does for itself and for tests.</summary>
    public static Caller Operator { get; } = new(AccountIds.Operator, AccountRoles.Operator, null);

    /// <summary>The account's id.</summary>
    public string AccountId { get; }

    /// <summary>"operator" or "user".</summary>
    public string Role { get; }

    /// <summary>The id of the key the request came with.</summary>
    public string? KeyId { get; }

    public bool IsOperator => Role == AccountRoles.Operator;

    /// <summary>Whether the caller may see and change what <paramref name="owner"/> owns: its own, or anything for the operator.</summary>
    public bool MayAccess(string? owner) => IsOperator || string.Equals(owner, AccountId, StringComparison.Ordinal);

    /// <summary>Minimal API binding: the authenticated caller, or null on an endpoint open to everyone.</summary>
    public static ValueTask<Caller?> BindAsync(HttpContext context) => ValueTask.FromResult(context.GetCaller());

    internal ClaimsIdentity ToIdentity(string scheme) => new(
        [
            new Claim(AccountClaim, AccountId),
            new Claim(RoleClaim, Role),
            new Claim(KeyClaim, KeyId ?? ""),
        ],
        scheme);

    internal static Caller? FromPrincipal(ClaimsPrincipal? principal)
    {
        if (principal?.FindFirst(AccountClaim)?.Value is not { } account || principal.FindFirst(RoleClaim)?.Value is not { } role)
        {
            return null;
        }

        var key = principal.FindFirst(KeyClaim)?.Value;
        return new Caller(account, role, string.IsNullOrEmpty(key) ? null : key);
    }
}

/// <summary>A node that proved its address by signing the request (see <see cref="NodeRequestVerifier"/>).</summary>
/// <param name="Address">The node's address (its id).</param>
/// <param name="Registered">Whether the registry knows it; first contact (info, link tests) comes before registration.</param>
public sealed record NodeCaller(string Address, bool Registered)
{
    internal const string AddressClaim = "emc:node";
    internal const string RegisteredClaim = "emc:node-registered";

    internal ClaimsIdentity ToIdentity(string scheme) => new(
        [
            new Claim(AddressClaim, Address),
            new Claim(RegisteredClaim, Registered ? "true" : "false"),
        ],
        scheme);

    internal static NodeCaller? FromPrincipal(ClaimsPrincipal? principal) =>
        principal?.FindFirst(AddressClaim)?.Value is { } address
            ? new NodeCaller(address, principal.FindFirst(RegisteredClaim)?.Value == "true")
            : null;
}

/// <summary>Reads who is calling.</summary>
public static class CallerExtensions
{
    /// <summary>The account the request acts for; null when it came with no valid key (or from a node).</summary>
    public static Caller? GetCaller(this HttpContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        return Caller.FromPrincipal(context.User);
    }

    /// <summary>The node that signed the request, or null.</summary>
    public static NodeCaller? GetNodeCaller(this HttpContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        return NodeCaller.FromPrincipal(context.User);
    }
}
