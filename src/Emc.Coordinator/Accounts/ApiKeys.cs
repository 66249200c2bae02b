using System.Diagnostics.CodeAnalysis;
using System.Security.Cryptography;
using System.Text;

namespace Emc.Coordinator.Accounts;

/// <summary>
/// The API key format: <c>emc_ID_SECRET</c>, where ID is 12 hex digits (public: lookups, listings,
/// revocation) and SECRET is 32 random bytes in base64url (43 characters). Only SHA-256 of the whole
/// key is stored: the key is random with 256 bits of entropy, so a fast hash is enough and a slow
/// password hash would only cost every request time.
/// </summary>
public static class ApiKeys
{
    public const string Prefix = "emc_";
    public const int IdLength = 12;
    public const int SecretLength = 43;
    public const int KeyLength = 4 + IdLength + 1 + SecretLength;

    /// <summary>A new key and its id.</summary>
    public static (string Id, string Key) Create()
    {
        var id = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(IdLength / 2));
        var secret = Convert.ToBase64String(RandomNumberGenerator.GetBytes(32)).TrimEnd('=').Replace('+', '-').Replace('/', '_');
        return (id, $"{Prefix}{id}_{secret}");
    }

    /// <summary>The key's id when <paramref name="key"/> has the key's form; false otherwise.</summary>
    public static bool TryParse(string? key, [NotNullWhen(true)] out string? id)
    {
        id = null;
        if (key is null || key.Length != KeyLength || !key.StartsWith(Prefix, StringComparison.Ordinal) || key[Prefix.Length + IdLength] != '_')
        {
            return false;
        }

        var idPart = key.AsSpan(Prefix.Length, IdLength);
        foreach (var c in idPart)
        {
            if (!(char.IsAsciiDigit(c) || c is >= 'a' and <= 'f'))
            {
                return false;
            }
        }

        foreach (var c in key.AsSpan(Prefix.Length + IdLength + 1))
        {
            if (!(char.IsAsciiLetterOrDigit(c) || c is '-' or '_'))
            {
                return false;
            }
        }

        id = idPart.ToString();
        return true;
    }

    /// <summary>Whether <paramref name="id"/> has the form of a key id (12 lowercase hex digits).</summary>
    public static bool IsId([NotNullWhen(true)] string? id) =>
        id is { Length: IdLength } && id.All(c => char.IsAsciiDigit(c) || c is >= 'a' and <= 'f');

    /// <summary>SHA-256 of the key as 64 lowercase hex digits: what the database keeps.</summary>
    public static string Hash(string key) => Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(key)));

    /// <summary>Whether <paramref name="key"/> hashes to <paramref name="storedHash"/>, compared in constant time.</summary>
    public static bool Matches(string key, string storedHash)
    {
        Span<byte> presented = stackalloc byte[32];
        SHA256.HashData(Encoding.UTF8.GetBytes(key), presented);
        Span<byte> stored = stackalloc byte[32];
        return Convert.FromHexString(storedHash, stored, out _, out var written) == System.Buffers.OperationStatus.Done
            && written == 32
            && CryptographicOperations.FixedTimeEquals(presented, stored);
    }
}
