using System.Numerics.Tensors;

namespace Emc.Core.Training;

/// <summary>The one finiteness test of the training maths.</summary>
internal static class FiniteValues
{
    /// <summary>
    /// Whether no value is NaN or infinite. <see cref="TensorPrimitives.IsFiniteAll{T}(ReadOnlySpan{T})"/>
    /// answers false for an empty span, which would make an empty model "non-finite".
    /// </summary>
    public static bool All(ReadOnlySpan<float> values) => values.IsEmpty || TensorPrimitives.IsFiniteAll(values);
}
