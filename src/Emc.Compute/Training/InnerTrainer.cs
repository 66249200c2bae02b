using System.Diagnostics;
using Emc.Core.Training;
using TorchSharp;
using TorchSharp.Modules;
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

    /// <summary>
    /// The optimizer's state — per-parameter moments and step counts — in the <see cref="InnerStateCodec"/>
    /// format, or null while it has none (no optimizer yet, one that never stepped, or plain SGD, which keeps
    /// nothing). A node commits to it before its steps, so that a replay can start where it started.
    /// </summary>
    public byte[]? ExportState()
    {
        if (_optimizer is not OptimizerHelper helper || _model is null)
        {
            return null;
        }

        var parameters = _model.TrainableParameters.ToList();
        var states = helper.state_dict().State;
        if (states.Count != parameters.Count)
        {
            throw new InvalidOperationException($"The optimizer holds {states.Count} states for {parameters.Count} parameters.");
        }

        var entries = new List<InnerStateEntry>(states.Count);
        var any = false;
        for (var i = 0; i < states.Count; i++)
        {
            var count = parameters[i].numel();
            switch (states[i])
            {
                case AdamW.State adamw:
                    entries.Add(new InnerStateEntry(adamw.step, count, [Floats(adamw.exp_avg), Floats(adamw.exp_avg_sq)]));
                    any |= adamw.step > 0;
                    break;
                case Adam.State adam:
                    entries.Add(new InnerStateEntry(adam.step, count, [Floats(adam.exp_avg), Floats(adam.exp_avg_sq)]));
                    any |= adam.step > 0;
                    break;
                case SGD.State sgd:
                    entries.Add(new InnerStateEntry(0, count, sgd.momentum_buffer is { } buffer ? [Floats(buffer)] : []));
                    any |= sgd.momentum_buffer is not null;
                    break;
                default:
                    throw new InvalidOperationException($"The optimizer state {states[i].GetType().Name} cannot be exported.");
            }
        }

        return any ? InnerStateCodec.Encode(Kind, entries) : null;
    }

    /// <summary>
    /// Starts a fresh optimizer for <paramref name="model"/> and loads <paramref name="state"/> into it (from
    /// <see cref="ExportState"/>, possibly on another node): the next <see cref="Run"/> continues from it.
    /// </summary>
    /// <exception cref="InvalidDataException">The state is malformed or belongs to another optimizer or model.</exception>
    public void ImportState(TrainableModel model, ReadOnlySpan<byte> state)
    {
        ArgumentNullException.ThrowIfNull(model);
        var (kind, entries) = InnerStateCodec.Decode(state, model.VectorLength);
        if (kind != Kind)
        {
            throw new InvalidDataException($"The state is of a {kind} optimizer, the job runs {Options.Optimizer}.");
        }

        ResetState();
        var helper = (OptimizerHelper)OptimizerFor(model);
        var parameters = model.TrainableParameters.ToList();
        var states = helper.state_dict().State;
        if (entries.Count != states.Count)
        {
            throw new InvalidDataException($"The state has {entries.Count} entries; the model has {states.Count} parameters.");
        }

        using var noGrad = torch.no_grad();
        for (var i = 0; i < entries.Count; i++)
        {
            var entry = entries[i];
            var parameter = parameters[i];
            if (entry.Count != parameter.numel())
            {
                throw new InvalidDataException($"Entry {i} has {entry.Count} values; parameter {i} has {parameter.numel()}.");
            }

            switch (states[i])
            {
                case AdamW.State adamw when entry.Moments.Count == 2:
                    adamw.step = entry.Step;
                    Load(adamw.exp_avg, entry.Moments[0]);
                    Load(adamw.exp_avg_sq, entry.Moments[1]);
                    break;
                case Adam.State adam when entry.Moments.Count == 2:
                    adam.step = entry.Step;
                    Load(adam.exp_avg, entry.Moments[0]);
                    Load(adam.exp_avg_sq, entry.Moments[1]);
                    break;
                case SGD.State sgd when entry.Moments.Count <= 1:
                    if (entry.Moments.Count == 1)
                    {
                        sgd.momentum_buffer = torch.zeros_like(parameter).DetachFromDisposeScope();
                        Load(sgd.momentum_buffer, entry.Moments[0]);
                    }

                    break;
                default:
                    throw new InvalidDataException($"Entry {i} has {entry.Moments.Count} moments, which does not fit a {kind} optimizer.");
            }
        }
    }

    private InnerStateKind Kind => Options.Optimizer switch
    {
        InnerOptions.AdamW => InnerStateKind.AdamW,
        InnerOptions.Adam => InnerStateKind.Adam,
        _ => InnerStateKind.Sgd,
    };

    private static float[] Floats(Tensor tensor)
    {
        using var cpu = tensor.detach().cpu().contiguous();
        return cpu.data<float>().ToArray();
    }

    private static void Load(Tensor destination, float[] values)
    {
        using var source = torch.tensor(values, destination.shape);
        destination.copy_(source);
    }

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
