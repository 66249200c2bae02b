using System.Collections.Concurrent;
using System.Security.Cryptography;
using Emc.Coordinator.Registry;
using Microsoft.Extensions.Options;

namespace Emc.Coordinator.Gateway;

/// <summary>A one-time registration challenge issued on one stream.</summary>
public sealed record IssuedChallenge(byte[] Nonce, DateTimeOffset ExpiresAt);

/// <summary>The outcome of checking the nonce a node echoed back.</summary>
public enum ChallengeVerdict
{
    Valid,
    Expired,
    Replayed,
    NotIssued,
}

/// <summary>
/// Issues single-use nonces and remembers spent ones until they would have expired, so that a
/// captured registration cannot be played back, on this stream or any other.
/// </summary>
public sealed class ChallengeIssuer(TimeProvider time, IOptions<RegistryOptions> options)
{
    private readonly ConcurrentDictionary<string, DateTimeOffset> _spent = new(StringComparer.Ordinal);
    private long _issuedSincePurge;

    public IssuedChallenge Issue()
    {
        if (Interlocked.Increment(ref _issuedSincePurge) % 1024 == 0)
        {
            PurgeExpired();
        }

        return new IssuedChallenge(RandomNumberGenerator.GetBytes(32), time.GetUtcNow() + options.Value.ChallengeLifetime);
    }

    /// <summary>Checks the nonce presented against the one issued on this stream and spends it.</summary>
    public ChallengeVerdict Redeem(IssuedChallenge issued, ReadOnlySpan<byte> presented)
    {
        var key = Convert.ToHexStringLower(presented);
        if (_spent.ContainsKey(key))
        {
            return ChallengeVerdict.Replayed;
        }

        if (!CryptographicOperations.FixedTimeEquals(issued.Nonce, presented))
        {
            return ChallengeVerdict.NotIssued;
        }

        if (time.GetUtcNow() > issued.ExpiresAt)
        {
            return ChallengeVerdict.Expired;
        }

        return _spent.TryAdd(key, issued.ExpiresAt) ? ChallengeVerdict.Valid : ChallengeVerdict.Replayed;
    }

    private void PurgeExpired()
    {
        var now = time.GetUtcNow();
        foreach (var (key, expires) in _spent)
        {
            if (expires < now)
            {
                _spent.TryRemove(key, out _);
            }
        }
    }
}
