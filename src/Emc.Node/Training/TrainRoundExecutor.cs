using System.Diagnostics;
using System.Text;
using System.Text.Json;
using Emc.Compute;
using Emc.Compute.Training;
using Emc.Core;
using Emc.Core.Data;
using Emc.Core.Identity;
using Emc.Core.Training;
using Emc.Core.Verification;
using Emc.Node.Work;
using Microsoft.Extensions.Logging;

namespace Emc.Node.Training;

/// <summary>
/// Runs one member's share of a training round ("train" tasks): fetch the dataset shards and the
/// round's weights (cached), evaluate those weights on the assigned held-out examples, run the inner
/// steps on the assigned batches, upload the pseudo-gradient Δ = W − θ and return a signed manifest.
/// The model, its inner optimizer state and the decoded data stay in memory between rounds of the
/// same job, so a node that stays in a job keeps its AdamW moments, as DiLoCo's workers do. Before its
/// steps the node commits to that state: its sha256 goes into the manifest and the state into the
/// <see cref="TrainStateStore"/>, from which a replay of the round is served ("train-state").
/// </summary>
public sealed partial class TrainRoundExecutor : ITaskExecutor, IDisposable
{
    private readonly NodeKey _key;
    private readonly BlobCache _blobs;
    private readonly SplitCache _splits;
    private readonly TrainStateStore _states;
    private readonly ILogger _logger;
    private readonly SemaphoreSlim _gate = new(1, 1);
    private readonly TorchThread _torch = new("emc-training");
    private JobSession? _session;

    public TrainRoundExecutor(NodeKey key, BlobCache blobs, SplitCache splits, TrainStateStore states, ILogger logger)
    {
        _key = key;
        _blobs = blobs;
        _splits = splits;
        _states = states;
        _logger = logger;
    }

    public string Kind => RoundWork.TaskKind;

    /// <summary>Torch threads for training; 0 leaves libtorch's default (all cores).</summary>
    public int Threads { get; init; }

    /// <summary>
    /// A fault to commit on purpose (<c>--simulate-fault</c> sign-flip, random, scaled, lazy or copy) on the
    /// given fraction of rounds; null (the default) for an honest node.
    /// </summary>
    public FaultSimulation? Fault { get; init; }

    /// <summary>The thread all of this executor's torch work runs on (replays of TorchScript jobs share it: such models draw dropout from libtorch's global generator).</summary>
    internal TorchThread Torch => _torch;

    public async Task<string> RunAsync(TaskContext context, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(context);
        RoundWork work;
        try
        {
            work = JsonSerializer.Deserialize<RoundWork>(context.Input, EmcJson.Options) ?? throw new JsonException("empty");
        }
        catch (JsonException ex)
        {
            throw new TaskFailedException($"the round description is not valid: {ex.Message}", retryable: false);
        }

        var me = _key.Address.ToString();
        var share = work.Members.FirstOrDefault(pair => string.Equals(pair.Key, me, StringComparison.OrdinalIgnoreCase)).Value
            ?? throw new TaskFailedException($"the round has no share for node {me}", retryable: false);

        await _gate.WaitAsync(cancellationToken);
        try
        {
            var session = await SessionAsync(work, context.Device, cancellationToken);
            var manifest = await RunRoundAsync(session, work, share, cancellationToken);
            var text = JsonSerializer.Serialize(manifest, EmcJson.Options);
            var signature = "0x" + Convert.ToHexStringLower(_key.SignMessage(Encoding.UTF8.GetBytes(text)));
            return JsonSerializer.Serialize(new RoundReport(text, signature), EmcJson.Options);
        }
        catch (InvalidDataException ex)
        {
            throw new TaskFailedException(ex.Message, retryable: false);
        }
        catch (ArgumentException ex)
        {
            Log.RoundFailed(_logger, work.JobId, work.Round, ex);
            throw new TaskFailedException($"the round cannot run here: {ex.Message}", retryable: false);
        }
        finally
        {
            _gate.Release();
        }
    }

    public void Dispose()
    {
        _session?.Dispose();
        _torch.Dispose();
        _gate.Dispose();
    }

    private async Task<RoundManifest> RunRoundAsync(JobSession session, RoundWork work, MemberWork share, CancellationToken cancellationToken)
    {
        // The time budget counts from the start of the task: fetching weights and evaluating use it too.
        var budgetClock = Stopwatch.StartNew();
        string? weightsPath = null;
        if (work.Weights is { } weightsHash)
        {
            weightsPath = await _blobs.GetPathAsync(weightsHash, cancellationToken);
            _blobs.Evict(session.SeenWeights, new HashSet<string> { weightsHash });
            session.SeenWeights.Clear();
            session.SeenWeights.Add(weightsHash);
        }

        // Every torch call of the job runs on the executor's one training thread.
        var fault = Fault is { } simulated && simulated.Strikes(Random.Shared.NextDouble()) ? simulated.Mode : FaultMode.None;
        var outcome = await _torch.RunAsync(() => RunTorchWork(session, work, share, weightsPath, budgetClock, fault, _states, cancellationToken), cancellationToken);
        var baseHash = work.Weights ?? outcome.InitialWeightsHash!;
        if (outcome.InitialWeights is { } initial && share.UploadInitialWeights)
        {
            await _blobs.UploadAsync(initial, cancellationToken);
        }

        string? update = null;
        if (outcome.Update is { } encodedUpdate)
        {
            // The session's update buffer: the next round of this job starts only after this upload.
            update = await _blobs.UploadAsync(encodedUpdate, cancellationToken);
        }

        Log.RoundDone(_logger, work.JobId, work.Round, outcome.Steps, outcome.Losses.Count > 0 ? outcome.Losses[^1] : float.NaN, outcome.TrainSeconds);
        return new RoundManifest
        {
            JobId = work.JobId,
            Round = work.Round,
            Node = _key.Address.ToString(),
            BaseWeights = baseHash,
            VectorLength = session.Start.Length,
            InnerState = outcome.InnerState,
            Update = update,
            UpdateBytes = outcome.Update?.Length ?? 0,
            Precision = work.Precision,
            StreamStart = share.StreamStart,
            Steps = outcome.Steps,
            Samples = (long)outcome.Steps * work.BatchSize,
            Losses = outcome.Losses,
            TrainSeconds = Math.Round(outcome.TrainSeconds, 4),
            Eval = outcome.Eval,
        };
    }

    /// <summary>
    /// The round's torch work, on the training thread. The node's one extra copy of the weights is
    /// the session's start vector: the round's weights are read into it, and after the inner steps
    /// the trained weights are subtracted from it in place, leaving Δ there to encode.
    /// </summary>
    private static RoundOutcome RunTorchWork(JobSession session, RoundWork work, MemberWork share, string? weightsPath, Stopwatch budgetClock, FaultMode fault, TrainStateStore states, CancellationToken cancellationToken)
    {
        byte[]? initialWeights = null;
        string? initialHash = null;
        if (weightsPath is not null)
        {
            var model = session.Model;
            session.EnsureStart(work.VectorLength > 0 ? work.VectorLength : model.VectorLength);
            using (var file = File.OpenRead(weightsPath))
            {
                WeightsCodec.Read(file, session.Start);
            }

            model.WriteVector(session.Start);
            session.RememberBase();
        }
        else
        {
            // First round: every member builds W(0) from the job's seed; the coordinator adopts the majority's build.
            session.ResetModel();
            var model = session.Model;
            session.EnsureStart(model.VectorLength);
            model.ReadVector(session.Start);
            initialWeights = WeightsCodec.Encode(session.Start);
            initialHash = Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(initialWeights));
            if (!share.UploadInitialWeights)
            {
                initialWeights = null;
            }
        }

        EvalStats? eval = null;
        if (work.EvalSplit is not null && share.EvalCount > 0 && session.Eval is { } evalSet)
        {
            var first = work.EvalFirst + share.EvalStart;
            var indices = new long[share.EvalCount];
            for (var i = 0; i < indices.Length; i++)
            {
                indices[i] = session.Position(first + i);
            }

            var result = Evaluator.Evaluate(session.Model, evalSet, indices, Math.Max(256, work.BatchSize));
            eval = new EvalStats(result.LossSum, result.Correct, result.Count);
        }

        var losses = new List<float>();
        var steps = 0;
        var watch = Stopwatch.StartNew();
        ReadOnlyMemory<byte>? update = null;
        string? innerState = null;
        if (share.Steps > 0)
        {
            var batches = InnerSteps.Batches(work.Seed, work.Shuffle, work.TrainExamples, share.StreamStart, share.Steps, work.BatchSize, session.IsText ? session.Context : 0);

            // The commitment: a replay of this round starts from exactly this state.
            if (session.Trainer.ExportState() is { } state)
            {
                innerState = states.Commit(state);
            }

            // Chunks let a slow node stop at its time budget and still hand in what it did.
            var budget = work.TimeBudgetSeconds > 0 && work.TimeBudgetSeconds < 1e9 ? TimeSpan.FromSeconds(work.TimeBudgetSeconds) : TimeSpan.MaxValue;
            var limit = fault switch
            {
                FaultMode.Lazy => Math.Max(1, (int)Math.Ceiling(batches.Count * FaultSimulation.LazyStepFraction)),
                FaultMode.Copy => 0,
                _ => batches.Count,
            };
            (losses, steps) = InnerSteps.Run(session.Trainer, session.Model, session.Train, batches, share.StepOffset, limit, budgetClock, budget, cancellationToken);

            session.Model.SubtractFrom(session.Start);
            if (fault is FaultMode.Lazy or FaultMode.Copy)
            {
                // A cheat claims the work it was given: every step, with a made-up loss trace.
                var made = losses.Count > 0 ? losses[^1] : eval is { Count: > 0 } e ? (float)(e.LossSum / e.Count) : 1f;
                while (losses.Count < batches.Count)
                {
                    losses.Add(made);
                }

                steps = batches.Count;
            }

            SimulatedFaults.Apply(fault, session.Start, session.PreviousBase, session.CurrentBase);
            var size = UpdateCodec.EncodedSize(session.Start.Length, work.Precision);
            if (session.UpdateBuffer.Length != size)
            {
                session.UpdateBuffer = new byte[size];
            }

            update = session.UpdateBuffer.AsMemory(0, UpdateCodec.Encode(session.Start, work.Precision, session.UpdateBuffer));
        }

        watch.Stop();
        return new RoundOutcome(initialWeights, initialHash, eval, losses, steps, watch.Elapsed.TotalSeconds, update, innerState);
    }

    private async Task<JobSession> SessionAsync(RoundWork work, string device, CancellationToken cancellationToken)
    {
        var key = $"{work.JobId}|{work.DatasetManifest}|{device}";
        if (_session is { } current && current.Key == key && current.Inner == work.Inner && current.MicroBatch == work.MicroBatch && current.TotalSteps == work.TotalSteps)
        {
            return current;
        }

        _session?.Dispose();
        _session = null;
        await _splits.RetainAsync(work.DatasetManifest, work.TrainSplit, work.EvalSplit, cancellationToken);
        var manifest = await _splits.ManifestAsync(work.DatasetManifest, cancellationToken);
        if (!manifest.Splits.TryGetValue(work.TrainSplit, out var trainSplit))
        {
            throw new InvalidDataException($"the dataset has no '{work.TrainSplit}' split");
        }

        var train = await _splits.GetAsync(work.DatasetManifest, work.TrainSplit, trainSplit, cancellationToken);
        ExampleSet? eval = null;
        if (work.EvalSplit is { } evalName)
        {
            eval = evalName == work.TrainSplit
                ? train
                : manifest.Splits.TryGetValue(evalName, out var evalSplit) ? await _splits.GetAsync(work.DatasetManifest, evalName, evalSplit, cancellationToken) : throw new InvalidDataException($"the dataset has no '{evalName}' split");
        }

        string? script = work.Model.Script is { } scriptHash ? await _blobs.GetPathAsync(scriptHash, cancellationToken) : null;
        // libtorch's native library is fixed up and loaded here, before the first torch call.
        TorchRuntime.EnsureInitialized();
        if (Threads > 0)
        {
            TorchSharp.torch.set_num_threads(Threads);
        }

        var isText = manifest.Task == DatasetTask.LanguageModeling;
        var inner = InnerSteps.Options(work.Inner, work.MicroBatch, work.TotalSteps);
        var session = new JobSession(
            key,
            () => TrainableModel.Create(work.Model, trainSplit.SampleShape, trainSplit.Classes, isText, device, work.Seed, script),
            new InnerTrainer(inner),
            train,
            eval,
            isText,
            isText ? work.Model.Context ?? 128 : 0)
        {
            Inner = work.Inner,
            MicroBatch = work.MicroBatch,
            TotalSteps = work.TotalSteps,
            KeepBases = Fault?.Mode == FaultMode.Copy,
        };
        _session = session;
        return session;
    }

    /// <summary>What a node keeps between rounds of one job.</summary>
    private sealed class JobSession(string key, Func<TrainableModel> build, InnerTrainer trainer, ExampleSet train, ExampleSet? eval, bool isText, int context) : IDisposable
    {
        private TrainableModel? _model;

        public string Key { get; } = key;

        public required InnerOptimizerSpec Inner { get; init; }

        public int MicroBatch { get; init; }

        public long TotalSteps { get; init; }

        public TrainableModel Model => _model ??= build();

        public InnerTrainer Trainer { get; } = trainer;

        public ExampleSet Train { get; } = train;

        public ExampleSet? Eval { get; } = eval;

        public bool IsText { get; } = isText;

        public HashSet<string> SeenWeights { get; } = new(StringComparer.Ordinal);

        /// <summary>The round's starting weights, then Δ: the one vector of the weights a node holds beside the model.</summary>
        public float[] Start { get; private set; } = [];

        /// <summary>The encoded Δ of the round, reused across rounds (uploaded before the next round starts).</summary>
        public byte[] UpdateBuffer { get; set; } = [];

        /// <summary>The weights of the round before the current one (for the simulated copy fault); empty until two rounds were seen.</summary>
        public float[] PreviousBase { get; private set; } = [];

        /// <summary>The weights the current round started from (for the simulated copy fault).</summary>
        public float[] CurrentBase { get; private set; } = [];

        /// <summary>Keeps the round's weights, and the previous round's, when a copy fault is simulated.</summary>
        public bool KeepBases { get; set; }

        public void RememberBase()
        {
            if (!KeepBases)
            {
                return;
            }

            (PreviousBase, CurrentBase) = (CurrentBase, PreviousBase);
            if (CurrentBase.Length != Start.Length)
            {
                CurrentBase = new float[Start.Length];
            }

            Start.AsSpan().CopyTo(CurrentBase);
        }

        /// <summary>Sizes <see cref="Start"/> to <paramref name="length"/> values, reusing it across rounds.</summary>
        public void EnsureStart(long length)
        {
            if (Start.LongLength != length)
            {
                Start = new float[length];
            }
        }

        /// <summary>The example index, or for text the first byte of window <paramref name="index"/>.</summary>
        public long Position(long index) => IsText ? index * Context : index;

        /// <summary>The context of a text model (bytes per window); 0 otherwise.</summary>
        public int Context { get; } = context;

        /// <summary>A fresh model from the seed and fresh optimizer state (the job's first round).</summary>
        public void ResetModel()
        {
            _model?.Dispose();
            _model = null;
            Trainer.ResetState();
        }

        public void Dispose()
        {
            _model?.Dispose();
            Trainer.Dispose();
        }
    }

    private sealed record RoundOutcome(byte[]? InitialWeights, string? InitialWeightsHash, EvalStats? Eval, List<float> Losses, int Steps, double TrainSeconds, ReadOnlyMemory<byte>? Update, string? InnerState);

    private static partial class Log
    {
        [LoggerMessage(EventId = 301, Level = LogLevel.Error, Message = "Training {JobId} round {Round} failed")]
        public static partial void RoundFailed(ILogger logger, string jobId, long round, Exception exception);

        [LoggerMessage(EventId = 302, Level = LogLevel.Information, Message = "Training {JobId} round {Round}: {Steps} steps, last loss {Loss:0.####}, {Seconds:0.##} s")]
        public static partial void RoundDone(ILogger logger, string jobId, long round, int steps, float loss, double seconds);
    }
}
