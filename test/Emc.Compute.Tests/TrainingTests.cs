using TorchSharp;
using static TorchSharp.torch;

namespace Emc.Compute.Tests;

[Collection(TorchCollection.Name)]
public sealed class TrainingTests
{
    [Fact]
    public void TrainMlp_RandomRegressionOnCpu_LossDecreasesAndGradientsAreFinite()
    {
        torch.manual_seed(1234);
        using var model = nn.Sequential(
            ("fc1", nn.Linear(8, 32)),
            ("relu", nn.ReLU()),
            ("fc2", nn.Linear(32, 1)));
        using var inputs = torch.randn(256, 8);
        using var weights = torch.randn(8, 1);
        using var targets = inputs.matmul(weights);
        using var optimizer = torch.optim.Adam(model.parameters(), lr: 0.01);

        var losses = new List<float>();
        for (var step = 0; step < 60; step++)
        {
            using var scope = torch.NewDisposeScope();
            optimizer.zero_grad();
            var loss = nn.functional.mse_loss(model.call(inputs), targets);
            loss.backward();

            if (step == 0)
            {
                var parameters = model.named_parameters().ToList();
                Assert.Equal(4, parameters.Count);
                Assert.All(parameters, p =>
                {
                    Assert.NotNull(p.parameter.grad);
                    Assert.True(p.parameter.grad.isfinite().all().item<bool>(), $"gradient of {p.name} is not finite");
                    Assert.True(p.parameter.grad.abs().sum().item<float>() > 0f, $"gradient of {p.name} is all zeros");
                });
            }

            optimizer.step();
            losses.Add(loss.item<float>());
        }

        Assert.All(losses, l => Assert.True(float.IsFinite(l)));
        Assert.True(losses[^1] < losses[0] * 0.25f, $"loss went from {losses[0]} to {losses[^1]}");
    }
}
