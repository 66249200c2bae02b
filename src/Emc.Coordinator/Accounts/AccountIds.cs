using System.Diagnostics.CodeAnalysis;

namespace Emc.Coordinator.Accounts;

/// <summary>Account ids and roles.</summary>
public static class AccountIds
{
    /// <summary>The operator's account, made at first start.</summary>
    public const string Operator = "operator";

    /// <summary>What "me" in a route stands for: the caller's own account.</summary>
    public const string Me = "me";

    /// <summary>The longest account id.</summary>
    public const int MaxLength = 64;

    /// <summary>The rule an account id follows, for error messages.</summary>
    public const string Rule = "1 to 64 characters of lowercase letters, digits, '-', '_' and '.', starting with a letter or digit";

    /// <summary>
    /// Ids no user may take: "me" is the caller in routes, "operator" is the operator, "deployments" is
    /// the fair-share account of serving replicas, and "default" is the account a training job names when
    /// it names none.
    /// </summary>
    public static readonly IReadOnlySet<string> Reserved = new HashSet<string>(StringComparer.Ordinal)
    {
        Me, Operator, "deployments", "default", "system",
    };

    public static bool IsValid([NotNullWhen(true)] string? id)
    {
        if (string.IsNullOrEmpty(id) || id.Length > MaxLength || !(char.IsAsciiLetterLower(id[0]) || char.IsAsciiDigit(id[0])))
        {
            return false;
        }

        foreach (var c in id)
        {
            if (!(char.IsAsciiLetterLower(c) || char.IsAsciiDigit(c) || c is '-' or '_' or '.'))
            {
                return false;
            }
        }

        return true;
    }
}

/// <summary>What an account may do: the operator sees and changes everything, a user only its own.</summary>
public static class AccountRoles
{
    public const string Operator = "operator";

    public const string User = "user";
}
