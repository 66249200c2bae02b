using TorchSharp;
using static TorchSharp.torch;

namespace Emc.Compute.Training.Zoo;

/// <summary>
/// Inverted dropout that draws its mask from a generator the model owns instead of libtorch's
/// process-wide one, so that a rerun of the same inner steps (same seed, same step offset)
/// drops the same units on any thread, whatever else the process trains.
/// </summary>
internal sealed class SeededDropout : ZooModule
{
    private readonly double _probability;
    private readonly Generator _generator;

    public SeededDropout(double probability, Generator generator)
        : base("dropout")
    {
        _probability = probability;
        _generator = generator;
    }

    public override Tensor forward(Tensor input)
    {
        if (!training || _probability == 0)
        {
            return input;
        }

        using var uniform = torch.rand(input.shape, input.dtype, input.device, generator: _generator);
        using var keep = uniform.ge(_probability);
        using var kept = input.mul(keep);
        return kept.div(1 - _probability);
    }
}
