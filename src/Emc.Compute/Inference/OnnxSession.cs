using System.Buffers;
using System.Buffers.Binary;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;

namespace Emc.Compute.Inference;

/// <summary>
/// One ONNX model loaded into ONNX Runtime, run a batch at a time on tensors in the Open
/// Inference Protocol's form (<see cref="InferenceTensor"/>). Inputs are handed to ONNX Runtime
/// in place (pinned, not copied); each output is copied once, out of ONNX Runtime's buffer.
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
    /// Runs one batch: every input of <see cref="OnnxModelInfo.Inputs"/> by name, and returns the
    /// outputs named in <paramref name="outputs"/> (all of them when null), each with the datatype
    /// and shape ONNX Runtime produced.
    /// </summary>
    /// <exception cref="ArgumentException">
    /// An input is missing or unknown, its datatype or shape does not fit the model, its byte
    /// count does not fit its shape, or an output name is unknown; the message says which.
    /// </exception>
    /// <exception cref="InvalidOperationException">ONNX Runtime failed while running the model.</exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> was cancelled during the run.</exception>
    public IReadOnlyDictionary<string, InferenceTensor> Run(
        IReadOnlyDictionary<string, InferenceTensor> inputs,
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
            foreach (var (name, tensor) in inputs)
            {
                names.Add(name);
                values.Add(ToOrtValue(name, tensor, pins));
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

    private Dictionary<string, InferenceTensor> RunSession(List<string> names, List<OrtValue> values, List<string> outputNames, CancellationToken cancellationToken)
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
            var answer = new Dictionary<string, InferenceTensor>(outputNames.Count, StringComparer.Ordinal);
            var i = 0;
            foreach (var value in results)
            {
                var name = outputNames[i++];
                answer[name] = FromOrtValue(name, value);
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

    private void CheckInputs(IReadOnlyDictionary<string, InferenceTensor> inputs)
    {
        foreach (var (name, tensor) in inputs)
        {
            if (!_inputs.TryGetValue(name, out var expected))
            {
                throw new ArgumentException($"the model has no input '{name}'; its inputs are {Names(Info.Inputs)}", nameof(inputs));
            }

            ArgumentNullException.ThrowIfNull(tensor, nameof(inputs));
            if (!string.Equals(tensor.Datatype, expected.Datatype, StringComparison.Ordinal))
            {
                throw new ArgumentException($"input '{name}' is {expected.Datatype}, not {tensor.Datatype}", nameof(inputs));
            }

            var shape = tensor.Shape;
            if (shape.Count != expected.Shape.Count
                || shape.Where((d, i) => d < 0 || (expected.Shape[i] >= 0 && expected.Shape[i] != d)).Any())
            {
                throw new ArgumentException(
                    $"input '{name}' has shape [{string.Join(", ", shape)}]; the model takes [{string.Join(", ", expected.Shape)}] (-1: any size)",
                    nameof(inputs));
            }
        }

        var missing = Info.Inputs.Where(i => !inputs.ContainsKey(i.Name)).Select(i => i.Name).ToList();
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

    private static long ElementCount(IReadOnlyList<long> shape, string name)
    {
        long count = 1;
        foreach (var d in shape)
        {
            count = checked(count * d);
        }

        return count > int.MaxValue
            ? throw new ArgumentException($"input '{name}' has {count} elements, more than one tensor may hold", nameof(shape))
            : count;
    }

    private static unsafe OrtValue ToOrtValue(string name, InferenceTensor tensor, List<MemoryHandle> pins)
    {
        var type = OnnxDatatypes.ToElementType(tensor.Datatype);
        long[] shape = [.. tensor.Shape];
        var count = ElementCount(shape, name);
        if (type == TensorElementType.String)
        {
            return ToStringValue(name, tensor.Data.Span, shape, (int)count);
        }

        var bytes = count * OnnxDatatypes.ElementSize(tensor.Datatype);
        if (tensor.Data.Length != bytes)
        {
            throw new ArgumentException(
                $"input '{name}' ({tensor.Datatype} [{string.Join(", ", shape)}]) needs {bytes} bytes, not {tensor.Data.Length}", nameof(tensor));
        }

        if (bytes == 0)
        {
            return OrtValue.CreateAllocatedTensorValue(OrtAllocator.DefaultInstance, type, shape);
        }

        var data = tensor.Data;
        var pin = data.Pin();
        if ((nint)pin.Pointer % OnnxDatatypes.ElementSize(tensor.Datatype) != 0)
        {
            // A slice at an odd offset of a larger buffer: kernels may assume aligned elements.
            pin.Dispose();
            data = data.ToArray();
            pin = data.Pin();
        }

        pins.Add(pin);
        return OrtValue.CreateTensorValueWithData(OrtMemoryInfo.DefaultInstance, type, shape, (nint)pin.Pointer, bytes);
    }

    private static OrtValue ToStringValue(string name, ReadOnlySpan<byte> data, long[] shape, int count)
    {
        var value = OrtValue.CreateTensorWithEmptyStrings(OrtAllocator.DefaultInstance, shape);
        try
        {
            var offset = 0;
            for (var i = 0; i < count; i++)
            {
                if (data.Length - offset < 4)
                {
                    throw new ArgumentException($"input '{name}' (BYTES) ends before element {i} of {count}", nameof(data));
                }

                var length = BinaryPrimitives.ReadUInt32LittleEndian(data[offset..]);
                offset += 4;
                if (length > (uint)(data.Length - offset))
                {
                    throw new ArgumentException($"input '{name}' (BYTES) element {i} claims {length} bytes; {data.Length - offset} are left", nameof(data));
                }

                value.StringTensorSetElementAt(data.Slice(offset, (int)length), i);
                offset += (int)length;
            }

            if (offset != data.Length)
            {
                throw new ArgumentException($"input '{name}' (BYTES) has {data.Length - offset} bytes after its {count} elements", nameof(data));
            }

            return value;
        }
        catch
        {
            value.Dispose();
            throw;
        }
    }

    private static InferenceTensor FromOrtValue(string name, OrtValue value)
    {
        if (!value.IsTensor)
        {
            throw new InvalidOperationException($"output '{name}' is a {value.OnnxType}, not a tensor; only tensors can be returned");
        }

        var typeAndShape = value.GetTensorTypeAndShape();
        var datatype = OnnxDatatypes.FromElementType(typeAndShape.ElementDataType);
        if (typeAndShape.ElementDataType != TensorElementType.String)
        {
            return new InferenceTensor(datatype, typeAndShape.Shape, value.GetTensorMutableRawData().ToArray());
        }

        var count = (int)typeAndShape.ElementCount;
        using var buffer = new MemoryStream();
        Span<byte> prefix = stackalloc byte[4];
        for (var i = 0; i < count; i++)
        {
            var bytes = value.GetStringElementAsSpan(i);
            BinaryPrimitives.WriteUInt32LittleEndian(prefix, (uint)bytes.Length);
            buffer.Write(prefix);
            buffer.Write(bytes);
        }

        return new InferenceTensor(datatype, typeAndShape.Shape, buffer.ToArray());
    }
}
