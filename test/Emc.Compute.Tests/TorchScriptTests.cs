using System.Text.Json;
using TorchSharp;
using static TorchSharp.torch;

namespace Emc.Compute.Tests;

/// <summary>
/// Runs the TorchScript module that test/fixtures/make_torchscript.py saved with PyTorch 1.13
/// (Debian's python3-torch) through TorchSharp's libtorch.
/// </summary>
[Collection(TorchCollection.Name)]
public sealed class TorchScriptTests
{
    private static readonly string _fixtureDirectory = Path.Combine(AppContext.BaseDirectory, "fixtures");
    private static readonly string _modelPath = Path.Combine(_fixtureDirectory, "tiny_mlp.pt");
    private static readonly JsonSerializerOptions _jsonOptions = new() { PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower };

    [Fact]
    public void Load_PyTorchScriptedMlp_ForwardMatchesPyTorchOutput()
    {
        var fixture = ReadFixture();
        using var module = torch.jit.load<Tensor, Tensor>(_modelPath);
        module.eval();
        using var input = torch.tensor(fixture.Input, fixture.InputShape);

        using var output = module.call(input);

        Assert.Equal(fixture.OutputShape, output.shape);
        var actual = output.data<float>().ToArray();
        Assert.Equal(fixture.Output.Length, actual.Length);
        for (var i = 0; i < actual.Length; i++)
        {
            Assert.True(
                Math.Abs(actual[i] - fixture.Output[i]) <= 1e-5f,
                $"output[{i}] = {actual[i]}, PyTorch gave {fixture.Output[i]}");
        }
    }

    [Fact]
    public void Train_PyTorchScriptedMlp_LossDecreasesAndParametersChange()
    {
        torch.manual_seed(99);
        using var module = torch.jit.load<Tensor, Tensor>(_modelPath);
        module.train();
        var parameters = module.named_parameters().ToList();
        Assert.Equal(["fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"], parameters.Select(p => p.name));
        Assert.Equal((4 * 8) + 8 + (8 * 2) + 2, parameters.Sum(p => p.parameter.numel()));
        var before = parameters.Select(p => p.parameter.detach().clone()).ToList();

        using var inputs = torch.randn(64, 4);
        using var targets = torch.randn(64, 2);
        using var optimizer = torch.optim.Adam(module.parameters(), lr: 0.05);
        var losses = new List<float>();
        for (var step = 0; step < 40; step++)
        {
            using var scope = torch.NewDisposeScope();
            optimizer.zero_grad();
            var loss = nn.functional.mse_loss(module.call(inputs), targets);
            loss.backward();
            optimizer.step();
            losses.Add(loss.item<float>());
        }

        Assert.True(losses[^1] < losses[0], $"loss went from {losses[0]} to {losses[^1]}");
        for (var i = 0; i < parameters.Count; i++)
        {
            Assert.False(before[i].equal(parameters[i].parameter).all().item<bool>(), $"{parameters[i].name} did not change");
            before[i].Dispose();
        }
    }

    private static TinyMlpFixture ReadFixture()
    {
        var fixture = JsonSerializer.Deserialize<TinyMlpFixture>(File.ReadAllText(Path.Combine(_fixtureDirectory, "tiny_mlp.json")), _jsonOptions);
        Assert.NotNull(fixture);
        return fixture;
    }

    private sealed record TinyMlpFixture(long[] InputShape, float[] Input, long[] OutputShape, float[] Output);
}
