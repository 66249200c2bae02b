using static TorchSharp.torch;

namespace Emc.Compute.Training.Zoo;

/// <summary>
/// Base of the zoo's modules. Each registers its submodules explicitly, under the names PyTorch's
/// emc_zoo.py gives them (<c>conv1</c>, not the field's <c>_conv1</c>), so that exported
/// state_dicts load there. TorchSharp would otherwise register every field a second time, by
/// field name, when a parent registers the module.
/// </summary>
internal abstract class ZooModule : nn.Module<Tensor, Tensor>
{
    protected ZooModule(string name)
        : base(name)
    {
    }

    protected override void RegisterComponents()
    {
    }
}
