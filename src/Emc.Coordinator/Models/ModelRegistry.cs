using System.Runtime.InteropServices;
using Emc.Compute;
using Emc.Coordinator.Accounts;
using Emc.Compute.Inference;
using Emc.Compute.Training;
using Emc.Coordinator.Blobs;
using Emc.Coordinator.Inference;
using Emc.Coordinator.Persistence;
using Emc.Coordinator.Training;
using Emc.Core.Inference;
using Emc.Core.Training;
using Microsoft.Extensions.Logging;
using TorchSharp;

namespace Emc.Coordinator.Models;

/// <summary>What <c>POST /api/v1/models</c> received: the file and what the pusher said of it.</summary>
/// <param name="Name">The model's name.</param>
/// <param name="Version">The version asked for; null for the next one.</param>
/// <param name="Format">"onnx" or "torchscript"; null to tell from the bytes.</param>
/// <param name="Content">The model file.</param>
/// <param name="Inputs">The inputs the pusher declared (TorchScript files carry none).</param>
/// <param name="Outputs">The outputs the pusher declared.</param>
public sealed record ModelPush(
    string Name,
    int? Version,
    string? Format,
    byte[] Content,
    IReadOnlyList<TensorMetadata> Inputs,
    IReadOnlyList<TensorMetadata> Outputs);

/// <summary>The result of a registry operation: a value, or the HTTP status, title and message of why not.</summary>
public sealed record RegistryResult<T>(T? Value, int Status, string? Title, string? Error);

/// <summary>Makes <see cref="RegistryResult{T}"/>s.</summary>
public static class RegistryResult
{
    public static RegistryResult<T> Ok<T>(T value) => new(value, 200, null, null);

    public static RegistryResult<T> Fail<T>(int status, string title, string error) => new(default, status, title, error);
}

/// <summary>
/// The model registry: versions of models trained by the network and of ONNX and TorchScript
/// files pushed by users, each file a content-addressed blob. A pushed file is checked before
/// anything is stored — ONNX Runtime must load an ONNX file, TorchSharp a TorchScript one — so a
/// refused push leaves no row and no blob. Trained zoo models are exported to ONNX on demand and
/// the export is kept as a blob.
/// </summary>
public sealed partial class ModelRegistry : IDisposable
{
    /// <summary>The largest model file accepted (1 GiB): pushed files are checked in memory.</summary>
    public const long MaxFileBytes = 1L << 30;

    /// <summary>The export formats; ONNX is the one every runtime reads.</summary>
    public const string OnnxFormat = "onnx";

    private readonly TrainingStore _store;
    private readonly BlobStore _blobs;
    private readonly IDeploymentStore _deployments;
    private readonly TimeProvider _time;
    private readonly ILogger<ModelRegistry> _logger;

    // Loading TorchScript and building models for export allocate in libtorch; one thread keeps
    // that memory in one malloc arena (see TorchThread) and runs one such job at a time.
    private readonly Lazy<TorchThread> _torch = new(() => new TorchThread("emc-model-registry"));

    public ModelRegistry(TrainingStore store, BlobStore blobs, IDeploymentStore deployments, TimeProvider time, ILogger<ModelRegistry> logger)
    {
        _store = store;
        _blobs = blobs;
        _deployments = deployments;
        _time = time;
        _logger = logger;
    }

    /// <summary>Every version of every model (only <paramref name="owner"/>'s when given), by name then version.</summary>
    public async Task<IReadOnlyList<ModelDescriptor>> ListAsync(string? owner, CancellationToken cancellationToken)
    {
        var rows = await _store.ListModelsAsync(cancellationToken);
        return [.. rows.Where(r => owner is null || r.Owner == owner).Select(Describe)];
    }

    /// <summary>One version, or the newest when <paramref name="version"/> is null; null when there is none.</summary>
    public async Task<ModelDescriptor?> GetAsync(string name, int? version, CancellationToken cancellationToken) =>
        await _store.GetModelAsync(name, version, cancellationToken) is { } row ? Describe(row) : null;

    /// <summary>The descriptor of a stored row, with the inputs and outputs of a trained model filled in.</summary>
    public static ModelDescriptor Describe(ModelRow row)
    {
        ArgumentNullException.ThrowIfNull(row);
        var descriptor = TrainingJson.ReadDescriptor(row.DescriptorJson) with { Name = row.Name, Version = row.Version, Owner = row.Owner };
        return descriptor.File is null
            ? descriptor with
            {
                Inputs = descriptor.Inputs ?? ModelSignature.TrainedInputs(descriptor),
                Outputs = descriptor.Outputs ?? ModelSignature.TrainedOutputs(descriptor),
            }
            : descriptor;
    }

    /// <summary>Checks a pushed file and registers it as a new version of <see cref="Caller.Operator"/>'s.</summary>
    public Task<RegistryResult<ModelDescriptor>> PushAsync(ModelPush push, CancellationToken cancellationToken) =>
        PushAsync(push, Caller.Operator, cancellationToken);

    /// <summary>
    /// Checks a pushed file and registers it as a new version. Model names are one namespace for the
    /// network (inference routes name models): a new name becomes <paramref name="caller"/>'s, and a name
    /// another account holds, as a model or as an engine deployment, is refused (409) unless the caller is
    /// the operator, whose push adds a version to the holder's model.
    /// </summary>
    public async Task<RegistryResult<ModelDescriptor>> PushAsync(ModelPush push, Caller caller, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(push);
        ArgumentNullException.ThrowIfNull(caller);
        if (!ModelNames.IsValid(push.Name))
        {
            return Invalid($"'{push.Name}' is not a model name: {ModelNames.Rule}");
        }

        if (await NameHolderAsync(push.Name, cancellationToken) is { } holder && !caller.MayAccess(holder))
        {
            return RegistryResult.Fail<ModelDescriptor>(409, "Name in use", $"the model name '{push.Name}' is taken by another account; choose another name");
        }

        if (push.Version is < 1)
        {
            return Invalid("version must be a positive integer");
        }

        if (push.Content.Length == 0)
        {
            return Invalid("the file is empty");
        }

        var (format, formatError) = ModelFiles.DetectFormat(push.Content, push.Format);
        if (format is null)
        {
            return Invalid(formatError!);
        }

        IReadOnlyList<TensorMetadata> inputs;
        IReadOnlyList<TensorMetadata> outputs;
        if (format == ModelFiles.Onnx)
        {
            if (push.Inputs.Count > 0 || push.Outputs.Count > 0)
            {
                return Invalid("an ONNX file declares its own inputs and outputs; input and output are only for TorchScript files");
            }

            string? error;
            (inputs, outputs, _, error) = await Task.Run(() => ModelFiles.ReadOnnx(push.Content, detected: push.Format is null or ""), cancellationToken);
            if (error is not null)
            {
                return Invalid(error);
            }
        }
        else
        {
            var error = ModelFiles.CheckTorchScriptLayout(push.Content)
                ?? ModelFiles.CheckSignature(push.Inputs, push.Outputs)
                ?? await LoadTorchScriptAsync(push.Content, cancellationToken);
            if (error is not null)
            {
                return Invalid(error);
            }

            (inputs, outputs) = (push.Inputs, push.Outputs);
        }

        var now = _time.GetUtcNow();
        var hash = await _blobs.PutAsync(push.Content, cancellationToken);
        var descriptor = new ModelDescriptor
        {
            Name = push.Name,
            Format = format,
            Model = format == ModelFiles.Onnx ? new ModelSpec { Name = ModelFiles.Onnx } : new ModelSpec { Name = ModelSpec.TorchScript, Script = hash },
            SampleShape = [],
            Weights = "",
            File = hash,
            Inputs = inputs,
            Outputs = outputs,
            Bytes = push.Content.Length,
            CreatedAt = now,
        };
        var row = new ModelRow
        {
            Name = push.Name,
            Format = format,
            DescriptorJson = TrainingJson.Write(descriptor),
            WeightsHash = "",
            FileHash = hash,
            Bytes = push.Content.Length,
            CreatedAtUnixMs = now.ToUnixTimeMilliseconds(),
            Owner = caller.AccountId,
        };
        var version = await _store.AddModelVersionAsync(row, push.Version, cancellationToken);
        if (version is null)
        {
            await DeleteUnreferencedAsync([hash], cancellationToken);
            return RegistryResult.Fail<ModelDescriptor>(409, "Version exists", push.Version is { } v
                ? $"model '{push.Name}' already has version {v}; push without a version to add the next one"
                : $"another push of '{push.Name}' took the next version at the same time; push again");
        }

        Log.Pushed(_logger, push.Name, version.Value, format, hash, push.Content.Length);
        return RegistryResult.Ok<ModelDescriptor>(Describe(row));
    }

    /// <summary>Removes one version, or every version when <paramref name="version"/> is null; refused while a deployment serves one.</summary>
    public async Task<RegistryResult<IReadOnlyList<ModelDescriptor>>> RemoveAsync(string name, int? version, CancellationToken cancellationToken)
    {
        if (version is < 1)
        {
            return RegistryResult.Fail<IReadOnlyList<ModelDescriptor>>(400, "Bad version", "version must be a positive integer");
        }

        var existing = (await _store.ListModelsAsync(cancellationToken)).Where(m => m.Name == name && (version is null || m.Version == version)).ToList();
        if (existing.Count == 0)
        {
            return RegistryResult.Fail<IReadOnlyList<ModelDescriptor>>(404, "Model not found", NotFound(name, version));
        }

        var deployed = (await _deployments.ListAsync(cancellationToken))
            .Where(d => d.Spec.Model == name && (version is null || d.Version == version))
            .ToList();
        if (deployed.Count > 0)
        {
            return RegistryResult.Fail<IReadOnlyList<ModelDescriptor>>(409, "Model deployed",
                $"{Reference(name, version)} is served by {string.Join(", ", deployed.Select(d => $"deployment {d.Id} (version {d.Version})"))}; undeploy it first");
        }

        var removed = await _store.RemoveModelsAsync(name, version, cancellationToken);
        var descriptors = removed.Select(Describe).ToList();
        await DeleteUnreferencedAsync(removed.SelectMany(r => new[] { r.WeightsHash, r.FileHash, r.OnnxExportHash }.Concat(descriptors.Select(d => d.Model.Script))), cancellationToken);
        foreach (var row in removed)
        {
            Log.Removed(_logger, row.Name, row.Version);
        }

        return RegistryResult.Ok<IReadOnlyList<ModelDescriptor>>(descriptors);
    }

    /// <summary>
    /// The blob holding the ONNX export of a trained zoo model (built from its registered weights
    /// the first time, then kept), and the version exported.
    /// </summary>
    public async Task<RegistryResult<(string Hash, ModelDescriptor Model)>> ExportAsync(string name, int? version, string? format, CancellationToken cancellationToken)
    {
        if (!string.Equals(format ?? OnnxFormat, OnnxFormat, StringComparison.Ordinal))
        {
            return ExportFail(400, "Unsupported format", $"'{format}' is not an export format; the only one is onnx");
        }

        if (version is < 1)
        {
            return ExportFail(400, "Bad version", "version must be a positive integer");
        }

        if (await _store.GetModelAsync(name, version, cancellationToken) is not { } row)
        {
            return ExportFail(404, "Model not found", NotFound(name, version));
        }

        var model = Describe(row);
        if (model.Format == ModelFiles.Onnx)
        {
            return ExportFail(400, "Already ONNX", $"{name}:{row.Version} was pushed as an ONNX file; download it as it is with emc model pull");
        }

        if (model.Format != "emc-zoo" || model.File is not null)
        {
            return ExportFail(400, "Not exportable", $"{name}:{row.Version} is a TorchScript model, whose graph is opaque to the exporter; pull it with emc model pull and convert it with PyTorch's torch.onnx.export");
        }

        if (row.OnnxExportHash is { } cached && _blobs.Exists(cached))
        {
            return RegistryResult.Ok<(string, ModelDescriptor)>((cached, model));
        }

        if (await _blobs.ReadAsync(model.Weights, cancellationToken) is not { } weights)
        {
            return ExportFail(500, "Weights missing", $"the weights blob {model.Weights} of {name}:{row.Version} is not stored");
        }

        byte[] onnx;
        try
        {
            onnx = await _torch.Value.RunAsync(() =>
            {
                using var trainable = TrainableModel.Create(model.Model, model.SampleShape, model.Classes, model.IsText, "cpu", seed: 0);
                trainable.WriteVector(WeightsCodec.Decode(weights, model.VectorLength));
                return OnnxExporter.Export(trainable);
            }, cancellationToken);
        }
        catch (Exception ex) when (ex is NotSupportedException or ArgumentException or InvalidDataException)
        {
            return ExportFail(400, "Not exportable", $"{name}:{row.Version} cannot be exported to ONNX: {ex.Message}");
        }

        var hash = await _blobs.PutAsync(onnx, cancellationToken);
        await _store.SetOnnxExportAsync(row.Name, row.Version, hash, cancellationToken);
        Log.Exported(_logger, row.Name, row.Version, hash, onnx.Length);
        return RegistryResult.Ok<(string, ModelDescriptor)>((hash, model));
    }

    /// <summary>
    /// The account that holds a model name: the owner of its registered versions, or of the engine
    /// deployment that serves under it; null when the name is free.
    /// </summary>
    public async Task<string?> NameHolderAsync(string name, CancellationToken cancellationToken) =>
        await _store.ModelOwnerAsync(name, cancellationToken)
        ?? (await _deployments.ListAsync(cancellationToken)).FirstOrDefault(d => d.Spec.Engine && d.Spec.Model == name)?.Owner;

    /// <summary>
    /// Whether <paramref name="hash"/> is one of the files of model <paramref name="name"/> (of its
    /// version <paramref name="version"/>, or of any version): the pushed file, the trained weights, the
    /// TorchScript module or the ONNX export.
    /// </summary>
    public async Task<bool> IsFileOfAsync(string name, int? version, string hash, CancellationToken cancellationToken)
    {
        var rows = (await _store.ListModelsAsync(cancellationToken)).Where(m => m.Name == name && (version is null || m.Version == version));
        return rows.Any(r => hash == r.FileHash || hash == r.WeightsHash || hash == r.OnnxExportHash || hash == Describe(r).Model.Script);
    }

    public void Dispose()
    {
        if (_torch.IsValueCreated)
        {
            _torch.Value.Dispose();
        }
    }

    private static RegistryResult<ModelDescriptor> Invalid(string error) => RegistryResult.Fail<ModelDescriptor>(400, "Invalid model", error);

    private static RegistryResult<(string Hash, ModelDescriptor Model)> ExportFail(int status, string title, string error) =>
        RegistryResult.Fail<(string, ModelDescriptor)>(status, title, error);

    private static string Reference(string name, int? version) => version is null ? $"model '{name}'" : $"model '{name}' version {version}";

    private static string NotFound(string name, int? version) => version is null ? $"No model named '{name}'." : $"Model '{name}' has no version {version}.";

    /// <summary>Loads the archive with libtorch, as a node would; the error when it cannot.</summary>
    private async Task<string?> LoadTorchScriptAsync(byte[] content, CancellationToken cancellationToken)
    {
        var path = Path.Combine(Path.GetTempPath(), $"emc-push-{Guid.NewGuid():N}.pt");
        await File.WriteAllBytesAsync(path, content, cancellationToken);
        try
        {
            return await _torch.Value.RunAsync<string?>(() =>
            {
                TorchRuntime.EnsureInitialized();
                try
                {
                    using var module = torch.jit.load(path);
                    return null;
                }
                catch (Exception ex) when (ex is ExternalException or ArgumentException or InvalidOperationException)
                {
                    return $"libtorch cannot load the TorchScript module: {FirstLine(ex.Message)}";
                }
            }, cancellationToken);
        }
        finally
        {
            File.Delete(path);
        }
    }

    private static string FirstLine(string text)
    {
        var end = text.IndexOf('\n', StringComparison.Ordinal);
        return (end < 0 ? text : text[..end]).Trim();
    }

    private async Task DeleteUnreferencedAsync(IEnumerable<string?> hashes, CancellationToken cancellationToken)
    {
        var candidates = hashes.Where(BlobStore.IsHash).Distinct(StringComparer.Ordinal).ToList();
        if (candidates.Count == 0)
        {
            return;
        }

        var referenced = await _store.ReferencedBlobsAsync(cancellationToken);
        foreach (var hash in candidates.Where(h => !referenced.Contains(h!)))
        {
            _blobs.Delete(hash!);
        }
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 2300, Level = LogLevel.Information, Message = "Model {Model}:{Version} pushed ({Format}, {Hash}, {Bytes} bytes)")]
        public static partial void Pushed(ILogger logger, string model, int version, string format, string hash, long bytes);

        [LoggerMessage(EventId = 2301, Level = LogLevel.Information, Message = "Model {Model}:{Version} removed")]
        public static partial void Removed(ILogger logger, string model, int version);

        [LoggerMessage(EventId = 2302, Level = LogLevel.Information, Message = "Model {Model}:{Version} exported to ONNX ({Hash}, {Bytes} bytes)")]
        public static partial void Exported(ILogger logger, string model, int version, string hash, long bytes);
    }
}
