namespace Emc.Compute.Native;

/// <summary>What <see cref="ElfVersionNeedPatcher.Patch"/> found and did.</summary>
/// <param name="Weakened">The entries that the call marked weak, with their new flags.</param>
/// <param name="AlreadyWeak">The requested entries that were weak before the call.</param>
public sealed record ElfVersionNeedPatchResult(
    IReadOnlyList<ElfVersionNeed> Weakened,
    IReadOnlyList<ElfVersionNeed> AlreadyWeak)
{
    /// <summary>Whether the call changed any byte of the image.</summary>
    public bool Changed => Weakened.Count > 0;
}
