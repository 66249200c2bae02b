using System.Text.Json;
using Emc.Core;
using Emc.Core.Identity;
using Emc.Core.Training;
using Emc.Core.Verification;
using Emc.Node.Training;
using Emc.Node.Work;
using Microsoft.Extensions.Logging.Abstractions;
using Xunit.Abstractions;

namespace Emc.Node.Tests.Training;

/// <summary>
/// The node's side of training verification with real libtorch: the commitment to the inner optimizer
/// state, its upload, the replay of another member's round, and hardware challenges.
/// </summary>
public sealed class TrainVerificationExecutorTests(ITestOutputHelper output) : IDisposable
{
    private const int Rows = 256;
    private const int Batch = 16;
    private const int Steps = 12;
    private readonly FakeBlobServer _server = new();
    private readonly List<string> _directories = [];

    [Fact]
    public async Task TrainRound_CommitsToItsInnerState_AndTrainStateUploadsExactlyThoseBytes()
    {
        using var member = NewMember(threads: 1);
        var manifestHash = _server.PutBlobsDataset(Rows, seed: 1);

        var first = await member.RunRoundAsync(Work(manifestHash, round: 1, weights: null, vectorLength: 0, streamStart: 0, stepOffset: 0));
        Assert.Null(first.InnerState); // a fresh optimizer commits to nothing
        var second = await member.RunRoundAsync(Work(manifestHash, round: 2, first.BaseWeights, first.VectorLength, streamStart: Steps * Batch, stepOffset: Steps));
        var state = Assert.IsType<string>(second.InnerState);

        var report = await member.State.RunAsync(Context(StateRequest.TaskKind, new StateRequest { JobId = "train-1", Round = 2, State = state }), CancellationToken.None);

        Assert.Equal(state, JsonSerializer.Deserialize<StateReport>(report, EmcJson.Options)!.State);
        var (kind, entries) = InnerStateCodec.Decode(_server.Blobs[state], first.VectorLength);
        Assert.Equal(InnerStateKind.AdamW, kind);
        Assert.All(entries, e => Assert.Equal(Steps, e.Step)); // the state after round 1's steps, before round 2's
        var missing = await Assert.ThrowsAsync<TaskFailedException>(() => member.State.RunAsync(Context(StateRequest.TaskKind, new StateRequest { JobId = "train-1", Round = 2, State = new string('a', 64) }), CancellationToken.None));
        Assert.Contains("holds no committed state", missing.Message, StringComparison.Ordinal);
    }

    /// <summary>
    /// Honest replays: on another node with the same threads, and with other threads on a model large enough
    /// for libtorch to split its products (a 784-256-128 mlp, batch 64, 40 steps, int8 and fp32 updates).
    /// </summary>
    [Theory]
    [InlineData(1, false, UpdatePrecision.Int8)]
    [InlineData(2, false, UpdatePrecision.Int8)]
    [InlineData(2, true, UpdatePrecision.Int8)]
    [InlineData(2, true, UpdatePrecision.Fp32)]
    public async Task Replay_OfAnHonestRoundOnAnotherNode_ReproducesItsUpdate(int replayerThreads, bool large, UpdatePrecision precision)
    {
        var manifestHash = _server.PutBlobsDataset(large ? 512 : Rows, seed: 2, width: large ? 784 : 12);
        using var member = NewMember(threads: 1);
        RoundWork Sized(RoundWork work) => !large ? work with { Precision = precision } : work with
        {
            Model = new ModelSpec { Name = "mlp", Hidden = [256, 128] },
            TrainExamples = 512,
            BatchSize = 64,
            Precision = precision,
            Inner = work.Inner with { LearningRate = 1e-3 },
            Members = new Dictionary<string, MemberWork> { ["*"] = work.Members.Values.Single() with { Steps = 40, StreamStart = work.Members.Values.Single().StreamStart * 4 } },
        };
        var first = await member.RunRoundAsync(Sized(Work(manifestHash, round: 1, weights: null, vectorLength: 0, streamStart: 0, stepOffset: 0)));
        var work = Sized(Work(manifestHash, round: 2, first.BaseWeights, first.VectorLength, streamStart: Steps * Batch, stepOffset: Steps));
        var second = await member.RunRoundAsync(work);
        await member.State.RunAsync(Context(StateRequest.TaskKind, new StateRequest { JobId = "train-1", Round = 2, State = second.InnerState! }), CancellationToken.None);

        using var replayer = NewMember(threads: replayerThreads);
        var replayed = await replayer.ReplayAsync(ReplayOf(work, second));

        var claimed = UpdateCodec.Decode(_server.Blobs[second.Update!], second.VectorLength);
        var match = ReplayComparison.Compare(claimed, replayed);
        output.WriteLine($"member 1 thread, replayer {replayerThreads} threads, {(large ? "784-256-128 mlp, batch 64, 40 steps" : "12-16 mlp, batch 16, 12 steps")}, {precision}: {match.Evidence}");
        Assert.True(match.Agree, match.Evidence);
        Assert.True(match.Distance < 1e-2, match.Evidence);

        if (large)
        {
            // Rounding noise of another kind: the same batches accumulated in micro-batches of 16 sum in
            // another order, as another BLAS or a GPU would; 40 AdamW steps carry the difference on.
            var reordered = await replayer.ReplayAsync(ReplayOf(work, second) with { MicroBatch = 16 });
            var noisy = ReplayComparison.Compare(claimed, reordered);
            output.WriteLine($"  replayed in micro-batches of 16: {noisy.Evidence}");
            Assert.True(noisy.Agree, noisy.Evidence);
        }

        // Without the committed state (a fresh optimizer) the same steps give another update.
        var fresh = await replayer.ReplayAsync(ReplayOf(work, second) with { State = null });
        var freshMatch = ReplayComparison.Compare(claimed, fresh);
        output.WriteLine($"  replayed without the committed state: {freshMatch.Evidence}");
        Assert.False(freshMatch.Agree);
    }

    [Theory]
    [InlineData("sign-flip")]
    [InlineData("lazy")]
    [InlineData("scaled")]
    public async Task Replay_ByACheatingNode_IsWrongTheWayItsRoundsAre(string mode)
    {
        var manifestHash = _server.PutBlobsDataset(Rows, seed: 3);
        using var member = NewMember(threads: 1);
        var work = Work(manifestHash, round: 1, weights: null, vectorLength: 0, streamStart: 0, stepOffset: 0);
        var first = await member.RunRoundAsync(work);
        using var cheat = NewMember(threads: 1, FaultSimulation.Parse(mode));

        var replayed = await cheat.ReplayAsync(ReplayOf(work, first));

        var match = ReplayComparison.Compare(UpdateCodec.Decode(_server.Blobs[first.Update!], first.VectorLength), replayed);
        Assert.False(match.Agree, match.Evidence);
    }

    [Fact]
    public async Task Replay_WithAStateThatIsNotThere_FailsWithTheReason()
    {
        var manifestHash = _server.PutBlobsDataset(Rows, seed: 4);
        using var member = NewMember(threads: 1);
        var work = Work(manifestHash, round: 1, weights: null, vectorLength: 0, streamStart: 0, stepOffset: 0);
        var first = await member.RunRoundAsync(work);

        var error = await Assert.ThrowsAsync<TaskFailedException>(() => member.ReplayAsync(ReplayOf(work, first) with { State = new string('b', 64) }));
        Assert.Contains("no blob", error.Message, StringComparison.Ordinal);
        var bad = await Assert.ThrowsAsync<TaskFailedException>(() => member.Replay.RunAsync(Context(ReplayWork.TaskKind, "{\"jobId\": 3"), CancellationToken.None));
        Assert.Contains("not valid", bad.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Challenge_AnswersWithTheHashOfTheChain_ThenUploadsAResultThatPassesFreivalds()
    {
        using var node = NewMember(threads: 1);
        var work = new ChallengeWork { Seed = 99, Size = 256, Products = 4 };

        var answer = await node.Challenge.RunAsync(Context(ChallengeWork.TaskKind, work), CancellationToken.None);
        await node.Challenge.LastUpload.WaitAsync(TimeSpan.FromSeconds(30));

        var hash = JsonSerializer.Deserialize<ChallengeReport>(answer, EmcJson.Options)!.Result;
        var c = WeightsCodec.Decode(_server.Blobs[hash], 256 * 256);
        Assert.True(MatmulChallenge.Check(work, c, new Random(5)) < 1e-3);
        await Assert.ThrowsAsync<TaskFailedException>(() => node.Challenge.RunAsync(Context(ChallengeWork.TaskKind, work with { Size = 300 }), CancellationToken.None));
    }

    [Fact]
    public void StateStore_KeepsTheNewestStates_AcrossARestart()
    {
        var directory = Temp();
        var store = new TrainStateStore(directory, keep: 2);
        var hashes = Enumerable.Range(0, 3).Select(i => store.Commit([(byte)i, 1, 2])).ToList();

        Assert.Null(store.PathOf(hashes[0]));
        Assert.NotNull(store.PathOf(hashes[2]));
        Assert.Equal(2, Directory.GetFiles(directory).Length);
        var again = new TrainStateStore(directory, keep: 2);
        Assert.NotNull(again.PathOf(hashes[1]));
        Assert.Null(again.PathOf("../etc/passwd"));
    }

    public void Dispose()
    {
        foreach (var directory in _directories)
        {
            try
            {
                Directory.Delete(directory, recursive: true);
            }
            catch (IOException)
            {
                // Left for the OS.
            }
        }

        _server.Dispose();
    }

    private Member NewMember(int threads, FaultSimulation? fault = null) => new(_server, Temp(), threads, fault);

    private string Temp()
    {
        var directory = Directory.CreateTempSubdirectory("emc-node-verify-").FullName;
        _directories.Add(directory);
        return directory;
    }

    private static RoundWork Work(string manifestHash, long round, string? weights, long vectorLength, long streamStart, long stepOffset) => new()
    {
        JobId = "train-1",
        Round = round,
        Algorithm = TrainingAlgorithm.Diloco,
        Model = new ModelSpec { Name = "mlp", Hidden = [16] },
        DatasetManifest = manifestHash,
        TrainExamples = Rows,
        Weights = weights,
        VectorLength = vectorLength,
        Seed = 5,
        BatchSize = Batch,
        Inner = new InnerOptimizerSpec { Optimizer = "adamw", LearningRate = 0.01, WeightDecay = 0.01 },
        TotalSteps = 100,
        Precision = UpdatePrecision.Int8,
        Members = new Dictionary<string, MemberWork> { ["*"] = new() { Steps = Steps, StreamStart = streamStart, StepOffset = stepOffset, UploadInitialWeights = weights is null } },
    };

    private static ReplayWork ReplayOf(RoundWork work, RoundManifest manifest) => new()
    {
        JobId = work.JobId,
        Round = work.Round,
        Node = manifest.Node,
        Model = work.Model,
        DatasetManifest = work.DatasetManifest,
        TrainExamples = work.TrainExamples,
        Weights = manifest.BaseWeights,
        VectorLength = manifest.VectorLength,
        State = manifest.InnerState,
        Seed = work.Seed,
        BatchSize = work.BatchSize,
        Inner = work.Inner,
        TotalSteps = work.TotalSteps,
        Precision = work.Precision,
        StreamStart = manifest.StreamStart,
        Steps = manifest.Steps,
        StepOffset = work.Members.Values.Single().StepOffset,
    };

    private static TaskContext Context<T>(string kind, T input) =>
        new($"{kind}-1#1", $"{kind}-1", "job-1", input is string text ? text : JsonSerializer.Serialize(input, EmcJson.Options), "cpu");

    /// <summary>One node's executors against the fake coordinator.</summary>
    private sealed class Member : IDisposable
    {
        private readonly NodeKey _key;
        private readonly HttpClient _http;
        private readonly SplitCache _splits;
        private readonly FakeBlobServer _server;

        public Member(FakeBlobServer server, string directory, int threads, FaultSimulation? fault)
        {
            _server = server;
            _key = NodeKeyStore.LoadOrCreate(directory);
            _http = server.Client();
            var blobs = new BlobCache(_http, Path.Combine(directory, "blobs"));
            _splits = new SplitCache(blobs);
            var states = new TrainStateStore(Path.Combine(directory, "train-states"));
            Training = new TrainRoundExecutor(_key, blobs, _splits, states, NullLogger.Instance) { Threads = threads, Fault = fault };
            Replay = new TrainReplayExecutor(blobs, _splits, Training, NullLogger.Instance) { Threads = threads, Fault = fault };
            State = new TrainStateExecutor(states, blobs);
            Challenge = new ChallengeExecutor(blobs, NullLogger.Instance) { Threads = threads };
        }

        public TrainRoundExecutor Training { get; }

        public TrainReplayExecutor Replay { get; }

        public TrainStateExecutor State { get; }

        public ChallengeExecutor Challenge { get; }

        public async Task<RoundManifest> RunRoundAsync(RoundWork work)
        {
            var me = _key.Address.ToString();
            var mine = work with { Members = new Dictionary<string, MemberWork> { [me] = work.Members.Values.Single() } };
            var output = await Training.RunAsync(Context(RoundWork.TaskKind, mine), CancellationToken.None);
            var report = JsonSerializer.Deserialize<RoundReport>(output, EmcJson.Options)!;
            return JsonSerializer.Deserialize<RoundManifest>(report.Manifest, EmcJson.Options)!;
        }

        public async Task<float[]> ReplayAsync(ReplayWork work)
        {
            var output = await Replay.RunAsync(Context(ReplayWork.TaskKind, work), CancellationToken.None);
            var report = JsonSerializer.Deserialize<ReplayReport>(output, EmcJson.Options)!;
            return UpdateCodec.Decode(_server.Blobs[report.Update], work.VectorLength);
        }

        public void Dispose()
        {
            Challenge.Dispose();
            Replay.Dispose();
            Training.Dispose();
            _splits.Dispose();
            _http.Dispose();
            _key.Dispose();
        }
    }
}
