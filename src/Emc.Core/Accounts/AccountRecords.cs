namespace Emc.Core.Accounts;

/// <summary>An account as the API shows it.</summary>
/// <param name="Id">The stable id; jobs carry it as their fair-share account.</param>
/// <param name="Name">The name it was created with.</param>
/// <param name="Role">"operator" (sees and changes everything) or "user" (only its own).</param>
/// <param name="CreatedAt">When it was made.</param>
public sealed record AccountView(string Id, string Name, string Role, DateTimeOffset CreatedAt);

/// <summary>An API key as listings show it: never the key itself.</summary>
/// <param name="Id">The public key id (the part after "emc_").</param>
/// <param name="Account">The account it acts for.</param>
/// <param name="Name">What its owner called it; may be empty.</param>
/// <param name="CreatedAt">When it was made.</param>
/// <param name="LastUsedAt">When it last opened a request (kept to the minute); null if never.</param>
/// <param name="RevokedAt">When it was revoked; null while it is valid.</param>
public sealed record ApiKeyView(string Id, string Account, string Name, DateTimeOffset CreatedAt, DateTimeOffset? LastUsedAt, DateTimeOffset? RevokedAt);

/// <summary>A key just made: the only time <paramref name="Key"/> is shown.</summary>
public sealed record CreatedApiKey(string Id, string Account, string Name, string Key, DateTimeOffset CreatedAt);

/// <summary>What POST /api/v1/accounts answers: the new account and its first key.</summary>
public sealed record CreatedAccount(AccountView Account, CreatedApiKey Key);

/// <summary>The body of POST /api/v1/accounts.</summary>
/// <param name="Name">The account's id and name: lowercase letters, digits, '-', '_' and '.'.</param>
public sealed record AccountRequest(string? Name);

/// <summary>The body of POST /api/v1/accounts/{account}/keys (optional).</summary>
/// <param name="Name">A label for the key, such as "laptop".</param>
public sealed record ApiKeyRequest(string? Name);
