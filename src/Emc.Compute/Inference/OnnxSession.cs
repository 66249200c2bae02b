using System.Buffers;
using Emc.Core.Inference;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;

namespace Emc.Compute.Inference;

/// <summary>
/// One ONNX model loaded into ONNX Runtime, run a batch at a time on the Open Inference Protocol's
/// tensors (<see cref="InferTensor"/>). Fixed-size inputs are handed to ONNX Runtime in place (pinned,
/// not copied); each output is copied once, out of ONNX Runtime's buffer.
/// </summary>
/// <remarks>
/// Thread-safe: <see cref="Run"/> may be called concurrently, as ONNX Runtime allows. The owner
/// disposes the session, which frees the model's native memory.
/// </remarks>
public sealed class OnnxSession : IDisposable
{
    private const string CudaProvider = "CUDAExecutionProvider";

    private readonly InferenceSession _session;
    private readonly Dictionary<string, OnnxTensorInfo> _inputs;
    private readonly Dictionary<string, OnnxTensorInfo> _outputs;
    private bool _disposed;

    private OnnxSession(InferenceSession session, OnnxModelInfo info, string device)
    {
        _session = session;
        Info = info;
        Device = device;
        _inputs = info.Inputs.ToDictionary(i => i.Name, StringComparer.Ordinal);
        _outputs = info.Outputs.ToDictionary(o => o.Name, StringComparer.Ordinal);
    }

    /// <summary>The model's inputs, outputs, opset and producer.</summary>
    public OnnxModelInfo Info { get; }

    /// <summary>The device the session runs on, spelled canonically (<c>cpu</c>, <c>cuda:0</c>).</summary>
    public string Device { get; }

    /// <summary>
    /// Loads <paramref name="model"/> with graph optimisations on, on the device and with the
    /// threads of <paramref name="options"/>.
    /// </summary>
    /// <exception cref="InvalidDataException">The bytes are not an ONNX model this build can load; see <see cref="OnnxModelInfo.Read(byte[])"/>.</exception>
    /// <exception cref="ArgumentException">The device string is not <c>cpu</c>, <c>cuda</c> or <c>cuda:N</c>, or the thread count is negative.</exception>
    /// <exception cref="NotSupportedException">A CUDA device was asked for and this build of ONNX Runtime has no CUDA execution provider.</exception>
    public static OnnxSession Load(byte[] model, OnnxSessionOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        options ??= new OnnxSessionOptions();
        ArgumentOutOfRangeException.ThrowIfNegative(options.IntraOpThreads, nameof(options));
        var device = TorchRuntime.NormalizeDevice(options.Device);
        var proto = OnnxModelInfo.Parse(model);

        using var sessionOptions = new SessionOptions
        {
            GraphOptimizationLevel = GraphOptimizationLevel.ORT_ENABLE_ALL,
            IntraOpNumThreads = options.IntraOpThreads,
        };
        var spin = options.AllowSpinning ? "1" : "0";
        sessionOptions.AddSessionConfigEntry("session.intra_op.allow_spinning", spin);
        sessionOptions.AddSessionConfigEntry("session.inter_op.allow_spinning", spin);
        if (device != "cpu")
        {
            AppendCuda(sessionOptions, device);
        }

        var session = OnnxModelInfo.Load(model, proto, sessionOptions);
        try
        {
            return new OnnxSession(session, OnnxModelInfo.FromSession(proto, session), device == "cuda" ? "cuda:0" : device);
        }
        catch
        {
            session.Dispose();
            throw;
        }
    }

    /// <summary>Loads the ONNX file at <paramref name="path"/>; see <see cref="Load(byte[], OnnxSessionOptions?)"/>.</summary>
    /// <exception cref="IOException">The file cannot be read.</exception>
    public static OnnxSession Load(string path, OnnxSessionOptions? options = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        return Load(File.ReadAllBytes(path), options);
    }

    /// <summary>
    /// Runs one batch: every input of <see cref="OnnxModelInfo.Inputs"/>, matched by name, and returns
    /// the outputs named in <paramref name="outputs"/> (all of them when null) in that order, each
    /// once, with the datatype and shape ONNX Runtime produced.
    /// </summary>
    /// <exception cref="ArgumentException">
    /// An input is missing, unknown or given twice, its datatype or shape does not fit the model, or an
    /// output name is unknown; the message says which.
    /// </exception>
    /// <exception cref="InvalidOperationException">
    /// ONNX Runtime failed while running the model, or produced an output the protocol cannot carry.
    /// </exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> was cancelled during the run.</exception>
    public IReadOnlyList<InferTensor> Run(
        IReadOnlyList<InferTensor> inputs,
        IReadOnlyCollection<string>? outputs = null,
        CancellationToken cancellationToken = default)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        ArgumentNullException.ThrowIfNull(inputs);
        cancellationToken.ThrowIfCancellationRequested();
        CheckInputs(inputs);
        var outputNames = CheckOutputs(outputs);

        var names = new List<string>(inputs.Count);
        var values = new List<OrtValue>(inputs.Count);
        var pins = new List<MemoryHandle>(inputs.Count);
        try
        {
            foreach (var tensor in inputs)
            {
                names.Add(tensor.Name);
                values.Add(ToOrtValue(tensor, pins));
            }

            return RunSession(names, values, outputNames, cancellationToken);
        }
        finally
        {
            values.ForEach(v => v.Dispose());
            pins.ForEach(p => p.Dispose());
        }
    }

    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }

        _disposed = true;
        _session.Dispose();
    }

    private InferTensor[] RunSession(List<string> names, List<OrtValue> values, List<string> outputNames, CancellationToken cancellationToken)
    {
        using var runOptions = new RunOptions();
        using var cancel = cancellationToken.Register(() => runOptions.Terminate = true);
        IDisposableReadOnlyCollection<OrtValue> results;
        try
        {
            results = _session.Run(runOptions, names, values, outputNames);
        }
        catch (OnnxRuntimeException ex) when (cancellationToken.IsCancellationRequested)
        {
            throw new OperationCanceledException("the inference run was cancelled", ex, cancellationToken);
        }
        catch (OnnxRuntimeException ex)
        {
            throw new InvalidOperationException($"ONNX Runtime failed to run the model: {ex.Message}", ex);
        }

        using (results)
        {
            var answer = new InferTensor[outputNames.Count];
            var i = 0;
            foreach (var value in results)
            {
                answer[i] = FromOrtValue(outputNames[i], value);
                i++;
            }

            return answer;
        }
    }

    private static void AppendCuda(SessionOptions options, string device)
    {
        var index = device == "cuda" ? 0 : int.Parse(device.AsSpan("cuda:".Length), System.Globalization.CultureInfo.InvariantCulture);
        var providers = OrtEnv.Instance().GetAvailableProviders();
        if (!providers.Contains(CudaProvider, StringComparer.Ordinal))
        {
            throw new NotSupportedException(
                $"device '{device}' needs ONNX Runtime's CUDA execution provider, which this build does not have "
                + $"(it has {string.Join(", ", providers)}); GPU hosts need the Microsoft.ML.OnnxRuntime.Gpu package");
        }

        try
        {
            options.AppendExecutionProvider_CUDA(index);
        }
        catch (OnnxRuntimeException ex)
        {
            throw new NotSupportedException($"ONNX Runtime's CUDA execution provider could not be started on {device}: {ex.Message}", ex);
        }
    }

    private void CheckInputs(IReadOnlyList<InferTensor> inputs)
    {
        for (var t = 0; t < inputs.Count; t++)
        {
            var tensor = inputs[t];
            ArgumentNullException.ThrowIfNull(tensor, nameof(inputs));
            var name = tensor.Name;
            if (!_inputs.TryGetValue(name, out var expected))
            {
                throw new ArgumentException($"the model has no input '{name}'; its inputs are {Names(Info.Inputs)}", nameof(inputs));
            }

            if (IndexOf(inputs, name, t) >= 0)
            {
                throw new ArgumentException($"input '{name}' is given more than once", nameof(inputs));
            }

            if (tensor.Datatype != expected.Datatype)
            {
                throw new ArgumentException($"input '{name}' is {expected.TypeName}, not {tensor.Datatype.ToWireName()}", nameof(inputs));
            }

            var shape = tensor.Shape;
            if (shape.Count != expected.Shape.Count
                || shape.Where((d, i) => expected.Shape[i] >= 0 && expected.Shape[i] != d).Any())
            {
                throw new ArgumentException(
                    $"input '{name}' has shape [{string.Join(", ", shape)}]; the model takes [{string.Join(", ", expected.Shape)}] (-1: any size)",
                    nameof(inputs));
            }
        }

        var missing = Info.Inputs.Where(i => IndexOf(inputs, i.Name, inputs.Count) < 0).Select(i => i.Name).ToList();
        if (missing.Count > 0)
        {
            throw new ArgumentException($"missing input{(missing.Count > 1 ? "s" : "")} {string.Join(", ", missing.Select(m => $"'{m}'"))}", nameof(inputs));
        }
    }

    private List<string> CheckOutputs(IReadOnlyCollection<string>? outputs)
    {
        if (outputs is null)
        {
            return [.. Info.Outputs.Select(o => o.Name)];
        }

        foreach (var name in outputs)
        {
            if (!_outputs.ContainsKey(name))
            {
                throw new ArgumentException($"the model has no output '{name}'; its outputs are {Names(Info.Outputs)}", nameof(outputs));
            }
        }

        return [.. outputs.Distinct(StringComparer.Ordinal)];
    }

    private static string Names(IReadOnlyList<OnnxTensorInfo> values) => string.Join(", ", values.Select(v => $"'{v.Name}'"));

    /// <summary>Where the first of <paramref name="count"/> tensors named <paramref name="name"/> is; -1 when none is.</summary>
    private static int IndexOf(IReadOnlyList<InferTensor> tensors, string name, int count)
    {
        for (var i = 0; i < count; i++)
        {
            if (string.Equals(tensors[i].Name, name, StringComparison.Ordinal))
            {
                return i;
            }
        }

        return -1;
    }

    private static unsafe OrtValue ToOrtValue(InferTensor tensor, List<MemoryHandle> pins)
    {
        var type = OnnxDatatypes.ToElementType(tensor.Datatype);
        long[] shape = [.. tensor.Shape];
        if (tensor.Datatype == TensorDatatype.Bytes)
        {
            return ToStringValue(tensor.Elements, shape);
        }

        if (tensor.Data.IsEmpty)
        {
            return OrtValue.CreateAllocatedTensorValue(OrtAllocator.DefaultInstance, type, shape);
        }

        var data = tensor.Data;
        var pin = data.Pin();
        if ((nint)pin.Pointer % tensor.Datatype.ElementSize() != 0)
        {
            // A slice at an odd offset of a larger buffer: kernels may assume aligned elements.
            pin.Dispose();
            data = data.ToArray();
            pin = data.Pin();
        }

        pins.Add(pin);
        return OrtValue.CreateTensorValueWithData(OrtMemoryInfo.DefaultInstance, type, shape, (nint)pin.Pointer, data.Length);
    }

    private static OrtValue ToStringValue(IReadOnlyList<ReadOnlyMemory<byte>> elements, long[] shape)
    {
        var value = OrtValue.CreateTensorWithEmptyStrings(OrtAllocator.DefaultInstance, shape);
        try
        {
            for (var i = 0; i < elements.Count; i++)
            {
                value.StringTensorSetElementAt(elements[i].Span, i);
            }

            return value;
        }
        catch
        {
            value.Dispose();
            throw;
        }
    }

    private static InferTensor FromOrtValue(string name, OrtValue value)
    {
        if (!value.IsTensor)
        {
            throw new InvalidOperationException($"output '{name}' is a {value.OnnxType}, not a tensor; only tensors can be returned");
        }

        var typeAndShape = value.GetTensorTypeAndShape();
        if (!OnnxDatatypes.TryGetDatatype(typeAndShape.ElementDataType, out var datatype))
        {
            throw new InvalidOperationException($"output '{name}' is a tensor of ONNX {typeAndShape.ElementDataType}, which the Open Inference Protocol cannot carry");
        }

        if (datatype != TensorDatatype.Bytes)
        {
            return InferTensor.FromRaw(name, datatype, typeAndShape.Shape, value.GetTensorMutableRawData().ToArray());
        }

        // The elements' bytes are copied once, into one buffer that the elements then point into.
        var count = (int)typeAndShape.ElementCount;
        var total = 0;
        for (var i = 0; i < count; i++)
        {
            total = checked(total + value.GetStringElementAsSpan(i).Length);
        }

        var buffer = new byte[total];
        var elements = new ReadOnlyMemory<byte>[count];
        var offset = 0;
        for (var i = 0; i < count; i++)
        {
            var bytes = value.GetStringElementAsSpan(i);
            bytes.CopyTo(buffer.AsSpan(offset));
            elements[i] = buffer.AsMemory(offset, bytes.Length);
            offset += bytes.Length;
        }

        return InferTensor.FromBytes(name, typeAndShape.Shape, elements);
    }
}
