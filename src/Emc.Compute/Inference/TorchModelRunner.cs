using System.Runtime.InteropServices;
using Emc.Compute.Training;
using Emc.Core.Inference;
using TorchSharp;
using static TorchSharp.torch;

namespace Emc.Compute.Inference;

/// <summary>
/// Serves a <see cref="TrainableModel"/> (a zoo model with trained weights, or a TorchScript module)
/// the way <see cref="OnnxSession"/> serves an ONNX file: one input tensor in the Open Inference
/// Protocol's form in, the logits out. Every torch call runs on one <see cref="TorchThread"/>, in eval
/// mode without gradients. The runner owns and disposes the model.
/// </summary>
public sealed class TorchModelRunner : IDisposable
{
    private readonly TrainableModel _model;
    private readonly TorchThread _thread;
    private bool _disposed;

    /// <summary>Takes <paramref name="model"/> (now owned by the runner) and puts it in eval mode.</summary>
    public TorchModelRunner(TrainableModel model)
    {
        ArgumentNullException.ThrowIfNull(model);
        _model = model;
        _thread = new TorchThread("emc-serve");
        _thread.RunAsync(
            () =>
            {
                model.Module.eval();
                return true;
            },
            CancellationToken.None).GetAwaiter().GetResult();
    }

    /// <summary>The input's datatype: INT64 byte tokens [B, T] for a text model, FP32 [B, ...sample] otherwise.</summary>
    public TensorDatatype InputDatatype => _model.IsText ? TensorDatatype.Int64 : TensorDatatype.Fp32;

    /// <summary>The input's shape, -1 for the batch (and the sequence of a text model).</summary>
    public IReadOnlyList<long> InputShape => _model.IsText ? [-1, -1] : [-1, .. _model.SampleShape.Select(d => (long)d)];

    /// <summary>The logits' shape: [-1, classes], or [-1, -1, 256] for a text model.</summary>
    public IReadOnlyList<long> OutputShape => _model.IsText ? [-1, -1, Core.Training.ModelSpec.ByteVocabulary] : [-1, _model.Classes];

    /// <summary>Runs one batch and returns the FP32 logits as the tensor <paramref name="outputName"/>.</summary>
    /// <exception cref="ArgumentException">The input's datatype or shape does not fit the model.</exception>
    public Task<InferTensor> RunAsync(InferTensor input, string outputName, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(input);
        ArgumentException.ThrowIfNullOrEmpty(outputName);
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (input.Datatype != InputDatatype)
        {
            throw new ArgumentException($"the model takes {InputDatatype.ToWireName()} input, not {input.Datatype.ToWireName()}");
        }

        var expected = InputShape;
        if (input.Shape.Count != expected.Count || Enumerable.Range(0, expected.Count).Any(i => expected[i] >= 0 && expected[i] != input.Shape[i]))
        {
            throw new ArgumentException($"the model takes input of shape [{string.Join(", ", expected)}], not [{string.Join(", ", input.Shape)}]");
        }

        return _thread.RunAsync(() => Run(input, outputName), cancellationToken);
    }

    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }

        _disposed = true;
        _thread.Dispose();
        _model.Dispose();
    }

    private InferTensor Run(InferTensor input, string outputName)
    {
        using var scope = torch.NewDisposeScope();
        using var noGrad = torch.no_grad();
        var shape = input.Shape.ToArray();
        using var cpu = _model.IsText
            ? torch.tensor(MemoryMarshal.Cast<byte, long>(input.Data.Span).ToArray(), shape, ScalarType.Int64)
            : torch.tensor(MemoryMarshal.Cast<byte, float>(input.Data.Span).ToArray(), shape, ScalarType.Float32);
        var onDevice = cpu.to(_model.TorchDevice);
        var logits = _model.Forward(onDevice).to(ScalarType.Float32).cpu().contiguous();
        var values = logits.data<float>().ToArray();
        return InferTensor.FromRaw(outputName, TensorDatatype.Fp32, logits.shape, MemoryMarshal.AsBytes(values.AsSpan()).ToArray());
    }
}
