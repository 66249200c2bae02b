using TorchSharp;
using static TorchSharp.torch;

namespace Emc.Compute.Training;

/// <summary>Measures a model's loss and accuracy on held-out examples without changing it.</summary>
public static class Evaluator
{
    /// <summary>
    /// Sums loss and correct predictions over the examples at <paramref name="indices"/> (window
    /// starts for a text model, each predicting context bytes), <paramref name="batchSize"/> at a
    /// time, in eval mode without gradients; the model is put back in train mode afterwards.
    /// </summary>
    public static EvalResult Evaluate(TrainableModel model, ExampleSet data, IReadOnlyList<long> indices, int batchSize)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(data);
        ArgumentNullException.ThrowIfNull(indices);
        ArgumentOutOfRangeException.ThrowIfLessThan(batchSize, 1);
        var all = indices.ToArray();
        double lossSum = 0;
        long correct = 0;
        long count = 0;
        using var noGrad = torch.no_grad();
        model.Module.eval();
        try
        {
            for (var start = 0; start < all.Length; start += batchSize)
            {
                using var scope = torch.NewDisposeScope();
                var (input, target) = model.Batch(data, all.AsSpan(start, Math.Min(batchSize, all.Length - start)));
                var logits = model.Forward(input);
                var flatLogits = logits.reshape(-1, logits.shape[^1]);
                var flatTarget = target.reshape(-1);
                lossSum += nn.functional.cross_entropy(flatLogits, flatTarget, reduction: nn.Reduction.Sum).item<float>();
                correct += flatLogits.argmax(1).eq(flatTarget).sum().item<long>();
                count += flatTarget.numel();
            }
        }
        finally
        {
            model.Module.train();
        }

        return new EvalResult(lossSum, correct, count);
    }
}
