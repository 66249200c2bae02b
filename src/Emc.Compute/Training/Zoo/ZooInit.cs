using TorchSharp;
using static TorchSharp.torch;

namespace Emc.Compute.Training.Zoo;

/// <summary>
/// Initialises a zoo model's parameters from a private generator, so that the same seed gives
/// the same weights bit for bit on every node and thread, whatever libtorch's global generator
/// has been used for. Draws happen on the CPU in <c>named_parameters</c> order.
/// </summary>
internal static class ZooInit
{
    /// <summary>
    /// PyTorch's defaults for Linear and Conv layers (uniform in ±1/√fan_in for weight and
    /// bias, which is what <c>kaiming_uniform_(a=√5)</c> works out to); norm weights 1, biases 0.
    /// </summary>
    public static void FanInUniform(nn.Module module, long seed)
    {
        Apply(module, seed, (weight, generator) =>
        {
            var bound = 1.0 / Math.Sqrt(FanIn(weight));
            return Uniform(weight.Shape, bound, generator);
        }, (weight, bias, generator) => Uniform(bias.Shape, 1.0 / Math.Sqrt(FanIn(weight)), generator));
    }

    /// <summary>
    /// GPT-2's scheme: matrices and embeddings from N(0, 0.02²), the residual output
    /// projections (<c>*.proj.weight</c>) scaled down by √(2·layers), biases 0, norm weights 1.
    /// </summary>
    public static void Gpt(nn.Module module, long seed, int layers)
    {
        var residualStd = 0.02 / Math.Sqrt(2.0 * layers);
        Apply(module, seed, (weight, generator) =>
        {
            // Only the name says whether a matrix writes into the residual stream.
            using var normal = torch.randn(weight.Shape, generator: generator);
            return normal.mul(weight.Name.EndsWith(".proj.weight", StringComparison.Ordinal) ? residualStd : 0.02);
        }, (weight, bias, generator) => torch.zeros(bias.Shape));
    }

    private static void Apply(
        nn.Module module,
        long seed,
        Func<NamedTensor, Generator, Tensor> matrix,
        Func<NamedTensor, NamedTensor, Generator, Tensor> bias)
    {
        using var generator = new Generator(unchecked((ulong)seed), torch.CPU);
        using var noGrad = torch.no_grad();
        var parameters = module.named_parameters().ToList();
        var byName = parameters.ToDictionary(p => p.name, p => p.parameter, StringComparer.Ordinal);
        foreach (var (name, parameter) in parameters)
        {
            using var scope = torch.NewDisposeScope();
            Tensor value;
            if (parameter.dim() >= 2)
            {
                value = matrix(new NamedTensor(name, parameter), generator);
            }
            else if (name.EndsWith(".bias", StringComparison.Ordinal) || name == "bias")
            {
                var weightName = name[..^"bias".Length] + "weight";
                value = byName.TryGetValue(weightName, out var weight) && weight.dim() >= 2
                    ? bias(new NamedTensor(weightName, weight), new NamedTensor(name, parameter), generator)
                    : torch.zeros(parameter.shape);
            }
            else
            {
                value = torch.ones(parameter.shape);
            }

            parameter.copy_(value);
        }
    }

    private static long FanIn(NamedTensor weight) => weight.Tensor.numel() / weight.Tensor.shape[0];

    private static Tensor Uniform(long[] shape, double bound, Generator generator)
    {
        using var unit = torch.rand(shape, generator: generator);
        using var scaled = unit.mul(2 * bound);
        return scaled.sub(bound);
    }

    internal readonly record struct NamedTensor(string Name, Tensor Tensor)
    {
        public long[] Shape => Tensor.shape;
    }
}
