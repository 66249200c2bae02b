namespace Emc.Node.Connection;

/// <summary>
/// Reconnect delays: exponential growth with "equal jitter" (half fixed, half random), so a
/// coordinator restart is not met by every node of the network in the same instant.
/// </summary>
public sealed class ExponentialBackoff
{
    private readonly TimeSpan _initial;
    private readonly TimeSpan _maximum;
    private readonly Random _random;
    private int _attempt;

    /// <summary>Delays start at <paramref name="initial"/> and double up to <paramref name="maximum"/>.</summary>
    public ExponentialBackoff(TimeSpan initial, TimeSpan maximum, Random? random = null)
    {
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(initial, TimeSpan.Zero);
        ArgumentOutOfRangeException.ThrowIfLessThan(maximum, initial);
        _initial = initial;
        _maximum = maximum;
        _random = random ?? Random.Shared;
    }

    /// <summary>Failures since the last success.</summary>
    public int Attempt => _attempt;

    /// <summary>The delay before the next attempt; each call counts one failure.</summary>
    public TimeSpan NextDelay()
    {
        var exponent = Math.Min(_attempt, 30);
        _attempt++;
        var ceiling = Math.Min(_maximum.TotalMilliseconds, _initial.TotalMilliseconds * Math.Pow(2, exponent));
        return TimeSpan.FromMilliseconds((ceiling / 2) + (_random.NextDouble() * ceiling / 2));
    }

    /// <summary>A connection succeeded: start again from the initial delay.</summary>
    public void Reset() => _attempt = 0;
}
