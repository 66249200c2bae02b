using Emc.Compute.Inference;
using Emc.Compute.Training;
using Emc.Core.Inference;
using Emc.Core.Training;
using Emc.Node.Training;

namespace Emc.Node.Inference;

/// <summary>
/// The models loaded on this node, one per (model key, device), shared by the replicas that serve
/// them. A model is loaded once however many replicas ask at the same time; one no replica uses any
/// more stays loaded (for the next replica of the same model) until more than
/// <see cref="MaxIdleModels"/> are idle, then the longest idle goes.
/// </summary>
public sealed class ModelCache : IDisposable
{
    /// <summary>Idle models kept loaded. Default 2.</summary>
    public const int MaxIdleModels = 2;

    private readonly Func<ServeTaskInput, string, CancellationToken, Task<IServedModel>> _load;
    private readonly Lock _gate = new();
    private readonly Dictionary<(string Key, string Device), Entry> _entries = [];
    private long _clock;
    private bool _disposed;

    /// <param name="load">Loads the model of a serve task on a device.</param>
    public ModelCache(Func<ServeTaskInput, string, CancellationToken, Task<IServedModel>> load)
    {
        ArgumentNullException.ThrowIfNull(load);
        _load = load;
    }

    /// <summary>Model keys loaded now (or loading), for the node's cache report.</summary>
    public IReadOnlyList<string> Keys
    {
        get
        {
            lock (_gate)
            {
                return [.. _entries.Keys.Select(k => k.Key).Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal)];
            }
        }
    }

    /// <summary>The model of <paramref name="input"/> on <paramref name="device"/>, loaded now or earlier; pair with <see cref="Release"/>.</summary>
    public async Task<IServedModel> AcquireAsync(ServeTaskInput input, string device, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(input);
        var key = (ServeTaskInput.ModelKey(input.Model ?? throw new ArgumentException("the serve task names no model", nameof(input))), device);
        Entry entry;
        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            if (!_entries.TryGetValue(key, out entry!))
            {
                // Not tied to this caller's token: another replica may be waiting for the same load.
                entry = new Entry(_load(input, device, CancellationToken.None));
                _entries.Add(key, entry);
            }

            entry.References++;
        }

        try
        {
            return await entry.Loading.WaitAsync(cancellationToken);
        }
        catch
        {
            lock (_gate)
            {
                entry.References--;
                if (entry.Loading.IsFaulted || entry.Loading.IsCanceled)
                {
                    // A failed load is not cached: the next replica tries again.
                    if (_entries.TryGetValue(key, out var current) && ReferenceEquals(current, entry))
                    {
                        _entries.Remove(key);
                    }
                }
                else
                {
                    entry.IdleSince = ++_clock;
                    TrimLocked();
                }
            }

            throw;
        }
    }

    /// <summary>A replica stopped using the model of <paramref name="input"/> on <paramref name="device"/>.</summary>
    public void Release(ServeTaskInput input, string device)
    {
        ArgumentNullException.ThrowIfNull(input);
        List<IServedModel> evicted;
        lock (_gate)
        {
            if (input.Model is null || !_entries.TryGetValue((ServeTaskInput.ModelKey(input.Model), device), out var entry) || entry.References == 0)
            {
                return;
            }

            entry.References--;
            entry.IdleSince = ++_clock;
            evicted = TrimLocked();
        }

        evicted.ForEach(m => m.Dispose());
    }

    public void Dispose()
    {
        List<Entry> all;
        lock (_gate)
        {
            _disposed = true;
            all = [.. _entries.Values];
            _entries.Clear();
        }

        foreach (var entry in all)
        {
            if (entry.Loading.IsCompletedSuccessfully)
            {
                entry.Loading.Result.Dispose();
            }
        }
    }

    /// <summary>
    /// Loads a serve task's model: "onnx" into ONNX Runtime, "emc-zoo" (an architecture and a weights
    /// vector) and "torchscript" into libtorch. Files and weights are fetched by hash through
    /// <paramref name="blobs"/>, which checks them.
    /// </summary>
    /// <exception cref="InvalidDataException">The descriptor or the file is not a model this node can load.</exception>
    public static async Task<IServedModel> LoadAsync(BlobCache blobs, ServeTaskInput input, string device, int threads, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(blobs);
        ArgumentNullException.ThrowIfNull(input);
        var model = input.Model ?? throw new InvalidDataException("the serve task names no model");
        var inputName = model.Inputs is [var onlyInput] ? onlyInput.Name : OnnxExporter.InputName;
        var outputName = model.Outputs is [var onlyOutput] ? onlyOutput.Name : OnnxExporter.OutputName;
        switch (model.Format)
        {
            case "onnx":
            {
                if (string.IsNullOrEmpty(model.File))
                {
                    throw new InvalidDataException($"model {model.Name}:{model.Version} is ONNX but names no file");
                }

                var path = await blobs.GetPathAsync(model.File, cancellationToken);
                return new OnnxServedModel(OnnxSession.Load(path, new OnnxSessionOptions { Device = device, IntraOpThreads = threads }));
            }

            case "emc-zoo":
            {
                var weights = await blobs.GetBytesAsync(model.Weights, cancellationToken);
                var vector = WeightsCodec.Decode(weights, model.VectorLength > 0 ? model.VectorLength : null, requireFinite: true);
                var trainable = Create(model, model.Model, device, scriptPath: null);
                try
                {
                    trainable.WriteVector(vector);
                    return new TorchServedModel(new TorchModelRunner(trainable), inputName, outputName);
                }
                catch
                {
                    trainable.Dispose();
                    throw;
                }
            }

            case "torchscript":
            {
                var script = !string.IsNullOrEmpty(model.File) ? model.File : model.Model.Script
                    ?? throw new InvalidDataException($"model {model.Name}:{model.Version} is TorchScript but names no file");
                // A pushed file records no sample shape or classes, only its declared signature: run it with those.
                var (sampleShape, classes) = ServeTaskInput.TorchScriptShape(model, out var problem) ?? throw new InvalidDataException(problem);
                var path = await blobs.GetPathAsync(script, cancellationToken);
                var trainable = Create(model with { SampleShape = sampleShape, Classes = classes }, model.Model with { Name = ModelSpec.TorchScript, Script = script }, device, path);
                return new TorchServedModel(new TorchModelRunner(trainable), inputName, outputName);
            }

            default:
                throw new InvalidDataException($"model format '{model.Format}' cannot be served (onnx, emc-zoo or torchscript)");
        }
    }

    private static TrainableModel Create(ModelDescriptor model, ModelSpec spec, string device, string? scriptPath)
    {
        try
        {
            return TrainableModel.Create(spec, model.SampleShape, model.Classes, model.IsText, device, seed: 0, scriptPath);
        }
        catch (ArgumentException ex)
        {
            throw new InvalidDataException(ex.Message, ex);
        }
    }

    private List<IServedModel> TrimLocked()
    {
        List<IServedModel> evicted = [];
        var idle = _entries.Where(e => e.Value.References == 0 && e.Value.Loading.IsCompletedSuccessfully).OrderBy(e => e.Value.IdleSince).ToList();
        for (var i = 0; i < idle.Count - MaxIdleModels; i++)
        {
            _entries.Remove(idle[i].Key);
            evicted.Add(idle[i].Value.Loading.Result);
        }

        return evicted;
    }

    private sealed class Entry(Task<IServedModel> loading)
    {
        public Task<IServedModel> Loading { get; } = loading;

        public int References { get; set; }

        public long IdleSince { get; set; }
    }
}
