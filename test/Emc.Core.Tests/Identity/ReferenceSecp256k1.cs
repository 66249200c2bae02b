using Org.BouncyCastle.Asn1.Sec;
using Org.BouncyCastle.Crypto.Digests;
using Org.BouncyCastle.Crypto.Parameters;
using Org.BouncyCastle.Crypto.Signers;
using Org.BouncyCastle.Math;
using Org.BouncyCastle.Math.EC;

namespace Emc.Core.Tests.Identity;

/// <summary>
/// secp256k1 done by BouncyCastle, written from the SEC 1 formulas and sharing no code with
/// NBitcoin.Secp256k1, so our signing and recovery are checked against a second implementation.
/// </summary>
internal static class ReferenceSecp256k1
{
    private static readonly ECDomainParameters Domain = CreateDomain();

    public static BigInteger Order => Domain.N;

    /// <summary>The 65-byte uncompressed public key (0x04||x||y) of a 32-byte secret.</summary>
    public static byte[] PublicKey(byte[] secret) =>
        Domain.G.Multiply(new BigInteger(1, secret)).Normalize().GetEncoded(false);

    /// <summary>
    /// Signs a digest with RFC 6979 nonces (as libsecp256k1 does), normalises s to the low half
    /// and finds the recovery id by trying both candidate points: r||s||(27 + id).
    /// </summary>
    public static byte[] SignRecoverable(byte[] secret, byte[] digest)
    {
        var signer = new ECDsaSigner(new HMacDsaKCalculator(new Sha256Digest()));
        signer.Init(true, new ECPrivateKeyParameters(new BigInteger(1, secret), Domain));
        var rs = signer.GenerateSignature(digest);
        var r = rs[0];
        var s = rs[1];
        if (s.CompareTo(Domain.N.ShiftRight(1)) > 0)
        {
            s = Domain.N.Subtract(s);
        }

        var publicKey = PublicKey(secret);
        for (var recoveryId = 0; recoveryId < 2; recoveryId++)
        {
            var recovered = Recover(digest, r, s, recoveryId);
            if (recovered is not null && recovered.AsSpan().SequenceEqual(publicKey))
            {
                var signature = new byte[65];
                ToFixed32(r).CopyTo(signature, 0);
                ToFixed32(s).CopyTo(signature, 32);
                signature[64] = (byte)(27 + recoveryId);
                return signature;
            }
        }

        throw new InvalidOperationException("Neither recovery id gives back the signing key.");
    }

    /// <summary>ECDSA verification of r||s (the first 64 bytes of <paramref name="signature"/>) against a public key.</summary>
    public static bool Verify(byte[] publicKey, byte[] digest, ReadOnlySpan<byte> signature)
    {
        var verifier = new ECDsaSigner();
        verifier.Init(false, new ECPublicKeyParameters(Domain.Curve.DecodePoint(publicKey), Domain));
        return verifier.VerifySignature(
            digest,
            new BigInteger(1, signature[..32].ToArray()),
            new BigInteger(1, signature.Slice(32, 32).ToArray()));
    }

    public static byte[] ToFixed32(BigInteger value)
    {
        var bytes = value.ToByteArrayUnsigned();
        var output = new byte[32];
        bytes.CopyTo(output, 32 - bytes.Length);
        return output;
    }

    // SEC 1 v2, 4.1.6 with j = 0 (r < p - n makes j = 1 practically impossible): Q = r^-1 (sR - eG).
    private static byte[]? Recover(byte[] digest, BigInteger r, BigInteger s, int recoveryId)
    {
        var compressed = new byte[33];
        compressed[0] = (byte)(0x02 + recoveryId);
        ToFixed32(r).CopyTo(compressed, 1);
        ECPoint point;
        try
        {
            point = Domain.Curve.DecodePoint(compressed);
        }
        catch (ArgumentException)
        {
            return null;
        }

        var e = new BigInteger(1, digest);
        var q = point.Multiply(s).Subtract(Domain.G.Multiply(e)).Multiply(r.ModInverse(Domain.N)).Normalize();
        return q.IsInfinity ? null : q.GetEncoded(false);
    }

    private static ECDomainParameters CreateDomain()
    {
        var curve = SecNamedCurves.GetByName("secp256k1");
        return new ECDomainParameters(curve.Curve, curve.G, curve.N, curve.H);
    }
}
