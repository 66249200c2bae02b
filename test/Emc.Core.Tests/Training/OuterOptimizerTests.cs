using Emc.Core.Training;

namespace Emc.Core.Tests.Training;

public class OuterOptimizerTests
{
    private static readonly float[][] Deltas = [[0.1f, 0.2f], [0.2f, -0.1f], [0f, 0.3f]];

    [Fact]
    public void Step_NesterovThreeSteps_MatchesHandComputedValues()
    {
        // buf = 0.9·buf + Δ; W −= 0.7·(Δ + 0.9·buf), worked by hand from W = [1, −2].
        var optimizer = new OuterOptimizer(new OuterOptimizerOptions(), 2);
        float[] weights = [1f, -2f];
        double[][] expected = [[0.867, -2.266], [0.5443, -2.2464], [0.37987, -2.69076]];

        for (var step = 0; step < 3; step++)
        {
            optimizer.Step(weights, Deltas[step]);
            Assert.Equal(expected[step][0], weights[0], 1e-6);
            Assert.Equal(expected[step][1], weights[1], 1e-6);
        }

        Assert.Equal(0.261, optimizer.MomentumBuffer[0], 1e-6);
        Assert.Equal(0.372, optimizer.MomentumBuffer[1], 1e-6);
    }

    [Fact]
    public void Step_PlainMomentumThreeSteps_MatchesHandComputedValues()
    {
        var optimizer = new OuterOptimizer(new OuterOptimizerOptions { Nesterov = false }, 2);
        float[] weights = [1f, -2f];
        double[][] expected = [[0.93, -2.14], [0.727, -2.196], [0.5443, -2.4564]];

        for (var step = 0; step < 3; step++)
        {
            optimizer.Step(weights, Deltas[step]);
            Assert.Equal(expected[step][0], weights[0], 1e-6);
            Assert.Equal(expected[step][1], weights[1], 1e-6);
        }
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void Step_LearningRateOneNoMomentum_IsExactlyWeightsMinusDelta(bool nesterov)
    {
        var random = new Random(12);
        var optimizer = new OuterOptimizer(new OuterOptimizerOptions { LearningRate = 1, Momentum = 0, Nesterov = nesterov }, 10_000);
        var weights = TestVectors.Gaussian(random, 10_000);

        for (var step = 0; step < 3; step++)
        {
            var delta = TestVectors.Gaussian(random, 10_000, 0.01);
            var expected = weights.Zip(delta, (w, d) => w - d).ToArray();
            optimizer.Step(weights, delta);
            Assert.Equal(expected, weights);
        }
    }

    [Fact]
    public void Constructor_RestoredMomentum_ContinuesExactlyLikeTheOriginal()
    {
        var random = new Random(13);
        var original = new OuterOptimizer(new OuterOptimizerOptions(), 5000);
        var weights = TestVectors.Gaussian(random, 5000);
        original.Step(weights, TestVectors.Gaussian(random, 5000));
        original.Step(weights, TestVectors.Gaussian(random, 5000));

        var restored = new OuterOptimizer(new OuterOptimizerOptions(), WeightsCodec.Decode(WeightsCodec.Encode(original.MomentumBuffer), 5000));
        var restoredWeights = WeightsCodec.Decode(WeightsCodec.Encode(weights));
        var delta = TestVectors.Gaussian(random, 5000);
        original.Step(weights, delta);
        restored.Step(restoredWeights, delta);

        Assert.Equal(weights, restoredWeights);
        Assert.Equal(original.MomentumBuffer, restored.MomentumBuffer);
    }

    [Theory]
    [InlineData(0.0, 0.9)]
    [InlineData(-0.1, 0.9)]
    [InlineData(double.NaN, 0.9)]
    [InlineData(0.7, 1.0)]
    [InlineData(0.7, -0.1)]
    public void Constructor_InvalidOptions_Throws(double learningRate, double momentum)
    {
        Assert.Throws<ArgumentOutOfRangeException>(
            () => new OuterOptimizer(new OuterOptimizerOptions { LearningRate = learningRate, Momentum = momentum }, 4));
    }

    [Fact]
    public void Constructor_NonFiniteMomentum_Throws()
    {
        Assert.Throws<ArgumentException>(() => new OuterOptimizer(new OuterOptimizerOptions(), [1f, float.NaN]));
    }

    [Fact]
    public void Step_LengthMismatch_Throws()
    {
        var optimizer = new OuterOptimizer(new OuterOptimizerOptions(), 3);

        Assert.Throws<ArgumentException>(() => optimizer.Step(new float[3], new float[2]));
        Assert.Throws<ArgumentException>(() => optimizer.Step(new float[2], new float[3]));
    }
}
