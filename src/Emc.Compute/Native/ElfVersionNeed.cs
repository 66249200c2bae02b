namespace Emc.Compute.Native;

/// <summary>
/// One symbol version that an ELF shared object requires from one of its dependencies: a
/// Vernaux entry of the <c>.gnu.version_r</c> section (for example <c>GLIBCXX_3.4.32</c> from
/// <c>libstdc++.so.6</c>).
/// </summary>
/// <param name="File">The dependency that must provide the version (the Verneed entry's <c>vn_file</c>).</param>
/// <param name="Version">The version name (<c>vna_name</c>).</param>
/// <param name="Flags">The entry's <c>vna_flags</c>.</param>
/// <param name="FlagsOffset">The file offset of the two-byte <c>vna_flags</c> field.</param>
public sealed record ElfVersionNeed(string File, string Version, ushort Flags, long FlagsOffset)
{
    /// <summary>
    /// Whether the entry carries <c>VER_FLG_WEAK</c>, which makes the dynamic loader accept a
    /// dependency that lacks the version instead of refusing to load the object.
    /// </summary>
    public bool IsWeak => (Flags & ElfVersionNeedPatcher.WeakFlag) != 0;
}
