using System.Buffers;
using System.Numerics.Tensors;

namespace Emc.Core.Training;

/// <summary>Settings of the <see cref="OuterOptimizer"/>.</summary>
public sealed record OuterOptimizerOptions
{
    /// <summary>Outer learning rate. Default 0.7, the DiLoCo paper's value; 1 with no momentum is plain averaging.</summary>
    public double LearningRate { get; init; } = 0.7;

    /// <summary>Momentum μ in [0, 1). Default 0.9, the DiLoCo paper's value.</summary>
    public double Momentum { get; init; } = 0.9;

    /// <summary>Nesterov momentum. Default true, as in DiLoCo.</summary>
    public bool Nesterov { get; init; } = true;

    /// <summary>Throws <see cref="ArgumentOutOfRangeException"/> unless the learning rate is finite and positive and 0 ≤ μ &lt; 1.</summary>
    public void Validate()
    {
        if (!double.IsFinite(LearningRate) || LearningRate <= 0)
        {
            throw new ArgumentOutOfRangeException(nameof(LearningRate), LearningRate, "The outer learning rate must be finite and positive.");
        }

        if (!(Momentum >= 0 && Momentum < 1))
        {
            throw new ArgumentOutOfRangeException(nameof(Momentum), Momentum, "The outer momentum must be in [0, 1).");
        }
    }
}

/// <summary>
/// DiLoCo's outer optimizer: SGD on the master weights with the aggregated pseudo-gradient as the
/// gradient, with the formulas of PyTorch's <c>torch.optim.SGD</c> (no dampening, no weight decay):
/// <code>
/// buf  = μ · buf + Δ           (PyTorch sets buf = Δ on the first step; a zero buffer gives the same)
/// step = Δ + μ · buf           (Nesterov) or buf (plain)
/// W    = W − lr · step
/// </code>
/// With lr 1 and μ 0 a step is exactly W − Δ. <see cref="MomentumBuffer"/> is the whole state: save
/// it with <see cref="WeightsCodec"/> and pass it back to the constructor to resume.
/// </summary>
public sealed class OuterOptimizer
{
    private const int ChunkSize = 4096;

    private readonly float _learningRate;
    private readonly float _momentum;
    private readonly bool _nesterov;

    /// <summary>A fresh optimizer for a model of <paramref name="length"/> parameters (zero momentum).</summary>
    public OuterOptimizer(OuterOptimizerOptions options, int length)
        : this(options, new float[CheckLength(length)])
    {
    }

    /// <summary>Resumes from a saved <paramref name="momentumBuffer"/> (copied; it must be finite).</summary>
    public OuterOptimizer(OuterOptimizerOptions options, ReadOnlySpan<float> momentumBuffer)
        : this(options, momentumBuffer.ToArray())
    {
        if (!FiniteValues.All(momentumBuffer))
        {
            throw new ArgumentException("The saved momentum has NaN or infinite values.", nameof(momentumBuffer));
        }
    }

    private OuterOptimizer(OuterOptimizerOptions options, float[] momentumBuffer)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        Options = options;
        _learningRate = (float)options.LearningRate;
        _momentum = (float)options.Momentum;
        _nesterov = options.Nesterov;
        MomentumBuffer = momentumBuffer;
    }

    public OuterOptimizerOptions Options { get; }

    /// <summary>The momentum buffer, one value per parameter: the optimizer's state to checkpoint. Updated in place by <see cref="Step"/>.</summary>
    public float[] MomentumBuffer { get; }

    /// <summary>Applies one outer step to <paramref name="weights"/> in place with the aggregated pseudo-gradient <paramref name="delta"/>.</summary>
    public void Step(Span<float> weights, ReadOnlySpan<float> delta)
    {
        if (weights.Length != MomentumBuffer.Length || delta.Length != MomentumBuffer.Length)
        {
            throw new ArgumentException(
                $"The optimizer has {MomentumBuffer.Length} parameters; got {weights.Length} weights and {delta.Length} delta values.");
        }

        var buffer = MomentumBuffer.AsSpan();

        // buf = μ·buf + Δ, rounded after the product and after the sum, as PyTorch's mul_ then add_.
        TensorPrimitives.MultiplyAdd(buffer, _momentum, delta, buffer);
        if (!_nesterov)
        {
            TensorPrimitives.MultiplyAdd(buffer, -_learningRate, weights, weights);
            return;
        }

        var step = ArrayPool<float>.Shared.Rent(Math.Min(ChunkSize, buffer.Length));
        try
        {
            for (var start = 0; start < buffer.Length; start += ChunkSize)
            {
                var length = Math.Min(ChunkSize, buffer.Length - start);
                var chunk = step.AsSpan(0, length);
                TensorPrimitives.MultiplyAdd(buffer.Slice(start, length), _momentum, delta.Slice(start, length), chunk);
                TensorPrimitives.MultiplyAdd(chunk, -_learningRate, weights.Slice(start, length), weights.Slice(start, length));
            }
        }
        finally
        {
            ArrayPool<float>.Shared.Return(step);
        }
    }

    private static int CheckLength(int length)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(length);
        return length;
    }
}
