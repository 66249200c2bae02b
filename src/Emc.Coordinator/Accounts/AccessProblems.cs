using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.HttpResults;

namespace Emc.Coordinator.Accounts;

/// <summary>The 403 an endpoint answers when a key reaches for what another account owns.</summary>
public static class AccessProblems
{
    /// <summary>The message: whose key it is and what it reached for.</summary>
    public static string Message(Caller caller, string what)
    {
        ArgumentNullException.ThrowIfNull(caller);
        return $"{what} belongs to another account; the key given is the account '{caller.AccountId}''s, and a user's key sees and changes only its own account's resources";
    }

    public static ProblemHttpResult Forbidden(Caller caller, string what) =>
        TypedResults.Problem(title: "Forbidden", detail: Message(caller, what), statusCode: StatusCodes.Status403Forbidden);
}
