using System.Text.Json;
using Emc.Compute;
using Emc.Compute.Training;
using Emc.Core;
using Emc.Core.Training;
using Emc.Core.Verification;
using Emc.Node.Work;
using Microsoft.Extensions.Logging;
using TorchSharp;

namespace Emc.Node.Training;

/// <summary>
/// "train-replay": recomputes another member's share of a round (<see cref="ReplayWork"/>) — the round's
/// weights, the member's committed inner optimizer state, its batches, steps and step offset, the job's
/// model, seed and settings — with the same code path as a round (<see cref="InnerSteps"/>), and uploads
/// the pseudo-gradient for the coordinator to compare with the member's. The model and optimizer are the
/// replay's own: the node's own session in the job is left untouched. One replay runs at a time, on its
/// own torch thread (for a TorchScript model on the training thread, whose dropout draws from libtorch's
/// global generator).
/// </summary>
public sealed partial class TrainReplayExecutor : ITaskExecutor, IDisposable
{
    /// <summary>The most inner steps a replay takes on.</summary>
    public const int MaxSteps = 1_000_000;

    private readonly BlobCache _blobs;
    private readonly SplitCache _splits;
    private readonly TrainRoundExecutor _training;
    private readonly ILogger _logger;
    private readonly SemaphoreSlim _gate = new(1, 1);
    private readonly TorchThread _torch = new("emc-replay");

    public TrainReplayExecutor(BlobCache blobs, SplitCache splits, TrainRoundExecutor training, ILogger logger)
    {
        _blobs = blobs;
        _splits = splits;
        _training = training;
        _logger = logger;
    }

    /// <inheritdoc />
    public string Kind => ReplayWork.TaskKind;

    /// <summary>Torch threads; 0 leaves libtorch's default. The same setting as training's, which it shares.</summary>
    public int Threads { get; init; }

    /// <summary>A simulated fault (<c>--simulate-fault</c>): a cheat replays the way it trains, so its replays are wrong the same way.</summary>
    public FaultSimulation? Fault { get; init; }

    /// <inheritdoc />
    public async Task<string> RunAsync(TaskContext context, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(context);
        ReplayWork work;
        try
        {
            work = JsonSerializer.Deserialize<ReplayWork>(context.Input, EmcJson.Options) ?? throw new JsonException("empty");
        }
        catch (JsonException ex)
        {
            throw new TaskFailedException($"the replay description is not valid: {ex.Message}", retryable: false);
        }

        if (Problem(work) is { } problem)
        {
            throw new TaskFailedException($"the replay cannot run: {problem}", retryable: false);
        }

        await _gate.WaitAsync(cancellationToken);
        try
        {
            var manifest = await _splits.ManifestAsync(work.DatasetManifest, cancellationToken);
            if (!manifest.Splits.TryGetValue(work.TrainSplit, out var split))
            {
                throw new InvalidDataException($"the dataset has no '{work.TrainSplit}' split");
            }

            var data = await _splits.GetAsync(work.DatasetManifest, work.TrainSplit, split, cancellationToken);
            // Into memory, not the cache: the node's own rounds evict weights they are done with.
            var weights = await _blobs.FetchAsync(work.Weights, cancellationToken);
            var state = work.State is { } stateHash ? await _blobs.FetchAsync(stateHash, cancellationToken) : null;

            var script = work.Model.Script is { } scriptHash ? await _blobs.GetPathAsync(scriptHash, cancellationToken) : null;
            var isText = manifest.Task == Core.Data.DatasetTask.LanguageModeling;
            var fault = Fault is { } simulated && simulated.Mode is not (FaultMode.WrongOutput or FaultMode.OverstatedHardware) && simulated.Strikes(Random.Shared.NextDouble())
                ? simulated.Mode
                : FaultMode.None;
            var thread = script is null ? _torch : _training.Torch;
            var encoded = await thread.RunAsync(
                () => Replay(work, split, data, isText, weights, state, script, context.Device, Threads, fault, cancellationToken),
                cancellationToken);
            var hash = await _blobs.UploadAsync(encoded, cancellationToken);
            Log.Replayed(_logger, work.JobId, work.Round, work.Node, work.Steps);
            return JsonSerializer.Serialize(new ReplayReport(hash, work.Steps), EmcJson.Options);
        }
        catch (InvalidDataException ex)
        {
            throw new TaskFailedException($"the replay cannot run: {ex.Message}", retryable: false);
        }
        catch (ArgumentException ex)
        {
            throw new TaskFailedException($"the replay cannot run here: {ex.Message}", retryable: false);
        }
        finally
        {
            _gate.Release();
        }
    }

    public void Dispose()
    {
        _torch.Dispose();
        _gate.Dispose();
    }

    private static string? Problem(ReplayWork work)
    {
        if (!Core.Crypto.ContentHash.IsValid(work.Weights) || !Core.Crypto.ContentHash.IsValid(work.DatasetManifest)
            || (work.State is not null && !Core.Crypto.ContentHash.IsValid(work.State)))
        {
            return "a blob name is not a sha256";
        }

        if (work.Steps is < 1 or > MaxSteps || work.BatchSize < 1 || work.VectorLength < 1 || work.StreamStart < 0 || work.StepOffset < 0 || work.TrainExamples < 1)
        {
            return "its steps, batch, stream position or sizes are out of range";
        }

        return null;
    }

    /// <summary>The replay's torch work: the member's steps from its start, Δ = W − θ, encoded as the job asks.</summary>
    private static byte[] Replay(
        ReplayWork work,
        Core.Data.SplitManifest split,
        ExampleSet data,
        bool isText,
        byte[] weights,
        byte[]? state,
        string? script,
        string device,
        int threads,
        FaultMode fault,
        CancellationToken cancellationToken)
    {
        TorchRuntime.EnsureInitialized();
        if (threads > 0)
        {
            torch.set_num_threads(threads);
        }

        using var model = TrainableModel.Create(work.Model, split.SampleShape, split.Classes, isText, device, work.Seed, script);
        if (model.VectorLength != work.VectorLength)
        {
            throw new InvalidDataException($"the model has {model.VectorLength} weights, the round {work.VectorLength}");
        }

        var start = WeightsCodec.Decode(weights, work.VectorLength);

        model.WriteVector(start);
        using var trainer = new InnerTrainer(InnerSteps.Options(work.Inner, work.MicroBatch, work.TotalSteps));
        if (state is not null)
        {
            trainer.ImportState(model, state);
        }

        var batches = InnerSteps.Batches(work.Seed, work.Shuffle, work.TrainExamples, work.StreamStart, work.Steps, work.BatchSize, isText ? work.Model.Context ?? 128 : 0);
        var limit = fault switch
        {
            FaultMode.Lazy => Math.Max(1, (int)Math.Ceiling(batches.Count * FaultSimulation.LazyStepFraction)),
            FaultMode.Copy => 0,
            _ => batches.Count,
        };
        InnerSteps.Run(trainer, model, data, batches, work.StepOffset, limit, budgetClock: null, TimeSpan.MaxValue, cancellationToken);
        model.SubtractFrom(start);
        SimulatedFaults.Apply(fault, start, [], []);
        return UpdateCodec.Encode(start, work.Precision);
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 311, Level = LogLevel.Information, Message = "Replayed training {JobId} round {Round} of {Node}: {Steps} steps")]
        public static partial void Replayed(ILogger logger, string jobId, long round, string node, int steps);
    }
}
