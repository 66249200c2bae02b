namespace Emc.Core.Inference;

/// <summary>
/// Picks the next token from a model's logits: the most likely one at temperature 0 (ties go to the
/// lowest token), otherwise a draw from softmax(logits / temperature) cut to the smallest set of most
/// likely tokens whose probability reaches <c>top_p</c> (nucleus sampling). The draws come from a
/// SplitMix64 stream of the seed, not <see cref="Random"/>, so the same seed gives the same text on
/// every runtime version and machine that computes the same logits.
/// </summary>
public sealed class TokenSampler
{
    private readonly float _temperature;
    private readonly float _topP;
    private ulong _state;
    private int[] _order = [];
    private double[] _probabilities = [];

    /// <param name="temperature">0 for greedy decoding; otherwise positive.</param>
    /// <param name="topP">In (0, 1]; 1 keeps the whole distribution.</param>
    /// <param name="seed">Seeds the draws.</param>
    public TokenSampler(float temperature, float topP, ulong seed)
    {
        if (!float.IsFinite(temperature) || temperature < 0)
        {
            throw new ArgumentOutOfRangeException(nameof(temperature), temperature, "the temperature must be 0 or more");
        }

        if (!float.IsFinite(topP) || topP <= 0 || topP > 1)
        {
            throw new ArgumentOutOfRangeException(nameof(topP), topP, "top_p must be in (0, 1]");
        }

        _temperature = temperature;
        _topP = topP;
        _state = seed;
    }

    /// <summary>The index of the largest logit; the lowest index among equals, NaN never chosen over a number.</summary>
    public static int ArgMax(ReadOnlySpan<float> logits)
    {
        var best = 0;
        for (var i = 1; i < logits.Length; i++)
        {
            if (logits[i] > logits[best] || (float.IsNaN(logits[best]) && !float.IsNaN(logits[i])))
            {
                best = i;
            }
        }

        return best;
    }

    /// <summary>The next token from <paramref name="logits"/> (one per vocabulary entry).</summary>
    public int Next(ReadOnlySpan<float> logits)
    {
        if (logits.IsEmpty)
        {
            throw new ArgumentException("no logits", nameof(logits));
        }

        if (_temperature == 0)
        {
            return ArgMax(logits);
        }

        var n = logits.Length;
        if (_order.Length != n)
        {
            _order = new int[n];
            _probabilities = new double[n];
        }

        var max = logits[ArgMax(logits)];
        double total = 0;
        for (var i = 0; i < n; i++)
        {
            var p = float.IsFinite(logits[i]) ? Math.Exp((logits[i] - max) / _temperature) : 0;
            _probabilities[i] = p;
            total += p;
            _order[i] = i;
        }

        if (!(total > 0) || !double.IsFinite(total))
        {
            return ArgMax(logits);
        }

        // Most likely first, the lower token first among equals: a stable order the seed can rely on.
        var probabilities = _probabilities;
        Array.Sort(_order, (a, b) => probabilities[a] != probabilities[b] ? probabilities[b].CompareTo(probabilities[a]) : a.CompareTo(b));
        var kept = 0;
        double mass = 0;
        while (kept < n && (kept == 0 || mass < _topP * total))
        {
            mass += probabilities[_order[kept]];
            kept++;
        }

        var draw = NextDouble() * mass;
        for (var i = 0; i < kept; i++)
        {
            draw -= probabilities[_order[i]];
            if (draw < 0)
            {
                return _order[i];
            }
        }

        return _order[kept - 1];
    }

    private double NextDouble()
    {
        // SplitMix64; the top 53 bits make a double in [0, 1).
        var z = _state += 0x9E3779B97F4A7C15UL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        z ^= z >> 31;
        return (z >> 11) * (1.0 / (1UL << 53));
    }
}
