using Emc.Compute.Training;
using Emc.Core.Training;

namespace Emc.Compute.Tests.Training;

[Collection(TorchCollection.Name)]
public sealed class InnerTrainerTests
{
    private static readonly InnerOptions _sgd = new() { Optimizer = InnerOptions.Sgd, LearningRate = 0.1, WeightDecay = 0, Momentum = 0 };

    [Fact]
    public void Run_MlpOnBlobs_LossDropsClearly()
    {
        var data = new ExampleSet(TrainingData.Blobs(512, 20, 5, seed: 1));
        using var model = TrainingData.SmallMlp();
        using var trainer = new InnerTrainer(new InnerOptions { LearningRate = 1e-2 });
        var batches = Enumerable.Range(0, 40).Select(s => Shuffled(512, seed: s).Take(64).ToArray()).ToList();

        var result = trainer.Run(model, data, batches, 0, CancellationToken.None);

        Assert.Equal(40, result.Losses.Length);
        Assert.Equal(40 * 64, result.Samples);
        Assert.True(result.Elapsed > TimeSpan.Zero);
        Assert.All(result.Losses, l => Assert.True(float.IsFinite(l)));
        var first = result.Losses.Take(3).Average();
        var last = result.Losses.TakeLast(3).Average();
        Assert.True(last < first * 0.2, $"loss went from {first} to {last}");
    }

    [Fact]
    public void Run_MicroBatches_GiveTheWholeBatchUpdate()
    {
        var data = new ExampleSet(TrainingData.Blobs(64, 20, 5, seed: 2));
        long[][] batch = [[.. Enumerable.Range(0, 30).Select(i => (long)(i * 2))]];
        using var whole = TrainingData.SmallMlp();
        using var accumulated = TrainingData.SmallMlp();
        using var wholeTrainer = new InnerTrainer(_sgd);
        using var accumulatingTrainer = new InnerTrainer(_sgd with { MicroBatch = 8 });
        var start = whole.ReadVector();

        var wholeResult = wholeTrainer.Run(whole, data, batch, 0, CancellationToken.None);
        var accumulatedResult = accumulatingTrainer.Run(accumulated, data, batch, 0, CancellationToken.None);

        Assert.Equal(wholeResult.Losses[0], accumulatedResult.Losses[0], 1e-5f);
        AssertClose(Delta(start, whole.ReadVector()), Delta(start, accumulated.ReadVector()), 1e-5);
    }

    [Fact]
    public void Run_TwoReplicasOnHalfBatchesAveraged_EqualsOneStepOnWholeBatch()
    {
        var data = new ExampleSet(TrainingData.Blobs(64, 20, 5, seed: 3));
        var indices = Shuffled(64, seed: 3).Take(32).ToArray();
        using var reference = TrainingData.SmallMlp(seed: 11);
        var canonical = reference.ReadVector();

        using var wholeTrainer = new InnerTrainer(_sgd);
        wholeTrainer.Run(reference, data, [indices], 0, CancellationToken.None);
        var wholeDelta = Delta(canonical, reference.ReadVector());

        var deltas = new List<float[]>();
        foreach (var half in new[] { indices[..16], indices[16..] })
        {
            // Each replica starts from the canonical weights as a node does: a vector written into a model.
            using var replica = TrainingData.SmallMlp(seed: 99);
            replica.WriteVector(canonical);
            using var trainer = new InnerTrainer(_sgd);
            trainer.Run(replica, data, [half], 0, CancellationToken.None);
            deltas.Add(Delta(canonical, replica.ReadVector()));
        }

        var averaged = deltas[0].Zip(deltas[1], (a, b) => (a + b) / 2).ToArray();
        AssertClose(wholeDelta, averaged, 1e-5);
    }

    [Fact]
    public void Run_TwoCallsWithOneTrainer_EqualOneCallOfBothBatches()
    {
        var data = new ExampleSet(TrainingData.Blobs(128, 20, 5, seed: 4));
        var batches = TrainingData.Consecutive(4, 32);
        var options = new InnerOptions { LearningRate = 1e-2, Schedule = InnerOptions.WarmupCosine, WarmupSteps = 2, TotalSteps = 4 };
        using var once = TrainingData.SmallMlp();
        using var twice = TrainingData.SmallMlp();
        using var onceTrainer = new InnerTrainer(options);
        using var twiceTrainer = new InnerTrainer(options);

        var all = onceTrainer.Run(once, data, batches, 0, CancellationToken.None);
        var first = twiceTrainer.Run(twice, data, batches[..2], 0, CancellationToken.None);
        var second = twiceTrainer.Run(twice, data, batches[2..], 2, CancellationToken.None);

        // The AdamW moments (and the schedule position) carried over, so the weights agree.
        Assert.Equal(all.Losses, first.Losses.Concat(second.Losses).ToArray());
        Assert.Equal(once.ReadVector(), twice.ReadVector());
    }

    [Fact]
    public void Run_AfterResetState_StartsFreshMoments()
    {
        var data = new ExampleSet(TrainingData.Blobs(64, 20, 5, seed: 5));
        var batches = TrainingData.Consecutive(2, 32);
        using var carried = TrainingData.SmallMlp();
        using var reset = TrainingData.SmallMlp();
        using var carriedTrainer = new InnerTrainer(new InnerOptions());
        using var resetTrainer = new InnerTrainer(new InnerOptions());

        carriedTrainer.Run(carried, data, batches[..1], 0, CancellationToken.None);
        resetTrainer.Run(reset, data, batches[..1], 0, CancellationToken.None);
        resetTrainer.ResetState();
        carriedTrainer.Run(carried, data, batches[1..], 1, CancellationToken.None);
        resetTrainer.Run(reset, data, batches[1..], 1, CancellationToken.None);

        Assert.NotEqual(carried.ReadVector(), reset.ReadVector());
    }

    [Fact]
    public void Run_WithDropout_RerunFromSameStepIsIdentical()
    {
        var data = new ExampleSet(TrainingData.Images(64, [8, 8], 3, seed: 6));
        var spec = new ModelSpec { Name = ModelSpec.Cnn, Channels = [4], Hidden = [16], Dropout = 0.5 };
        var batches = TrainingData.Consecutive(3, 16);
        float[] Train(long stepOffset)
        {
            using var model = TrainableModel.Create(spec, [8, 8], 3, false, "cpu", 21);
            using var trainer = new InnerTrainer(_sgd);
            trainer.Run(model, data, batches, stepOffset, CancellationToken.None);
            return model.ReadVector();
        }

        var a = Train(10);
        var b = Train(10);
        var c = Train(11);

        Assert.Equal(a, b);
        Assert.NotEqual(a, c);
    }

    [Fact]
    public void Run_Cancelled_ThrowsBeforeTheNextStep()
    {
        var data = new ExampleSet(TrainingData.Blobs(64, 20, 5, seed: 7));
        using var model = TrainingData.SmallMlp();
        using var trainer = new InnerTrainer(_sgd);
        var before = model.ReadVector();
        using var cancellation = new CancellationTokenSource();
        cancellation.Cancel();

        Assert.Throws<OperationCanceledException>(() => trainer.Run(model, data, TrainingData.Consecutive(2, 32), 0, cancellation.Token));
        Assert.Equal(before, model.ReadVector());
    }

    [Fact]
    public void Run_GradClip_LimitsTheStep()
    {
        var data = new ExampleSet(TrainingData.Blobs(64, 20, 5, seed: 8));
        using var model = TrainingData.SmallMlp();
        using var trainer = new InnerTrainer(_sgd with { LearningRate = 1, GradClip = 0.01 });
        var before = model.ReadVector();

        trainer.Run(model, data, TrainingData.Consecutive(1, 32), 0, CancellationToken.None);

        var norm = Math.Sqrt(Delta(before, model.ReadVector()).Sum(d => (double)d * d));
        Assert.InRange(norm, 0.009, 0.0101);
    }

    [Fact]
    public void Run_GptSmallOnRepeatedText_LossFalls()
    {
        var data = new ExampleSet(TrainingData.Text(string.Concat(Enumerable.Repeat("the quick brown fox jumps over the lazy dog. ", 40))));
        using var model = TrainableModelTests.SmallGpt(seed: 3);
        using var trainer = new InnerTrainer(new InnerOptions { LearningRate = 3e-3 });
        var random = new Random(1);
        var batches = Enumerable.Range(0, 40)
            .Select(_ => Enumerable.Range(0, 16).Select(_ => (long)random.Next((int)data.Count - model.Context - 1)).ToArray())
            .ToList();

        var result = trainer.Run(model, data, batches, 0, CancellationToken.None);

        Assert.InRange(result.Losses[0], 5.0f, 6.5f); // about ln 256 = 5.55 at initialisation
        var last = result.Losses.TakeLast(3).Average();
        Assert.True(last < 2.5, $"loss went from {result.Losses[0]} to {last}");
    }

    [Theory]
    [InlineData("constant", 0, 0.1, 0.1)]
    [InlineData("cosine", 0, 0.1, 0.1)]
    [InlineData("cosine", 50, 0.1, 0.055)]
    [InlineData("cosine", 100, 0.1, 0.01)]
    [InlineData("cosine", 1000, 0.1, 0.01)]
    [InlineData("warmup-cosine", 0, 0.1, 0.01)]
    [InlineData("warmup-cosine", 9, 0.1, 0.1)]
    [InlineData("warmup-cosine", 10, 0.1, 0.1)]
    [InlineData("warmup-cosine", 100, 0.1, 0.01)]
    public void LearningRateAt_Schedules_FollowTheirShape(string schedule, long step, double peak, double expected)
    {
        var options = new InnerOptions { LearningRate = peak, Schedule = schedule, WarmupSteps = 10, TotalSteps = 100, MinLrFraction = 0.1 };

        Assert.Empty(options.Validate());
        Assert.Equal(expected, options.LearningRateAt(step), 1e-9);
    }

    [Fact]
    public void Constructor_InvalidOptions_ThrowsWithReasons()
    {
        var ex = Assert.Throws<ArgumentException>(() => new InnerTrainer(new InnerOptions { Optimizer = "lion", Schedule = InnerOptions.Cosine }));

        Assert.Contains("optimizer", ex.Message, StringComparison.Ordinal);
        Assert.Contains("total steps", ex.Message, StringComparison.Ordinal);
    }

    internal static float[] Delta(float[] before, float[] after) => [.. before.Zip(after, (b, a) => b - a)];

    private static void AssertClose(float[] expected, float[] actual, double relative)
    {
        Assert.Equal(expected.Length, actual.Length);
        var scale = Math.Sqrt(expected.Sum(v => (double)v * v));
        var error = Math.Sqrt(expected.Zip(actual, (e, a) => ((double)e - a) * ((double)e - a)).Sum());
        Assert.True(scale > 0, "the update is zero");
        Assert.True(error <= relative * scale, $"‖difference‖ = {error}, ‖update‖ = {scale}");
        var worst = expected.Zip(actual, (e, a) => Math.Abs(e - a)).Max();
        Assert.True(worst <= relative * expected.Max(Math.Abs) + 1e-9, $"largest element difference {worst}");
    }

    private static long[] Shuffled(int count, int seed)
    {
        var indices = Enumerable.Range(0, count).Select(i => (long)i).ToArray();
        new Random(seed).Shuffle(indices);
        return indices;
    }
}
