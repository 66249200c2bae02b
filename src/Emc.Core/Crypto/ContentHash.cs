using System.Security.Cryptography;

namespace Emc.Core.Crypto;

/// <summary>The names of content-addressed blobs: sha256 as 64 lowercase hex digits.</summary>
public static class ContentHash
{
    /// <summary>True for 64 lowercase hex digits (the only form blob names take, so none can be a path).</summary>
    public static bool IsValid(string? hash) =>
        hash is { Length: 64 } && hash.All(c => c is >= '0' and <= '9' or >= 'a' and <= 'f');

    public static string Of(ReadOnlySpan<byte> content) => Convert.ToHexStringLower(SHA256.HashData(content));
}
