using System.Globalization;
using System.Numerics.Tensors;

namespace Emc.Core.Verification;

/// <summary>An update that is nearly the same vector as another one.</summary>
/// <param name="Node">The member whose update is flagged.</param>
/// <param name="Source">The member it matches, or <see cref="CopyDetection.OuterStep"/> for the network's own last outer step.</param>
/// <param name="Cosine">The cosine similarity between the two.</param>
public sealed record CopyFlag(string Node, string Source, double Cosine)
{
    /// <summary>The flag in words, for round summaries and logs.</summary>
    public string Reason => Source == CopyDetection.OuterStep
        ? string.Create(CultureInfo.InvariantCulture, $"copy: its update matches the network's last outer step (cosine {Cosine:F4})")
        : string.Create(CultureInfo.InvariantCulture, $"copy: its update matches {Source}'s (cosine {Cosine:F4})");
}

/// <summary>
/// Finds updates of one round that are copies: an update whose cosine similarity to another member's
/// update, or to the network's own last outer step (the previous global weights minus the current ones,
/// which every node can compute), is at least the threshold. Both members of a near-identical pair are
/// flagged: which of them did the work is for a replay to tell. Zero and non-finite vectors are never
/// flagged here (they have no direction; the other checks judge them).
/// </summary>
/// <remarks>Costs one dot product per pair: O(n² · length) for n updates.</remarks>
public static class CopyDetection
{
    /// <summary>The <see cref="CopyFlag.Source"/> of a match with the network's last outer step.</summary>
    public const string OuterStep = "outer-step";

    /// <summary>The default threshold: 0.99, far above what honest members training on disjoint data reach.</summary>
    public const double DefaultThreshold = 0.99;

    /// <summary>
    /// Flags every update whose cosine similarity to another of <paramref name="updates"/>, or to
    /// <paramref name="lastOuterStep"/> when given, is at least <paramref name="threshold"/>. Each node is
    /// flagged once, with its closest match. Throws <see cref="ArgumentException"/> when lengths differ.
    /// </summary>
    public static IReadOnlyList<CopyFlag> Find(IReadOnlyList<(string Node, float[] Delta)> updates, float[]? lastOuterStep = null, double threshold = DefaultThreshold)
    {
        ArgumentNullException.ThrowIfNull(updates);
        if (!(threshold > 0 && threshold <= 1))
        {
            throw new ArgumentOutOfRangeException(nameof(threshold), threshold, "The copy threshold must be in (0, 1].");
        }

        if (updates.Count == 0)
        {
            return [];
        }

        var length = updates[0].Delta.Length;
        if (updates.Any(u => u.Delta.Length != length) || (lastOuterStep is not null && lastOuterStep.Length != length))
        {
            throw new ArgumentException("Every update, and the last outer step, must have the same length.", nameof(updates));
        }

        var norms = updates.Select(u => Norm(u.Delta)).ToArray();
        var best = new (string Source, double Cosine)?[updates.Count];
        void Consider(int i, string source, double cosine)
        {
            if (cosine >= threshold && (best[i] is not { } current || cosine > current.Cosine))
            {
                best[i] = (source, cosine);
            }
        }

        for (var i = 0; i < updates.Count; i++)
        {
            if (!(norms[i] > 0))
            {
                continue;
            }

            for (var j = i + 1; j < updates.Count; j++)
            {
                if (!(norms[j] > 0))
                {
                    continue;
                }

                var cosine = Cosine(updates[i].Delta, updates[j].Delta, norms[i], norms[j]);
                Consider(i, updates[j].Node, cosine);
                Consider(j, updates[i].Node, cosine);
            }
        }

        if (lastOuterStep is not null && Norm(lastOuterStep) is var stepNorm && stepNorm > 0)
        {
            for (var i = 0; i < updates.Count; i++)
            {
                if (norms[i] > 0)
                {
                    Consider(i, OuterStep, Cosine(updates[i].Delta, lastOuterStep, norms[i], stepNorm));
                }
            }
        }

        var flags = new List<CopyFlag>();
        for (var i = 0; i < updates.Count; i++)
        {
            if (best[i] is { } match)
            {
                flags.Add(new CopyFlag(updates[i].Node, match.Source, match.Cosine));
            }
        }

        return flags;
    }

    /// <summary>The L2 norm, NaN when a value is not finite.</summary>
    private static double Norm(float[] values)
    {
        var norm = (double)TensorPrimitives.Norm<float>(values);
        return double.IsFinite(norm) ? norm : double.NaN;
    }

    private static double Cosine(float[] a, float[] b, double normA, double normB) =>
        Math.Clamp(TensorPrimitives.Dot<float>(a, b) / (normA * normB), -1, 1);
}
