using System.Diagnostics.CodeAnalysis;
using Emc.Core.Crypto;

namespace Emc.Core.Identity;

/// <summary>
/// A 20-byte Ethereum-style address: the last 20 bytes of keccak256 of an uncompressed public key.
/// It is a node's id and its reward wallet. The canonical text form is lower-case 0x-hex.
/// </summary>
public readonly record struct EthAddress
{
    /// <summary>Address length in bytes.</summary>
    public const int Size = 20;

    private readonly string _hex;

    private EthAddress(string hex) => _hex = hex;

    /// <summary>The lower-case 0x-prefixed hex form.</summary>
    public override string ToString() => _hex ?? "0x0000000000000000000000000000000000000000";

    /// <summary>Derives the address of a 64-byte (x||y) or 65-byte (0x04||x||y) uncompressed public key.</summary>
    public static EthAddress FromPublicKey(ReadOnlySpan<byte> uncompressed)
    {
        if (uncompressed.Length == 65 && uncompressed[0] == 0x04)
        {
            uncompressed = uncompressed[1..];
        }

        if (uncompressed.Length != 64)
        {
            throw new ArgumentException("An uncompressed secp256k1 public key has 64 bytes (or 65 with the 0x04 prefix).", nameof(uncompressed));
        }

        var hash = Keccak256.Hash(uncompressed);
        return new EthAddress("0x" + Convert.ToHexStringLower(hash.AsSpan(12, Size)));
    }

    /// <summary>Parses "0x" followed by 40 hex digits, in any case.</summary>
    public static bool TryParse(string? text, [NotNullWhen(true)] out EthAddress? address)
    {
        address = null;
        if (text is null || text.Length != 42 || !text.StartsWith("0x", StringComparison.OrdinalIgnoreCase))
        {
            return false;
        }

        foreach (var ch in text.AsSpan(2))
        {
            if (!char.IsAsciiHexDigit(ch))
            {
                return false;
            }
        }

        address = new EthAddress("0x" + text[2..].ToLowerInvariant());
        return true;
    }

    /// <summary>Parses an address or throws <see cref="FormatException"/> with the reason.</summary>
    public static EthAddress Parse(string text) =>
        TryParse(text, out var address)
            ? address.Value
            : throw new FormatException($"'{text}' is not an address: expected 0x followed by 40 hex digits.");
}
