using System.Globalization;
using System.Runtime.InteropServices;
using Emc.Core.Inference;

namespace Emc.Core.Verification;

/// <summary>
/// Decides whether two executions of one inference request agree: the same output names, datatypes and
/// shapes, integer, BOOL and BYTES elements equal, and floating-point elements within
/// <c>|a − b| ≤ AbsoluteTolerance + RelativeTolerance · max(|a|, |b|)</c> (NaN agrees only with NaN).
/// The tolerances absorb what differs between honest devices — kernel choice, fused multiply-add,
/// reduction order, a GPU against a CPU — and nothing a wrong answer needs.
/// </summary>
public sealed record OutputComparer
{
    /// <summary>The default: 1e-4 absolute plus 1e-3 relative, well above the float32 differences between devices for models of ordinary depth.</summary>
    public static OutputComparer Default { get; } = new();

    /// <summary>The absolute part of the tolerance. Default 1e-4.</summary>
    public double AbsoluteTolerance { get; init; } = 1e-4;

    /// <summary>The relative part of the tolerance. Default 1e-3.</summary>
    public double RelativeTolerance { get; init; } = 1e-3;

    /// <summary>Null when <paramref name="first"/> and <paramref name="second"/> agree; otherwise the first disagreement, in words.</summary>
    public string? Disagreement(IReadOnlyList<InferTensor> first, IReadOnlyList<InferTensor> second)
    {
        ArgumentNullException.ThrowIfNull(first);
        ArgumentNullException.ThrowIfNull(second);
        if (first.Count != second.Count)
        {
            return $"{first.Count} outputs against {second.Count}";
        }

        foreach (var a in first)
        {
            InferTensor? b = null;
            foreach (var candidate in second)
            {
                if (string.Equals(candidate.Name, a.Name, StringComparison.Ordinal))
                {
                    b = candidate;
                    break;
                }
            }

            if (b is null)
            {
                return $"output '{a.Name}' is missing from the other answer";
            }

            if (TensorDisagreement(a, b) is { } problem)
            {
                return $"output '{a.Name}': {problem}";
            }
        }

        return null;
    }

    private string? TensorDisagreement(InferTensor a, InferTensor b)
    {
        if (a.Datatype != b.Datatype)
        {
            return $"{a.Datatype.ToWireName()} against {b.Datatype.ToWireName()}";
        }

        if (!a.Shape.SequenceEqual(b.Shape))
        {
            return $"shape [{string.Join(',', a.Shape)}] against [{string.Join(',', b.Shape)}]";
        }

        switch (a.Datatype)
        {
            case TensorDatatype.Bytes:
                for (var i = 0; i < a.Elements.Count; i++)
                {
                    if (!a.Elements[i].Span.SequenceEqual(b.Elements[i].Span))
                    {
                        return $"element {i} differs";
                    }
                }

                return null;
            case TensorDatatype.Fp64:
                return Compare(MemoryMarshal.Cast<byte, double>(a.Data.Span), MemoryMarshal.Cast<byte, double>(b.Data.Span));
            case TensorDatatype.Fp32 or TensorDatatype.Fp16 or TensorDatatype.Bf16:
                var x = a.ToFloatArray();
                var y = b.ToFloatArray();
                var wide = new double[x.Length];
                var other = new double[y.Length];
                for (var i = 0; i < x.Length; i++)
                {
                    wide[i] = x[i];
                    other[i] = y[i];
                }

                return Compare(wide, other);
            default:
                return a.Data.Span.SequenceEqual(b.Data.Span) ? null : "integer elements differ";
        }
    }

    private string? Compare(ReadOnlySpan<double> a, ReadOnlySpan<double> b)
    {
        if (a.Length != b.Length)
        {
            return $"{a.Length} elements against {b.Length}";
        }

        for (var i = 0; i < a.Length; i++)
        {
            var x = a[i];
            var y = b[i];
            if (double.IsNaN(x) || double.IsNaN(y))
            {
                if (double.IsNaN(x) != double.IsNaN(y))
                {
                    return $"element {i}: {Text(x)} against {Text(y)}";
                }

                continue;
            }

            if (x == y)
            {
                continue;
            }

            var bound = AbsoluteTolerance + (RelativeTolerance * Math.Max(Math.Abs(x), Math.Abs(y)));
            if (!(Math.Abs(x - y) <= bound))
            {
                return $"element {i}: {Text(x)} against {Text(y)} (tolerance {Text(bound)})";
            }
        }

        return null;
    }

    private static string Text(double value) => value.ToString("G6", CultureInfo.InvariantCulture);
}
