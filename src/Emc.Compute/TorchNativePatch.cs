namespace Emc.Compute;

/// <summary>What <see cref="TorchRuntime.EnsureInitialized"/> did to <c>libLibTorchSharp.so</c>.</summary>
public enum TorchNativePatch
{
    /// <summary>Not Linux: the ELF fix-up does not apply.</summary>
    NotApplicable,

    /// <summary>The library was not found where the runtime probes; TorchSharp was left to find it.</summary>
    NotFound,

    /// <summary>The library does not declare the troublesome version need.</summary>
    NotNeeded,

    /// <summary>The library had already been patched (by an earlier run).</summary>
    AlreadyPatched,

    /// <summary>The library was patched in place.</summary>
    PatchedInPlace,

    /// <summary>The library could not be written, so a patched copy in the user's cache was loaded instead.</summary>
    PatchedCopy,
}
