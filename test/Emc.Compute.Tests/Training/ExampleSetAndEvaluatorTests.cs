using Emc.Compute.Training;
using Emc.Core.Data;
using TorchSharp;
using static TorchSharp.torch;

namespace Emc.Compute.Tests.Training;

[Collection(TorchCollection.Name)]
public sealed class ExampleSetAndEvaluatorTests
{
    [Fact]
    public void ClassificationBatch_AcrossBlocks_ScalesBytesAndKeepsLabels()
    {
        var a = new ExampleBlock { Count = 2, SampleShape = [2, 2], ElementType = ElementType.U8, Data = [0, 255, 51, 102, 1, 2, 3, 4], Labels = [7, 8] };
        var empty = new ExampleBlock { Count = 0, SampleShape = [2, 2], ElementType = ElementType.U8, Data = [], Labels = [] };
        var b = new ExampleBlock { Count = 1, SampleShape = [2, 2], ElementType = ElementType.U8, Data = [10, 20, 30, 40], Labels = [9] };
        var set = new ExampleSet([a, empty, b]);
        using var scope = torch.NewDisposeScope();

        var (input, target) = set.ClassificationBatch([2, 0], torch.CPU);

        Assert.Equal(3, set.Count);
        Assert.False(set.IsText);
        Assert.Equal([2L, 2, 2], input.shape);
        Assert.Equal(ScalarType.Float32, input.dtype);
        Assert.Equal(new[] { 10 / 255f, 20 / 255f, 30 / 255f, 40 / 255f, 0f, 1f, 51 / 255f, 102 / 255f }, input.data<float>().ToArray());
        Assert.Equal(ScalarType.Int64, target.dtype);
        Assert.Equal(new long[] { 9, 7 }, target.data<long>().ToArray());
        Assert.Throws<ArgumentOutOfRangeException>(() => set.ClassificationBatch([3], torch.CPU));
    }

    [Fact]
    public void ClassificationBatch_F32_PassesValuesThrough()
    {
        var block = TrainingData.Blobs(4, 3, 2, seed: 1);
        var set = new ExampleSet(block);
        using var scope = torch.NewDisposeScope();

        var (input, _) = set.ClassificationBatch([1], torch.CPU);

        Assert.Equal(System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(block.Data.AsSpan(12, 12)).ToArray(), input.data<float>().ToArray());
    }

    [Fact]
    public void TextBatch_WindowAcrossBlocks_IsShiftedByOne()
    {
        var set = new ExampleSet([TrainingData.Text("abcd"), TrainingData.Text("efgh")]);
        using var scope = torch.NewDisposeScope();

        var (input, target) = set.TextBatch([2, 0], 4, torch.CPU);

        Assert.True(set.IsText);
        Assert.Equal([2L, 4], input.shape);
        Assert.Equal("cdefabcd"u8.ToArray().Select(b => (long)b), input.data<long>().ToArray());
        Assert.Equal("defgbcde"u8.ToArray().Select(b => (long)b), target.data<long>().ToArray());
        Assert.Throws<ArgumentOutOfRangeException>(() => set.TextBatch([4], 4, torch.CPU));
        Assert.Throws<InvalidOperationException>(() => set.ClassificationBatch([0], torch.CPU));
    }

    [Fact]
    public void Constructor_InconsistentBlocks_Throws()
    {
        var a = TrainingData.Images(2, [4, 4], 3, seed: 1);
        var b = TrainingData.Images(2, [4, 5], 3, seed: 1);
        var broken = new ExampleBlock { Count = 3, SampleShape = [4, 4], ElementType = ElementType.U8, Data = new byte[16], Labels = [0, 0, 0] };

        Assert.Throws<ArgumentException>(() => new ExampleSet([a, b]));
        Assert.Throws<ArgumentException>(() => new ExampleSet([a, TrainingData.Text("x")]));
        Assert.Throws<ArgumentException>(() => new ExampleSet(broken));
        Assert.Throws<ArgumentException>(() => new ExampleSet([]));
    }

    [Fact]
    public void Evaluate_Classification_CountsExamplesAndRestoresTrainMode()
    {
        var data = new ExampleSet(TrainingData.Blobs(256, 20, 5, seed: 9));
        using var model = TrainingData.SmallMlp(dropout: 0.5);
        var indices = Enumerable.Range(0, 100).Select(i => (long)i).ToList();

        var before = Evaluator.Evaluate(model, data, indices, batchSize: 32);
        var again = Evaluator.Evaluate(model, data, indices, batchSize: 7);
        using (var trainer = new InnerTrainer(new Emc.Compute.Training.InnerOptions { LearningRate = 1e-2 }))
        {
            trainer.Run(model, data, TrainingData.Consecutive(30, 64, 0).Select(b => b.Select(i => i % 256).ToArray()).ToList(), 0, CancellationToken.None);
        }

        var after = Evaluator.Evaluate(model, data, indices, batchSize: 32);

        Assert.Equal(100, before.Count);
        Assert.InRange(before.Correct, 0, 100);
        Assert.True(before.LossSum > 0);

        // Eval mode switches dropout off, so batching does not change the result.
        Assert.Equal(before.Correct, again.Correct);
        Assert.Equal(before.LossSum, again.LossSum, 1e-3);
        Assert.True(model.Module.training);
        Assert.True(after.Accuracy > 0.9, $"accuracy {after.Accuracy} after training");
        Assert.True(after.MeanLoss < before.MeanLoss);
    }

    [Fact]
    public void Evaluate_Text_CountsPredictedBytes()
    {
        var data = new ExampleSet(TrainingData.Text(new string('z', 200)));
        using var model = TrainableModelTests.SmallGpt(seed: 1);

        var result = Evaluator.Evaluate(model, data, [0, 5, 10, 20, 40, 80, 100, 150, 160, 183], batchSize: 4);

        Assert.Equal(10 * 16, result.Count);
        Assert.InRange(result.Correct, 0, 160);
        Assert.InRange(result.MeanLoss, 4.5, 7); // near ln 256 before training
        Assert.Equal(result with { }, result.Add(new EvalResult(0, 0, 0)));
    }
}
