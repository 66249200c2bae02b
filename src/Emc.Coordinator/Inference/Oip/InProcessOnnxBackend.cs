using System.Collections.Concurrent;
using Emc.Compute.Inference;
using Emc.Core.Inference;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Emc.Coordinator.Inference.Oip;

/// <summary>
/// An <see cref="IInferenceBackend"/> that runs ONNX models inside the coordinator process with
/// <see cref="OnnxSession"/>: for tests of the front ends, and as a fallback when no node serves a model.
/// Each model is one cached session, disposed with the backend.
/// </summary>
/// <remarks>
/// Requests are checked with <see cref="OipValidator"/> against metadata derived from the model's graph
/// (<see cref="OnnxModelInfo"/>: symbolic dimensions -1). Fixed-size inputs are handed to ONNX Runtime
/// in place. The run is cancelled when the deadline passes (503) or the caller gives up.
/// </remarks>
public sealed class InProcessOnnxBackend : IInferenceBackend, IDisposable
{
    /// <summary>The platform reported in model metadata.</summary>
    public const string Platform = "onnx_onnxv1";

    private readonly ConcurrentDictionary<string, Model> _models = new(StringComparer.Ordinal);
    private readonly TimeProvider _time;
    private readonly ILogger _logger;

    public InProcessOnnxBackend(TimeProvider? time = null, ILogger<InProcessOnnxBackend>? logger = null)
    {
        _time = time ?? TimeProvider.System;
        _logger = logger ?? NullLogger<InProcessOnnxBackend>.Instance;
    }

    /// <summary>
    /// Loads <paramref name="onnx"/> as <paramref name="name"/> (one version per name; adding a name again
    /// replaces it). Throws <see cref="NotSupportedException"/> for a model with an input or output that
    /// is not a tensor of a protocol datatype, and what <see cref="OnnxSession.Load(byte[], OnnxSessionOptions?)"/> throws.
    /// </summary>
    public ModelMetadata Add(string name, byte[] onnx, string version = "1", OnnxSessionOptions? options = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        ArgumentException.ThrowIfNullOrEmpty(version);
        var session = OnnxSession.Load(onnx, options);
        try
        {
            var metadata = new ModelMetadata
            {
                Name = name,
                Versions = [version],
                Platform = Platform,
                Inputs = Describe(session.Info.Inputs, "input"),
                Outputs = Describe(session.Info.Outputs, "output"),
            };
            var model = new Model(metadata, version, session);
            _models.AddOrUpdate(name, model, (_, old) =>
            {
                old.Session.Dispose();
                return model;
            });
            OipLog.ModelLoaded(_logger, name, version, metadata.Inputs.Count, metadata.Outputs.Count);
            return metadata;
        }
        catch
        {
            session.Dispose();
            throw;
        }
    }

    /// <inheritdoc/>
    public ValueTask<ModelMetadata?> GetMetadataAsync(string model, string? version, CancellationToken cancellationToken) =>
        ValueTask.FromResult(Find(model, version)?.Metadata);

    /// <inheritdoc/>
    public ValueTask<bool> IsReadyAsync(string model, string? version, CancellationToken cancellationToken) =>
        ValueTask.FromResult(Find(model, version) is not null);

    /// <inheritdoc/>
    public Task<InferResponse> InferAsync(string model, string? version, InferRequest request, DateTimeOffset deadline, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(request);
        var found = Find(model, version) ?? throw OipException.UnknownModel(model, version);
        OipValidator.EnsureValid(request, found.Metadata);
        var left = deadline - _time.GetUtcNow();
        if (left <= TimeSpan.Zero)
        {
            throw OipException.Unavailable($"model '{model}': the request's deadline passed before it could run");
        }

        string[]? outputNames = null;
        if (request.Outputs.Count > 0)
        {
            outputNames = new string[request.Outputs.Count];
            for (var i = 0; i < outputNames.Length; i++)
            {
                outputNames[i] = request.Outputs[i].Name;
            }
        }

        using var timeout = new CancellationTokenSource(left, _time);
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(timeout.Token, cancellationToken);
        IReadOnlyList<InferTensor> outputs;
        try
        {
            outputs = found.Session.Run(request.Inputs, outputNames, linked.Token);
        }
        catch (OperationCanceledException) when (timeout.IsCancellationRequested && !cancellationToken.IsCancellationRequested)
        {
            throw OipException.Unavailable($"model '{model}': the request did not finish before its deadline");
        }
        catch (ArgumentException ex)
        {
            throw new OipException(OipErrorKind.BadRequest, $"model '{model}': {ex.Message}", ex);
        }
        catch (InvalidOperationException ex)
        {
            // Shapes that fit the declared dimensions can still be wrong for the graph (a reshape, a concat).
            throw new OipException(OipErrorKind.BadRequest, $"model '{model}' could not run on this input: {ex.Message}", ex);
        }

        return Task.FromResult(new InferResponse { ModelName = model, ModelVersion = found.Version, Id = request.Id, Outputs = outputs });
    }

    public void Dispose()
    {
        foreach (var model in _models.Values)
        {
            model.Session.Dispose();
        }

        _models.Clear();
    }

    private static TensorMetadata[] Describe(IReadOnlyList<OnnxTensorInfo> tensors, string kind)
    {
        var result = new TensorMetadata[tensors.Count];
        for (var i = 0; i < result.Length; i++)
        {
            var tensor = tensors[i];
            if (tensor.Datatype is not { } datatype)
            {
                throw new NotSupportedException($"{kind} '{tensor.Name}' is {tensor.TypeName}, which the Open Inference Protocol cannot carry");
            }

            result[i] = new TensorMetadata(tensor.Name, datatype, [.. tensor.Shape]);
        }

        return result;
    }

    private Model? Find(string name, string? version) =>
        _models.TryGetValue(name, out var model) && (string.IsNullOrEmpty(version) || version == model.Version) ? model : null;

    private sealed record Model(ModelMetadata Metadata, string Version, OnnxSession Session);
}
