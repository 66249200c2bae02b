namespace Emc.Compute.Training;

/// <summary>
/// Sums from an evaluation pass, so that results over several shards or nodes add up before
/// dividing. For text, <see cref="Count"/> counts predicted bytes (windows × context).
/// </summary>
/// <param name="LossSum">Cross-entropy summed over the predictions (nats).</param>
/// <param name="Correct">Predictions whose arg-max was the label (the next byte for text).</param>
/// <param name="Count">Predictions made.</param>
public sealed record EvalResult(double LossSum, long Correct, long Count)
{
    /// <summary>Mean loss per prediction; NaN when nothing was evaluated.</summary>
    public double MeanLoss => Count == 0 ? double.NaN : LossSum / Count;

    /// <summary>Fraction of correct predictions; NaN when nothing was evaluated.</summary>
    public double Accuracy => Count == 0 ? double.NaN : (double)Correct / Count;

    /// <summary>The sums of two disjoint evaluations.</summary>
    public EvalResult Add(EvalResult other)
    {
        ArgumentNullException.ThrowIfNull(other);
        return new EvalResult(LossSum + other.LossSum, Correct + other.Correct, Count + other.Count);
    }
}
