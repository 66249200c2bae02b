namespace Emc.Coordinator.Persistence;

/// <summary>An account: a user of the network, or its operator.</summary>
public sealed class AccountRow
{
    /// <summary>The stable id; jobs carry it as their fair-share account.</summary>
    public required string Id { get; set; }

    public required string Name { get; set; }

    /// <summary>"operator" or "user".</summary>
    public required string Role { get; set; }

    public long CreatedAtUnixMs { get; set; }
}

/// <summary>An API key of an account. Only the key's SHA-256 is kept; the key itself is shown once.</summary>
public sealed class ApiKeyRow
{
    /// <summary>The public key id, also the key's second part (emc_ID_SECRET): lookups and listings use it.</summary>
    public required string Id { get; set; }

    public required string AccountId { get; set; }

    /// <summary>What the owner called it ("laptop", "ci"); may be empty.</summary>
    public string Name { get; set; } = "";

    /// <summary>SHA-256 of the whole key, as 64 lowercase hex digits.</summary>
    public required string Hash { get; set; }

    public long CreatedAtUnixMs { get; set; }

    public long? LastUsedAtUnixMs { get; set; }

    public long? RevokedAtUnixMs { get; set; }
}
