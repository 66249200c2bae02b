using Emc.Compute.Training;
using Emc.Core.Training;

namespace Emc.Compute.Tests.Training;

/// <summary>Exporting and importing the inner optimizer's state: what a replay of a DiLoCo round starts from.</summary>
[Collection(TorchCollection.Name)]
public sealed class InnerStateTests
{
    [Theory]
    [InlineData(InnerOptions.AdamW, 0.0)]
    [InlineData(InnerOptions.Adam, 0.0)]
    [InlineData(InnerOptions.Sgd, 0.9)]
    public void ImportState_IntoAFreshTrainerAndModel_ContinuesExactlyAsTheOriginal(string optimizer, double momentum)
    {
        var data = new ExampleSet(TrainingData.Blobs(256, 20, 5, seed: 3));
        var options = new InnerOptions { Optimizer = optimizer, LearningRate = 1e-2, Momentum = momentum };
        var first = Batches(0, 10);
        var second = Batches(10, 10);
        using var original = TrainingData.SmallMlp();
        using var trainer = new InnerTrainer(options);
        Assert.Null(trainer.ExportState()); // a fresh optimizer has no state

        trainer.Run(original, data, first, 0, CancellationToken.None);
        var state = Assert.IsType<byte[]>(trainer.ExportState());
        var weights = original.ReadVector();
        trainer.Run(original, data, second, 10, CancellationToken.None);

        // Elsewhere: a new model with the weights, a new trainer with the state, the same steps.
        using var replica = TrainingData.SmallMlp();
        replica.WriteVector(weights);
        using var replay = new InnerTrainer(options);
        replay.ImportState(replica, state);
        Assert.Equal(state, replay.ExportState());
        replay.Run(replica, data, second, 10, CancellationToken.None);

        Assert.Equal(original.ReadVector(), replica.ReadVector());
    }

    [Fact]
    public void ExportState_OfPlainSgd_IsNothing_BecauseItKeepsNothing()
    {
        var data = new ExampleSet(TrainingData.Blobs(64, 20, 5, seed: 4));
        using var model = TrainingData.SmallMlp();
        using var trainer = new InnerTrainer(new InnerOptions { Optimizer = InnerOptions.Sgd, LearningRate = 0.1 });

        trainer.Run(model, data, Batches(0, 2), 0, CancellationToken.None);

        Assert.Null(trainer.ExportState());
    }

    [Fact]
    public void ImportState_OfAnotherOptimizerOrModel_IsRefused()
    {
        var data = new ExampleSet(TrainingData.Blobs(64, 20, 5, seed: 5));
        using var model = TrainingData.SmallMlp();
        using var adamw = new InnerTrainer(new InnerOptions());
        adamw.Run(model, data, Batches(0, 2), 0, CancellationToken.None);
        var state = adamw.ExportState()!;

        using var sgd = new InnerTrainer(new InnerOptions { Optimizer = InnerOptions.Sgd, LearningRate = 0.1, Momentum = 0.9 });
        Assert.Throws<InvalidDataException>(() => sgd.ImportState(model, state));
        using var other = TrainableModel.Create(new ModelSpec { Name = "mlp", Hidden = [7] }, [20], 5, isText: false, "cpu", seed: 1);
        using var fresh = new InnerTrainer(new InnerOptions());
        Assert.Throws<InvalidDataException>(() => fresh.ImportState(other, state));
        Assert.Throws<InvalidDataException>(() => fresh.ImportState(model, state.AsSpan(0, state.Length - 4)));
    }

    private static List<long[]> Batches(int first, int count) =>
        [.. Enumerable.Range(first, count).Select(s => Enumerable.Range(0, 16).Select(i => (long)(((s * 16) + i) % 64)).ToArray())];
}
