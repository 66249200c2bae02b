using Emc.Compute.Inference;
using Emc.Core.Inference;

namespace Emc.Node.Inference;

/// <summary>A loaded model a replica runs batches on: an ONNX session or a torch module.</summary>
public interface IServedModel : IDisposable
{
    /// <summary>The inputs the model takes, -1 for a variable dimension.</summary>
    IReadOnlyList<OnnxTensorInfo> Inputs { get; }

    /// <summary>The outputs the model produces.</summary>
    IReadOnlyList<OnnxTensorInfo> Outputs { get; }

    /// <summary>
    /// Whether requests can be stacked along the first dimension: every input has a variable first
    /// dimension. When false each request runs alone.
    /// </summary>
    bool Batchable { get; }

    /// <summary>
    /// Runs one batch and returns the outputs named in <paramref name="outputs"/> (all of them when null),
    /// in that order. Throws <see cref="ArgumentException"/> when the inputs do not fit the model (the
    /// caller's fault); any other exception is the model's failure.
    /// </summary>
    ValueTask<IReadOnlyList<InferTensor>> RunAsync(
        IReadOnlyList<InferTensor> inputs,
        IReadOnlyCollection<string>? outputs,
        CancellationToken cancellationToken);
}

/// <summary>An ONNX model in ONNX Runtime.</summary>
public sealed class OnnxServedModel(OnnxSession session) : IServedModel
{
    public IReadOnlyList<OnnxTensorInfo> Inputs => session.Info.Inputs;

    public IReadOnlyList<OnnxTensorInfo> Outputs => session.Info.Outputs;

    public bool Batchable { get; } = session.Info.Inputs.All(i => i.Shape.Count > 0 && i.Shape[0] < 0);

    public ValueTask<IReadOnlyList<InferTensor>> RunAsync(
        IReadOnlyList<InferTensor> inputs,
        IReadOnlyCollection<string>? outputs,
        CancellationToken cancellationToken) =>
        ValueTask.FromResult(session.Run(inputs, outputs, cancellationToken));

    public void Dispose() => session.Dispose();
}

/// <summary>A zoo model with trained weights, or a TorchScript module: one input, the logits out.</summary>
public sealed class TorchServedModel : IServedModel
{
    private readonly TorchModelRunner _runner;

    /// <summary>Serves <paramref name="runner"/> (now owned) under the given tensor names.</summary>
    public TorchServedModel(TorchModelRunner runner, string inputName, string outputName)
    {
        ArgumentNullException.ThrowIfNull(runner);
        _runner = runner;
        Inputs = [new OnnxTensorInfo(inputName, runner.InputDatatype, runner.InputShape)];
        Outputs = [new OnnxTensorInfo(outputName, TensorDatatype.Fp32, runner.OutputShape)];
    }

    public IReadOnlyList<OnnxTensorInfo> Inputs { get; }

    public IReadOnlyList<OnnxTensorInfo> Outputs { get; }

    public bool Batchable => true;

    public async ValueTask<IReadOnlyList<InferTensor>> RunAsync(
        IReadOnlyList<InferTensor> inputs,
        IReadOnlyCollection<string>? outputs,
        CancellationToken cancellationToken)
    {
        var name = Inputs[0].Name;
        if (inputs is not [var input] || input.Name != name)
        {
            throw new ArgumentException($"the model takes one input, '{name}'");
        }

        if (outputs is not null && outputs.Any(o => o != Outputs[0].Name))
        {
            throw new ArgumentException($"the model has one output, '{Outputs[0].Name}'");
        }

        return [await _runner.RunAsync(input, Outputs[0].Name, cancellationToken)];
    }

    public void Dispose() => _runner.Dispose();
}
