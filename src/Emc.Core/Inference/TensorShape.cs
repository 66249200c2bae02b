using System.Globalization;
using System.Text;

namespace Emc.Core.Inference;

/// <summary>Shape arithmetic shared by tensors, the codec and validation.</summary>
public static class TensorShape
{
    /// <summary>
    /// The number of elements of a tensor of <paramref name="shape"/> (1 for a scalar, rank 0); false with
    /// a reason when a dimension is negative or the product does not fit in 64 bits.
    /// </summary>
    public static bool TryGetElementCount(ReadOnlySpan<long> shape, out long count, out string? error)
    {
        count = 0;
        var hasZero = false;
        foreach (var dim in shape)
        {
            if (dim < 0)
            {
                error = $"shape {Format(shape)} has a negative dimension";
                return false;
            }

            hasZero |= dim == 0;
        }

        error = null;
        if (hasZero)
        {
            // [huge, huge, 0] is a valid empty tensor even though a running product would overflow.
            return true;
        }

        long product = 1;
        foreach (var dim in shape)
        {
            if (product > long.MaxValue / dim)
            {
                error = $"shape {Format(shape)} has more elements than fit in 64 bits";
                return false;
            }

            product *= dim;
        }

        count = product;
        return true;
    }

    /// <summary>A shape as JSON shows it: "[2,3]", "[]", "[-1,4]".</summary>
    public static string Format(ReadOnlySpan<long> shape)
    {
        var text = new StringBuilder("[");
        for (var i = 0; i < shape.Length; i++)
        {
            if (i > 0)
            {
                text.Append(',');
            }

            text.Append(shape[i].ToString(CultureInfo.InvariantCulture));
        }

        return text.Append(']').ToString();
    }

    /// <inheritdoc cref="Format(ReadOnlySpan{long})"/>
    public static string Format(IReadOnlyList<long> shape)
    {
        ArgumentNullException.ThrowIfNull(shape);
        return Format(shape.ToArray());
    }
}
