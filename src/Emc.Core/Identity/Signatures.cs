using System.Diagnostics.CodeAnalysis;
using System.Text;
using Emc.Core.Crypto;
using NBitcoin.Secp256k1;

namespace Emc.Core.Identity;

/// <summary>Verification of Ethereum-style recoverable signatures.</summary>
public static class Signatures
{
    // Half the secp256k1 group order: signatures with a larger s are malleable twins and refused (EIP-2).
    private static readonly byte[] HalfOrder = Convert.FromHexString("7FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF5D576E7357A4501DDFE92F46681B20A0");

    /// <summary>keccak256("\x19Ethereum Signed Message:\n" + len + message), the EIP-191 digest wallets sign.</summary>
    public static byte[] PersonalMessageDigest(ReadOnlySpan<byte> message)
    {
        var prefix = Encoding.ASCII.GetBytes($"\u0019Ethereum Signed Message:\n{message.Length}");
        var buffer = new byte[prefix.Length + message.Length];
        prefix.CopyTo(buffer, 0);
        message.CopyTo(buffer.AsSpan(prefix.Length));
        return Keccak256.Hash(buffer);
    }

    /// <summary>
    /// Recovers the address that signed <paramref name="digest"/>. Returns false, with a reason, for a
    /// signature of the wrong length, an invalid recovery byte, a high-s twin or a point not on the curve.
    /// </summary>
    public static bool TryRecoverAddress(
        ReadOnlySpan<byte> digest,
        ReadOnlySpan<byte> signature,
        [NotNullWhen(true)] out EthAddress? address,
        [NotNullWhen(false)] out string? error)
    {
        address = null;
        if (digest.Length != 32)
        {
            error = "the signed digest must be 32 bytes";
            return false;
        }

        if (signature.Length != 65)
        {
            error = $"a signature is 65 bytes (r, s, v), not {signature.Length}";
            return false;
        }

        // Only 27 and 28: accepting 0 and 1 as well would give every signature a second valid form.
        if (signature[64] is not (27 or 28))
        {
            error = $"the recovery byte v={signature[64]} is not 27 or 28";
            return false;
        }

        var recoveryId = signature[64] - 27;

        if (signature.Slice(32, 32).SequenceCompareTo(HalfOrder) > 0)
        {
            error = "the signature has a high s value (malleable form)";
            return false;
        }

        if (!SecpRecoverableECDSASignature.TryCreateFromCompact(signature[..64], recoveryId, out var sig) || sig is null)
        {
            error = "the signature's r or s is out of range";
            return false;
        }

        if (!ECPubKey.TryRecover(Context.Instance, sig, digest, out var pubKey) || pubKey is null)
        {
            error = "no public key can be recovered from the signature";
            return false;
        }

        Span<byte> uncompressed = stackalloc byte[65];
        pubKey.WriteToSpan(false, uncompressed, out _);
        address = EthAddress.FromPublicKey(uncompressed);
        error = null;
        return true;
    }
}
