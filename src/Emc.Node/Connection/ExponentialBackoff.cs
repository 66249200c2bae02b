namespace Emc.Node.Connection;

/// <summary>
/// Reconnect delays: exponential growth with "equal jitter" (half fixed, half random), so a
/// coordinator restart is not met by every node of the network in the same instant.
/// </summary>
public sealed class ExponentialBackoff(TimeSpan initial, TimeSpan maximum, Random? random = null)
{
    private readonly Random _random = random ?? Random.Shared;
    private int _attempt;

    /// <summary>Failures since the last success.</summary>
    public int Attempt => _attempt;

    /// <summary>The delay before the next attempt; each call counts one failure.</summary>
    public TimeSpan NextDelay()
    {
        var exponent = Math.Min(_attempt, 30);
        _attempt++;
        var ceiling = Math.Min(maximum.TotalMilliseconds, initial.TotalMilliseconds * Math.Pow(2, exponent));
        return TimeSpan.FromMilliseconds((ceiling / 2) + (_random.NextDouble() * ceiling / 2));
    }

    /// <summary>A connection succeeded: start again from the initial delay.</summary>
    public void Reset() => _attempt = 0;
}
