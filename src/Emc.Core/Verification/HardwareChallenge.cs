using System.Globalization;
using System.Numerics.Tensors;

namespace Emc.Core.Verification;

/// <summary>
/// The input of a "challenge" task: a chain of dense fp32 matrix products that the node computes on its
/// device, so that the coordinator can time it against the node's claimed benchmark and check the result.
/// A and B are n×n matrices drawn from <see cref="Seed"/> (<see cref="MatmulChallenge.Fill"/>); the node
/// computes M₀ = B, Mᵢ = A · roll(Mᵢ₋₁, sᵢ) for i = 1..k, where roll shifts the rows down by sᵢ
/// (<see cref="MatmulChallenge.Shift"/>, as <c>torch.roll(M, sᵢ, 0)</c>), and returns C = Mₖ.
/// The rolls make every product a different one, so nothing short of k products gives C, and the work
/// (k · 2n³ flops) grows without the result growing.
/// </summary>
public sealed record ChallengeWork
{
    /// <summary>The task kind nodes run challenges under.</summary>
    public const string TaskKind = "challenge";

    public long Seed { get; init; }

    /// <summary>n, the side of the matrices.</summary>
    public int Size { get; init; }

    /// <summary>k, the products in the chain.</summary>
    public int Products { get; init; }

    /// <summary>Floating-point operations of the whole chain: k · 2n³.</summary>
    public double Flops => 2.0 * Size * (double)Size * Size * Products;
}

/// <summary>
/// The output of a "challenge" task. The node answers as soon as it has C, with the hash of C, and then
/// uploads C as a blob (<see cref="Core.Training.WeightsCodec"/>, n² values, row-major): the answer is
/// timed, the upload is not. Committing to the hash first costs a cheat nothing it could save: no matrix
/// with that hash can be found after the fact, so the node had C when it answered.
/// </summary>
/// <param name="Result">sha256 of the encoded C.</param>
public sealed record ChallengeReport(string Result);

/// <summary>
/// The arithmetic of hardware challenges: sizing for a claimed speed, the deterministic matrices, and
/// Freivalds' check of the result in O(k · n²) instead of O(k · n³).
/// </summary>
public static class MatmulChallenge
{
    /// <summary>The sides a challenge uses, smallest first.</summary>
    public static IReadOnlyList<int> Sizes { get; } = [256, 512, 1024, 2048, 4096];

    /// <summary>The fewest products a sized challenge has (below it the fixed costs of a task dominate).</summary>
    public const int MinProducts = 4;

    /// <summary>The most products: bounds the coordinator's check (2 · k · n² multiply-adds per vector).</summary>
    public const int MaxProducts = 256;

    /// <summary>
    /// The challenge that takes about <paramref name="seconds"/> at <paramref name="claimedGflops"/>: the largest
    /// side n whose chain still has <see cref="MinProducts"/> products, and k = seconds · speed / 2n³ products
    /// (at most <see cref="MaxProducts"/>).
    /// </summary>
    public static ChallengeWork Size(double claimedGflops, double seconds, long seed)
    {
        if (!(claimedGflops > 0) || !double.IsFinite(claimedGflops) || !(seconds > 0) || !double.IsFinite(seconds))
        {
            throw new ArgumentOutOfRangeException(nameof(claimedGflops), "The claimed speed and the duration must be positive and finite.");
        }

        var budget = claimedGflops * 1e9 * seconds;
        var size = Sizes[0];
        foreach (var candidate in Sizes)
        {
            if (budget / ProductFlops(candidate) >= MinProducts)
            {
                size = candidate;
            }
        }

        var products = (int)Math.Clamp(Math.Round(budget / ProductFlops(size)), 1, MaxProducts);
        return new ChallengeWork { Seed = seed, Size = size, Products = products };
    }

    /// <summary>Seconds the challenge takes at <paramref name="gflops"/>.</summary>
    public static double SecondsAt(ChallengeWork work, double gflops)
    {
        ArgumentNullException.ThrowIfNull(work);
        return work.Flops / (gflops * 1e9);
    }

    /// <summary>The problems with a challenge a node was given, empty when it can run.</summary>
    public static IReadOnlyList<string> Validate(ChallengeWork work)
    {
        ArgumentNullException.ThrowIfNull(work);
        var errors = new List<string>();
        if (!Sizes.Contains(work.Size))
        {
            errors.Add($"the size must be one of {string.Join(", ", Sizes)}, not {work.Size}");
        }

        if (work.Products is < 1 or > MaxProducts)
        {
            errors.Add($"the products must be between 1 and {MaxProducts}, not {work.Products}");
        }

        return errors;
    }

    /// <summary>
    /// Fills <paramref name="destination"/> (n² values, row-major) with matrix <paramref name="matrix"/> of the
    /// challenge: 0 is A, with values uniform in ±√(3/n) (variance 1/n, so a product keeps the scale of its
    /// input); 1 is B, uniform in [−1, 1). A counter-based generator: any element can be computed alone.
    /// </summary>
    public static void Fill(long seed, int matrix, int size, Span<float> destination)
    {
        if (destination.Length != size * size)
        {
            throw new ArgumentException($"A {size}×{size} matrix has {size * size} values, not {destination.Length}.", nameof(destination));
        }

        var scale = matrix == 0 ? (float)Math.Sqrt(3.0 / size) : 1f;
        var stream = Mix(unchecked((ulong)seed) ^ Mix((ulong)(matrix + 1)));
        for (var i = 0; i < destination.Length; i++)
        {
            var bits = Mix(stream + ((ulong)i * 0x9E3779B97F4A7C15UL));
            var unit = (float)((bits >> 40) * (1.0 / (1UL << 24))); // [0, 1)
            destination[i] = ((2 * unit) - 1) * scale;
        }
    }

    /// <summary>sᵢ, the row shift before product <paramref name="index"/> (1-based), in [0, n).</summary>
    public static int Shift(long seed, int index, int size) =>
        (int)(Mix(unchecked((ulong)seed) ^ Mix(0xC0FFEEUL + (ulong)index)) % (ulong)size);

    /// <summary>
    /// Freivalds' check of a claimed C: for <paramref name="vectors"/> random ±1 vectors r, C·r is compared
    /// with the chain applied to B·r (A · roll(u, sᵢ) repeated), whose cost is 2 · k · n² multiply-adds per
    /// vector. Returns the largest relative error ‖C·r − expected‖ / ‖expected‖ over the vectors.
    /// </summary>
    public static double Check(ChallengeWork work, ReadOnlySpan<float> c, Random random, int vectors = 2)
    {
        ArgumentNullException.ThrowIfNull(work);
        ArgumentNullException.ThrowIfNull(random);
        var n = work.Size;
        if (c.Length != n * n)
        {
            return double.PositiveInfinity;
        }

        var a = new float[n * n];
        var b = new float[n * n];
        Fill(work.Seed, 0, n, a);
        Fill(work.Seed, 1, n, b);
        var r = new float[n];
        var u = new float[n];
        var shifted = new float[n];
        var claimed = new float[n];
        double worst = 0;
        for (var v = 0; v < vectors; v++)
        {
            for (var i = 0; i < n; i++)
            {
                r[i] = random.Next(2) == 0 ? -1f : 1f;
            }

            MultiplyRows(b, r, u, n);
            for (var step = 1; step <= work.Products; step++)
            {
                var s = Shift(work.Seed, step, n);
                for (var j = 0; j < n; j++)
                {
                    shifted[j] = u[((j - s) % n + n) % n];
                }

                MultiplyRows(a, shifted, u, n);
            }

            MultiplyRows(c, r, claimed, n);
            double diff = 0, norm = 0;
            for (var i = 0; i < n; i++)
            {
                double d = claimed[i] - (double)u[i];
                diff += d * d;
                norm += (double)u[i] * u[i];
            }

            var error = norm > 0 ? Math.Sqrt(diff / norm) : (diff > 0 ? double.PositiveInfinity : 0);
            worst = double.IsNaN(error) ? double.PositiveInfinity : Math.Max(worst, error);
        }

        return worst;
    }

    /// <summary>The chain computed directly, for tests and reference: O(k · n³).</summary>
    public static float[] Compute(ChallengeWork work)
    {
        ArgumentNullException.ThrowIfNull(work);
        var n = work.Size;
        var a = new float[n * n];
        var m = new float[n * n];
        Fill(work.Seed, 0, n, a);
        Fill(work.Seed, 1, n, m);
        var rolled = new float[n * n];
        var next = new float[n * n];
        var column = new float[n];
        for (var step = 1; step <= work.Products; step++)
        {
            var s = Shift(work.Seed, step, n);
            for (var row = 0; row < n; row++)
            {
                m.AsSpan(((row - s) % n + n) % n * n, n).CopyTo(rolled.AsSpan(row * n, n));
            }

            for (var j = 0; j < n; j++)
            {
                for (var k = 0; k < n; k++)
                {
                    column[k] = rolled[(k * n) + j];
                }

                for (var i = 0; i < n; i++)
                {
                    next[(i * n) + j] = TensorPrimitives.Dot<float>(a.AsSpan(i * n, n), column);
                }
            }

            (m, next) = (next, m);
        }

        return m;
    }

    /// <summary>The verdict on a challenge's time, in words, and whether it is a proven overstatement.</summary>
    /// <param name="work">The challenge.</param>
    /// <param name="claimedGflops">The speed the node claimed at admission.</param>
    /// <param name="seconds">The time the coordinator measured (lease accepted to answer received), or waited in vain.</param>
    /// <param name="tolerance">How many times slower than claimed a node may be.</param>
    /// <param name="graceSeconds">Seconds added for the task's own latency.</param>
    /// <param name="answered">False when the node had not answered after <paramref name="seconds"/>.</param>
    public static (bool TooSlow, string Evidence) JudgeTime(ChallengeWork work, double claimedGflops, double seconds, double tolerance, double graceSeconds, bool answered = true)
    {
        ArgumentNullException.ThrowIfNull(work);
        var expected = SecondsAt(work, claimedGflops);
        var limit = (tolerance * expected) + graceSeconds;
        var achieved = work.Flops / Math.Max(seconds, 1e-9) / 1e9;
        var evidence = answered
            ? string.Create(
                CultureInfo.InvariantCulture,
                $"{work.Products} products of {work.Size}×{work.Size} took {seconds:0.###} s ({achieved:0.#} GFLOP/s), {seconds / expected:0.##}× the {expected:0.###} s they take at the claimed {claimedGflops:0.#} GFLOP/s; the limit is {limit:0.###} s")
            : string.Create(
                CultureInfo.InvariantCulture,
                $"{work.Products} products of {work.Size}×{work.Size} were not done after {seconds:0.###} s (under {achieved:0.#} GFLOP/s), {seconds / expected:0.##}× the {expected:0.###} s they take at the claimed {claimedGflops:0.#} GFLOP/s; the limit is {limit:0.###} s");
        return (!answered || seconds > limit, evidence);
    }

    private static void MultiplyRows(ReadOnlySpan<float> matrix, float[] vector, float[] result, int n)
    {
        for (var i = 0; i < n; i++)
        {
            result[i] = TensorPrimitives.Dot<float>(matrix.Slice(i * n, n), vector);
        }
    }

    private static ulong ProductFlops(int size) => 2UL * (ulong)size * (ulong)size * (ulong)size;

    /// <summary>SplitMix64's finaliser.</summary>
    private static ulong Mix(ulong z)
    {
        z += 0x9E3779B97F4A7C15UL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }
}
