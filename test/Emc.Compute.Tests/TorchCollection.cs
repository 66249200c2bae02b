using Emc.Compute;

namespace Emc.Compute.Tests;

/// <summary>
/// Every test that touches TorchSharp joins this collection: the fixture initialises libtorch
/// (and applies the libstdc++ fix-up) once before any of them runs, and the collection keeps
/// them from running in parallel with each other on the two-core CI machine.
/// </summary>
[CollectionDefinition(Name)]
public sealed class TorchCollection : ICollectionFixture<TorchFixture>
{
    public const string Name = "Torch";
}

public sealed class TorchFixture
{
    public TorchFixture()
    {
        Info = TorchRuntime.EnsureInitialized();
    }

    public TorchRuntimeInfo Info { get; }
}
