using System.Security.Cryptography;
using NBitcoin.Secp256k1;

namespace Emc.Core.Identity;

/// <summary>
/// A node's secp256k1 signing key. The node id is the key's Ethereum-style address, so the
/// operator can use the same key as a reward wallet.
/// </summary>
public sealed class NodeKey : IDisposable
{
    private readonly ECPrivKey _key;
    private readonly byte[] _secret;

    private NodeKey(ECPrivKey key, byte[] secret)
    {
        _key = key;
        _secret = secret;
        Span<byte> pub = stackalloc byte[65];
        key.CreatePubKey().WriteToSpan(false, pub, out _);
        PublicKey = pub.ToArray();
        Address = EthAddress.FromPublicKey(PublicKey);
    }

    /// <summary>The node id and reward wallet.</summary>
    public EthAddress Address { get; }

    /// <summary>The 65-byte uncompressed public key (0x04||x||y).</summary>
    public byte[] PublicKey { get; }

    /// <summary>Makes a new key from the operating system's random number generator.</summary>
    public static NodeKey Create()
    {
        var secret = new byte[32];
        while (true)
        {
            RandomNumberGenerator.Fill(secret);
            if (ECPrivKey.TryCreate(secret, out var key))
            {
                return new NodeKey(key, secret);
            }
        }
    }

    /// <summary>Makes a key from a 32-byte secret; throws when the secret is not a valid scalar.</summary>
    public static NodeKey FromSecret(ReadOnlySpan<byte> secret)
    {
        if (secret.Length != 32 || !ECPrivKey.TryCreate(secret, out var key))
        {
            throw new ArgumentException("A secp256k1 secret is 32 bytes, non-zero and below the curve order.", nameof(secret));
        }

        return new NodeKey(key, secret.ToArray());
    }

    /// <summary>Signs a 32-byte digest; returns r||s||v (65 bytes, v = 27 + recovery id), low-s.</summary>
    public byte[] SignDigest(ReadOnlySpan<byte> digest)
    {
        if (digest.Length != 32)
        {
            throw new ArgumentException("The digest must be 32 bytes.", nameof(digest));
        }

        if (!_key.TrySignRecoverable(digest, out var signature) || signature is null)
        {
            throw new CryptographicException("Signing failed.");
        }

        var output = new byte[65];
        signature.WriteToSpanCompact(output.AsSpan(0, 64), out var recoveryId);
        output[64] = (byte)(27 + recoveryId);
        return output;
    }

    /// <summary>Signs a message the way Ethereum wallets do (EIP-191 personal_sign).</summary>
    public byte[] SignMessage(ReadOnlySpan<byte> message) => SignDigest(Signatures.PersonalMessageDigest(message));

    /// <summary>The 32-byte secret, for persisting the key.</summary>
    public ReadOnlySpan<byte> Secret => _secret;

    /// <inheritdoc />
    public void Dispose()
    {
        CryptographicOperations.ZeroMemory(_secret);
        _key.Dispose();
    }
}
