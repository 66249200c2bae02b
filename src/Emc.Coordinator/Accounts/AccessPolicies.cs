using Microsoft.AspNetCore.Authorization;
using Microsoft.AspNetCore.Builder;

namespace Emc.Coordinator.Accounts;

/// <summary>
/// Who may call an endpoint. Every endpoint without a policy of its own gets <see cref="Account"/> (the
/// fallback policy), so a new endpoint is closed until it says otherwise; only health checks are open.
/// Whose resource a request may touch is decided by the endpoint itself (<see cref="Caller.MayAccess"/>).
/// </summary>
public static class AccessPolicies
{
    /// <summary>Any account's API key.</summary>
    public const string Account = "emc:account";

    /// <summary>The operator's API key only.</summary>
    public const string Operator = "emc:operator";

    /// <summary>A registered node's signature, or the operator's key (raw blob downloads).</summary>
    public const string NodeOrOperator = "emc:node-or-operator";

    /// <summary>A registered node's signature, or any account's key (blob uploads: updates from nodes, TorchScript files from users).</summary>
    public const string NodeOrAccount = "emc:node-or-account";

    /// <summary>Requires an API key (the default of every endpoint).</summary>
    public static TBuilder RequireAccount<TBuilder>(this TBuilder builder)
        where TBuilder : IEndpointConventionBuilder => builder.RequireAuthorization(Account);

    /// <summary>Requires the operator's key.</summary>
    public static TBuilder RequireOperator<TBuilder>(this TBuilder builder)
        where TBuilder : IEndpointConventionBuilder => builder.RequireAuthorization(Operator);

    /// <summary>
    /// Lets a node that has not registered yet call the endpoint with a valid signature: what a node
    /// needs before it can register (where the gateway is, how fast the link is).
    /// </summary>
    public static TBuilder AllowFirstNodeContact<TBuilder>(this TBuilder builder)
        where TBuilder : IEndpointConventionBuilder => builder.WithMetadata(FirstNodeContact.Instance);

    internal static void Add(AuthorizationOptions options)
    {
        var account = Policy(AccessRule.Account);
        options.AddPolicy(Account, account);
        options.AddPolicy(Operator, Policy(AccessRule.Operator));
        options.AddPolicy(NodeOrOperator, Policy(AccessRule.NodeOrOperator));
        options.AddPolicy(NodeOrAccount, Policy(AccessRule.NodeOrAccount));
        options.FallbackPolicy = account;
    }

    private static AuthorizationPolicy Policy(AccessRule rule) =>
        new AuthorizationPolicyBuilder().RequireAuthenticatedUser().AddRequirements(new AccessRequirement(rule)).Build();
}

/// <summary>Marks an endpoint that unregistered nodes may call with a valid signature.</summary>
public sealed class FirstNodeContact
{
    public static readonly FirstNodeContact Instance = new();

    private FirstNodeContact()
    {
    }
}

internal enum AccessRule
{
    Account,
    Operator,
    NodeOrOperator,
    NodeOrAccount,
}

internal sealed class AccessRequirement(AccessRule rule) : IAuthorizationRequirement
{
    public AccessRule Rule { get; } = rule;
}

/// <summary>Judges <see cref="AccessRequirement"/>s, with a reason the client is shown when it fails.</summary>
internal sealed class AccessRequirementHandler : AuthorizationHandler<AccessRequirement>
{
    protected override Task HandleRequirementAsync(AuthorizationHandlerContext context, AccessRequirement requirement)
    {
        var caller = Caller.FromPrincipal(context.User);
        var node = NodeCaller.FromPrincipal(context.User);
        var allowed = requirement.Rule switch
        {
            AccessRule.Account => caller is not null,
            AccessRule.Operator => caller is { IsOperator: true },
            AccessRule.NodeOrOperator => node is not null || caller is { IsOperator: true },
            AccessRule.NodeOrAccount => node is not null || caller is not null,
            _ => false,
        };
        if (allowed)
        {
            context.Succeed(requirement);
            return Task.CompletedTask;
        }

        var reason = (requirement.Rule, caller, node) switch
        {
            (_, null, not null) => "a node's signature opens only blob and link endpoints; this one needs an API key",
            (AccessRule.Operator, not null, _) => $"only the operator may do this; the key given is the account '{caller.AccountId}''s",
            (AccessRule.NodeOrOperator, not null, _) => "raw blobs are for nodes and the operator; fetch what you own through its resource (for a model: GET /api/v1/models/{name}/files/{sha256}, emc model pull)",
            _ => "this key may not do this",
        };
        context.Fail(new AuthorizationFailureReason(this, reason));
        return Task.CompletedTask;
    }
}
