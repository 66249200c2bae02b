using System.Security.Claims;
using System.Text.Encodings.Web;
using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Emc.Coordinator.Accounts;

/// <summary>
/// The coordinator's one authentication scheme. A request that carries a node signature is judged as a
/// node's (<see cref="NodeRequestVerifier"/>); otherwise its <c>Authorization: Bearer KEY</c> header (gRPC:
/// the <c>authorization</c> metadata) is checked against the account keys (<see cref="AccountStore"/>).
/// No credentials at all is "no result", which the authorization policies turn into a 401; bad
/// credentials fail with the reason the client is shown.
/// </summary>
internal sealed class EmcAuthenticationHandler(
    IOptionsMonitor<AuthenticationSchemeOptions> options,
    ILoggerFactory logger,
    UrlEncoder encoder,
    AccountStore accounts,
    NodeRequestVerifier nodes)
    : AuthenticationHandler<AuthenticationSchemeOptions>(options, logger, encoder)
{
    public const string SchemeName = "Emc";

    protected override async Task<AuthenticateResult> HandleAuthenticateAsync()
    {
        if (NodeRequestVerifier.IsSigned(Request))
        {
            var firstContact = Context.GetEndpoint()?.Metadata.GetMetadata<FirstNodeContact>() is not null;
            var (node, error) = await nodes.VerifyAsync(Context, firstContact, Context.RequestAborted);
            return node is null
                ? AuthenticateResult.Fail(error!)
                : Success(node.ToIdentity(SchemeName));
        }

        var header = Request.Headers.Authorization;
        if (header.Count == 0)
        {
            return AuthenticateResult.NoResult();
        }

        var text = header.Count == 1 ? header[0] ?? "" : "";
        if (!text.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase))
        {
            return AuthenticateResult.Fail("the Authorization header must be one 'Bearer KEY'");
        }

        var (caller, refusal) = await accounts.AuthenticateAsync(text["Bearer ".Length..].Trim(), Context.RequestAborted);
        return refusal switch
        {
            KeyRefusal.None => Success(caller!.ToIdentity(SchemeName)),
            KeyRefusal.Revoked => AuthenticateResult.Fail("the API key was revoked"),
            KeyRefusal.Malformed => AuthenticateResult.Fail("the API key is malformed: EMC keys look like emc_<12 hex digits>_<43 characters>"),
            _ => AuthenticateResult.Fail("the API key is not valid"),
        };
    }

    private static AuthenticateResult Success(ClaimsIdentity identity) =>
        AuthenticateResult.Success(new AuthenticationTicket(new ClaimsPrincipal(identity), SchemeName));
}
