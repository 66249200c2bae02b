using System.Diagnostics;
using TorchSharp;
using static TorchSharp.torch;

namespace Emc.Compute.Training;

/// <summary>
/// Runs DiLoCo inner steps on a node: one optimizer step per batch the coordinator assigned.
/// The optimizer (AdamW moments, SGD momentum) lives as long as the trainer and the model it
/// was first used with, so a node that stays in a job carries its moments from round to round
/// while the canonical weights are written into the same parameters.
/// </summary>
public sealed class InnerTrainer : IDisposable
{
    private TrainableModel? _model;
    private optim.Optimizer? _optimizer;

    /// <exception cref="ArgumentException">The options are not valid; the message lists why.</exception>
    public InnerTrainer(InnerOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        var errors = options.Validate();
        if (errors.Count > 0)
        {
            throw new ArgumentException($"invalid inner options: {string.Join("; ", errors)}", nameof(options));
        }

        Options = options;
    }

    public InnerOptions Options { get; }

    /// <summary>
    /// Runs one step per entry of <paramref name="batches"/> (example indices, or window starts
    /// for text), the first being global step <paramref name="stepOffset"/> for the learning-rate
    /// schedule and the dropout stream. Uses the model in train mode and leaves the trained
    /// weights in it. A model other than the last one gets a fresh optimizer.
    /// </summary>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> was cancelled; it is checked between steps, and steps already taken stay in the model.</exception>
    public InnerResult Run(TrainableModel model, ExampleSet data, IReadOnlyList<long[]> batches, long stepOffset, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(data);
        ArgumentNullException.ThrowIfNull(batches);
        ArgumentOutOfRangeException.ThrowIfNegative(stepOffset);
        var optimizer = OptimizerFor(model);
        var parameters = model.TrainableParameters.ToList();
        var stopwatch = Stopwatch.StartNew();
        var losses = new float[batches.Count];
        long samples = 0;

        model.Module.train();
        model.ReseedDropout(stepOffset);
        for (var step = 0; step < batches.Count; step++)
        {
            cancellationToken.ThrowIfCancellationRequested();
            var batch = batches[step];
            if (batch is null || batch.Length == 0)
            {
                throw new ArgumentException($"batch {step} is empty", nameof(batches));
            }

            using var scope = torch.NewDisposeScope();
            var learningRate = Options.LearningRateAt(stepOffset + step);
            foreach (var group in optimizer.ParamGroups)
            {
                group.LearningRate = learningRate;
            }

            optimizer.zero_grad();
            var micro = Options.MicroBatch <= 0 ? batch.Length : Math.Min(Options.MicroBatch, batch.Length);
            double loss = 0;
            for (var start = 0; start < batch.Length; start += micro)
            {
                var count = Math.Min(micro, batch.Length - start);
                var (input, target) = model.Batch(data, batch.AsSpan(start, count));
                var microLoss = model.Loss(model.Forward(input), target);

                // Each micro-batch's mean is weighted by its share, so the accumulated gradient
                // is the whole batch's mean gradient (text windows all hold the same number of tokens).
                var scaled = count == batch.Length ? microLoss : microLoss.mul((double)count / batch.Length);
                scaled.backward();
                loss += scaled.item<float>();
            }

            if (Options.GradClip > 0)
            {
                nn.utils.clip_grad_norm_(parameters, Options.GradClip);
            }

            optimizer.step();
            losses[step] = (float)loss;
            samples += batch.Length;
        }

        return new InnerResult(losses, samples, stopwatch.Elapsed);
    }

    /// <summary>Forgets the optimizer state (moments, momentum): the next run starts afresh.</summary>
    public void ResetState()
    {
        _optimizer?.Dispose();
        _optimizer = null;
        _model = null;
    }

    public void Dispose() => ResetState();

    private optim.Optimizer OptimizerFor(TrainableModel model)
    {
        if (_optimizer is not null && ReferenceEquals(_model, model))
        {
            return _optimizer;
        }

        ResetState();
        var parameters = model.TrainableParameters.ToList();
        var o = Options;
        _optimizer = o.Optimizer switch
        {
            InnerOptions.AdamW => optim.AdamW(parameters, o.LearningRate, o.Beta1, o.Beta2, weight_decay: o.WeightDecay),
            InnerOptions.Adam => optim.Adam(parameters, o.LearningRate, o.Beta1, o.Beta2, weight_decay: o.WeightDecay),
            _ => optim.SGD(parameters, o.LearningRate, o.Momentum, weight_decay: o.WeightDecay),
        };
        _model = model;
        return _optimizer;
    }
}
