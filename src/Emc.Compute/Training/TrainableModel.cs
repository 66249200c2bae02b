using System.Security.Cryptography;
using Emc.Compute.Training.Zoo;
using Emc.Core.Training;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Emc.Compute.Training;

/// <summary>
/// A model a node trains: a zoo architecture built from a <see cref="ModelSpec"/> or a
/// TorchScript module loaded from a file, on one device, with its weights exposed as one flat
/// fp32 vector — the form in which canonical weights arrive and trained weights leave.
/// </summary>
/// <remarks>
/// Inputs are what <see cref="ExampleSet"/> builds: float32 [B, ...sampleShape] for
/// classification (U8 pixels already scaled to [0, 1]) and int64 byte windows [B, T] for text.
/// Convolutional models, TorchScript modules included, get images as [B, C, H, W]: a 2-D sample
/// [H, W] gains a channel dimension. The mlp flattens whatever it gets.
/// Not thread-safe: one trainer or evaluator uses a model at a time.
/// </remarks>
public sealed class TrainableModel : IDisposable
{
    private readonly nn.Module _module;
    private readonly Func<Tensor, Tensor> _forward;
    private readonly Tensor[] _vectorTensors;
    private readonly Generator _dropoutGenerator;
    private bool _disposed;

    private TrainableModel(
        ModelSpec spec,
        int[] sampleShape,
        int classes,
        bool isText,
        Device device,
        long seed,
        nn.Module module,
        Func<Tensor, Tensor> forward,
        long forwardFlops,
        Generator dropoutGenerator)
    {
        Spec = spec;
        SampleShape = sampleShape;
        Classes = classes;
        IsText = isText;
        TorchDevice = device;
        Device = TorchRuntime.NormalizeDevice(device.ToString());
        Seed = seed;
        _module = module;
        _forward = forward;
        _dropoutGenerator = dropoutGenerator;

        var parameters = module.named_parameters().Select(p => (Tensor)p.parameter).ToList();
        ParameterCount = module.parameters().Where(p => p.requires_grad).Sum(p => p.numel());

        // Integer buffers (BatchNorm's num_batches_tracked) are counters, not weights to average.
        var buffers = module.named_buffers().Select(b => b.buffer).Where(b => b.is_floating_point());
        _vectorTensors = [.. parameters, .. buffers];
        foreach (var tensor in _vectorTensors)
        {
            if (tensor.dtype != ScalarType.Float32)
            {
                throw new NotSupportedException($"the model holds a {tensor.dtype} tensor; only float32 weights travel as a vector");
            }
        }

        VectorLength = _vectorTensors.Sum(t => t.numel());
        FlopsPerSample = 3 * forwardFlops;
        module.train();
    }

    /// <summary>The spec with its defaults filled in.</summary>
    public ModelSpec Spec { get; }

    public IReadOnlyList<int> SampleShape { get; }

    /// <summary>Classes of a classification model; 256 (the byte vocabulary) for gpt-small.</summary>
    public int Classes { get; }

    public bool IsText { get; }

    /// <summary>The device the weights live on, spelled canonically ("cpu", "cuda:0").</summary>
    public string Device { get; }

    /// <summary>The seed the weights were initialised from and dropout masks derive from.</summary>
    public long Seed { get; }

    /// <summary>Trainable parameters (elements).</summary>
    public long ParameterCount { get; }

    /// <summary>
    /// Elements of the weight vector: every parameter, then every floating-point buffer, each in
    /// state_dict order.
    /// </summary>
    public long VectorLength { get; }

    /// <summary>
    /// A rough count of floating-point operations for one training sample (forward and backward,
    /// taken as three forward passes), for metering. Zoo models count their matrix products and
    /// convolutions; a TorchScript module, whose structure is opaque, counts 6 per parameter, which
    /// undercounts convolutions.
    /// </summary>
    public long FlopsPerSample { get; }

    /// <summary>The context (window) length of a text model; 0 for classification.</summary>
    public int Context => IsText ? Spec.Context ?? 0 : 0;

    internal Device TorchDevice { get; }

    internal nn.Module Module => _module;

    internal IEnumerable<Parameter> TrainableParameters => _module.parameters().Where(p => p.requires_grad);

    /// <summary>
    /// Builds the model of <paramref name="spec"/> for examples of <paramref name="sampleShape"/>
    /// with <paramref name="classes"/> classes (or a byte stream when <paramref name="isText"/>),
    /// on <paramref name="device"/>, with weights drawn from <paramref name="seed"/>: the same
    /// arguments give the same weights bit for bit. A TorchScript spec loads
    /// <paramref name="scriptPath"/> and keeps its saved weights.
    /// </summary>
    /// <exception cref="ArgumentException">The spec is not valid for the data; the message lists why.</exception>
    public static TrainableModel Create(ModelSpec spec, int[] sampleShape, int classes, bool isText, string device, long seed, string? scriptPath = null)
    {
        ArgumentNullException.ThrowIfNull(spec);
        ArgumentNullException.ThrowIfNull(sampleShape);
        var errors = ModelSpecValidator.Validate(spec, sampleShape, classes, isText);
        if (errors.Count > 0)
        {
            throw new ArgumentException($"invalid model: {string.Join("; ", errors)}", nameof(spec));
        }

        TorchRuntime.EnsureInitialized();
        var torchDevice = TorchRuntime.ParseDevice(device);
        var resolved = spec.WithDefaults();
        var dropoutGenerator = new Generator(Mix(seed, long.MinValue), torchDevice);
        try
        {
            return resolved.Name == ModelSpec.TorchScript
                ? LoadScript(resolved, sampleShape, classes, torchDevice, seed, scriptPath, dropoutGenerator)
                : BuildZoo(resolved, sampleShape, classes, isText, torchDevice, seed, dropoutGenerator);
        }
        catch
        {
            dropoutGenerator.Dispose();
            throw;
        }
    }

    /// <summary>The weights as one vector (see <see cref="VectorLength"/> for the order).</summary>
    public float[] ReadVector()
    {
        var vector = new float[VectorLength];
        ReadVector(vector);
        return vector;
    }

    /// <summary>Copies the weights into <paramref name="destination"/>, which must hold exactly <see cref="VectorLength"/> elements.</summary>
    /// <exception cref="ArgumentException">The length is wrong.</exception>
    public void ReadVector(Span<float> destination)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        CheckLength(destination.Length, nameof(destination));
        using var noGrad = torch.no_grad();
        var offset = 0;
        foreach (var tensor in _vectorTensors)
        {
            using var cpu = tensor.detach().cpu().contiguous();
            var length = (int)cpu.numel();
            cpu.data<float>().CopyTo(destination.Slice(offset, length));
            offset += length;
        }
    }

    /// <summary>
    /// Replaces the weights with <paramref name="vector"/>, in place: optimizers holding the
    /// parameters keep them (and their moments).
    /// </summary>
    /// <exception cref="ArgumentException">The length is not <see cref="VectorLength"/>.</exception>
    public void WriteVector(ReadOnlySpan<float> vector)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        CheckLength(vector.Length, nameof(vector));
        using var noGrad = torch.no_grad();
        var offset = 0;
        foreach (var tensor in _vectorTensors)
        {
            var length = (int)tensor.numel();
            var slice = vector.Slice(offset, length);
            if (tensor.device_type == DeviceType.CPU && tensor.is_contiguous())
            {
                // Straight into the parameter's memory: no staging copy of the weights.
                tensor.data<float>().CopyFrom(slice);
            }
            else
            {
                using var source = torch.tensor(slice.ToArray(), tensor.shape);
                tensor.copy_(source);
            }

            offset += length;
        }
    }

    /// <summary>
    /// Subtracts the current weights from <paramref name="start"/> in place, leaving the
    /// pseudo-gradient start − θ there, without a second vector of the weights.
    /// </summary>
    /// <exception cref="ArgumentException">The length is not <see cref="VectorLength"/>.</exception>
    public void SubtractFrom(Span<float> start)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        CheckLength(start.Length, nameof(start));
        using var noGrad = torch.no_grad();
        var offset = 0;
        Span<float> chunk = stackalloc float[1024];
        foreach (var tensor in _vectorTensors)
        {
            using var cpu = tensor.detach().cpu().contiguous();
            var accessor = cpu.data<float>();
            var length = (int)cpu.numel();
            for (var done = 0; done < length; done += chunk.Length)
            {
                var take = Math.Min(chunk.Length, length - done);
                accessor.CopyTo(chunk[..take], arrayIndex: 0, tensorIndex: done);
                var target = start.Slice(offset + done, take);
                for (var i = 0; i < take; i++)
                {
                    target[i] -= chunk[i];
                }
            }

            offset += length;
        }
    }

    /// <summary>Logits for a batch built by <see cref="ExampleSet"/>: [B, classes], or [B, T, 256] for text.</summary>
    public Tensor Forward(Tensor input)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        ArgumentNullException.ThrowIfNull(input);
        return _forward(input);
    }

    /// <summary>Mean cross-entropy of <paramref name="logits"/> against <paramref name="target"/> (over tokens for text).</summary>
    internal Tensor Loss(Tensor logits, Tensor target)
    {
        if (!IsText)
        {
            return nn.functional.cross_entropy(logits, target);
        }

        using var flatLogits = logits.reshape(-1, logits.shape[^1]);
        using var flatTarget = target.reshape(-1);
        return nn.functional.cross_entropy(flatLogits, flatTarget);
    }

    /// <summary>A batch for this model: by example index, or by window start for text.</summary>
    internal (Tensor Input, Tensor Target) Batch(ExampleSet data, ReadOnlySpan<long> indices)
    {
        if (data.IsText != IsText)
        {
            throw new ArgumentException(IsText ? "a text model needs a text set" : "a classification model needs a classification set", nameof(data));
        }

        if (!IsText && !data.SampleShape.SequenceEqual(SampleShape))
        {
            throw new ArgumentException($"the model takes samples of [{string.Join(", ", SampleShape)}], the set holds [{string.Join(", ", data.SampleShape)}]", nameof(data));
        }

        return IsText ? data.TextBatch(indices, Context, TorchDevice) : data.ClassificationBatch(indices, TorchDevice);
    }

    /// <summary>
    /// Restarts the dropout stream at the one for (<see cref="Seed"/>, <paramref name="stepOffset"/>),
    /// so that rerunning the inner steps from the same step draws the same masks. TorchScript
    /// modules draw from libtorch's global generator, which is reseeded instead.
    /// </summary>
    internal void ReseedDropout(long stepOffset)
    {
        var seed = unchecked((long)Mix(Seed, stepOffset));
        _dropoutGenerator.manual_seed(seed);
        if (Spec.Name == ModelSpec.TorchScript)
        {
            torch.random.manual_seed(seed);
        }
    }

    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }

        _disposed = true;
        _module.Dispose();
        _dropoutGenerator.Dispose();
    }

    private void CheckLength(int length, string name)
    {
        if (length != VectorLength)
        {
            throw new ArgumentException($"the model's weight vector has {VectorLength} elements, not {length}", name);
        }
    }

    private static TrainableModel BuildZoo(ModelSpec spec, int[] sampleShape, int classes, bool isText, Device device, long seed, Generator dropoutGenerator)
    {
        var dropout = spec.Dropout ?? 0;
        var (channels, height, width) = sampleShape.Length switch
        {
            2 => (1, sampleShape[0], sampleShape[1]),
            3 => (sampleShape[0], sampleShape[1], sampleShape[2]),
            _ => (0, 0, 0),
        };

        nn.Module<Tensor, Tensor> module;
        long forwardFlops;
        switch (spec.Name)
        {
            case ModelSpec.Mlp:
                var mlp = new MlpNet(sampleShape.Aggregate(1L, (p, d) => p * d), spec.Hidden!, classes, dropout, dropoutGenerator);
                (module, forwardFlops) = (mlp, mlp.ForwardFlops);
                break;
            case ModelSpec.Cnn:
                var cnn = new CnnNet(channels, height, width, spec.Channels!, spec.Hidden![0], classes, dropout, dropoutGenerator);
                (module, forwardFlops) = (cnn, cnn.ForwardFlops);
                break;
            case ModelSpec.ResNetSmall:
                var resnet = new ResNetSmallNet(channels, height, width, spec.Channels!, spec.Blocks!.Value, classes, dropout, dropoutGenerator);
                (module, forwardFlops) = (resnet, resnet.ForwardFlops);
                break;
            default:
                var gpt = new GptSmallNet(spec.Layers!.Value, spec.Heads!.Value, spec.Dim!.Value, spec.Context!.Value, dropout, dropoutGenerator);
                (module, forwardFlops) = (gpt, gpt.ForwardFlops);
                classes = ModelSpec.ByteVocabulary;
                break;
        }

        try
        {
            if (spec.Name == ModelSpec.GptSmall)
            {
                ZooInit.Gpt(module, seed, spec.Layers!.Value);
            }
            else
            {
                ZooInit.FanInUniform(module, seed);
            }

            module.to(device);
            return new TrainableModel(spec, sampleShape, classes, isText, device, seed, module, module.call, forwardFlops, dropoutGenerator);
        }
        catch
        {
            module.Dispose();
            throw;
        }
    }

    private static TrainableModel LoadScript(ModelSpec spec, int[] sampleShape, int classes, Device device, long seed, string? scriptPath, Generator dropoutGenerator)
    {
        if (scriptPath is null || !File.Exists(scriptPath))
        {
            throw new ArgumentException($"a torchscript model needs its file; '{scriptPath}' does not exist", nameof(scriptPath));
        }

        // The spec names the script by hash; a node must run exactly the file the job was accepted with.
        using (var stream = File.OpenRead(scriptPath))
        {
            var hash = Convert.ToHexStringLower(SHA256.HashData(stream));
            if (!string.Equals(hash, spec.Script, StringComparison.Ordinal))
            {
                throw new ArgumentException($"'{scriptPath}' has SHA-256 {hash}, but the spec names {spec.Script}", nameof(scriptPath));
            }
        }

        var module = torch.jit.load<Tensor, Tensor>(scriptPath, device);
        try
        {
            var addChannel = sampleShape.Length == 2;
            Tensor Forward(Tensor input)
            {
                if (addChannel && input.dim() == 3)
                {
                    using var withChannel = input.unsqueeze(1);
                    return module.call(withChannel);
                }

                return module.call(input);
            }

            var parameters = module.parameters().Where(p => p.requires_grad).Sum(p => p.numel());
            return new TrainableModel(spec, sampleShape, classes, isText: false, device, seed, module, Forward, 2 * parameters, dropoutGenerator);
        }
        catch
        {
            module.Dispose();
            throw;
        }
    }

    /// <summary>SplitMix64 of the pair, so nearby seeds and steps give unrelated streams.</summary>
    private static ulong Mix(long seed, long step)
    {
        var z = unchecked((ulong)seed + ((ulong)step * 0x9E3779B97F4A7C15UL) + 0x9E3779B97F4A7C15UL);
        z = unchecked((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL);
        z = unchecked((z ^ (z >> 27)) * 0x94D049BB133111EBUL);
        return z ^ (z >> 31);
    }
}
