using System.Buffers.Binary;

namespace Emc.Compute.Native;

/// <summary>
/// Marks selected version-needed entries of an ELF64 little-endian shared object as weak
/// (<c>VER_FLG_WEAK</c> in the Vernaux <c>vna_flags</c> of the <c>.gnu.version_r</c> section).
/// </summary>
/// <remarks>
/// TorchSharp 0.107's <c>libLibTorchSharp.so</c> requires <c>GLIBCXX_3.4.32</c> (GCC 13's
/// libstdc++), which Debian 12 and Ubuntu 22.04 lack, so glibc refuses to load it. The only
/// symbol under that version is <c>std::ios_base_library_init()</c>, which GCC 13 references
/// without any relocation purely to force the dependency; with the entry weak the loader
/// accepts the older libstdc++ and nothing ever looks that symbol up. The patcher is pure: it
/// works on bytes and never touches the file system.
/// </remarks>
public static class ElfVersionNeedPatcher
{
    /// <summary><c>VER_FLG_WEAK</c>: a missing version is not fatal.</summary>
    public const ushort WeakFlag = 0x2;

    /// <summary>The versions weakened when the caller names none: just <c>GLIBCXX_3.4.32</c>.</summary>
    public static IReadOnlyList<string> DefaultVersions { get; } = ["GLIBCXX_3.4.32"];

    /// <summary>Lists every version-needed entry of <paramref name="image"/> in file order.</summary>
    /// <param name="image">The complete contents of an ELF64 little-endian file.</param>
    /// <returns>The entries; empty when the file has no <c>.gnu.version_r</c> section.</returns>
    /// <exception cref="InvalidDataException">The bytes are not a well-formed ELF64 little-endian file.</exception>
    public static IReadOnlyList<ElfVersionNeed> ReadVersionNeeds(ReadOnlySpan<byte> image) =>
        new ElfImage(image).ReadVersionNeeds();

    /// <summary>
    /// Whether <see cref="Patch"/> would change <paramref name="image"/>, i.e. whether any entry
    /// named in <paramref name="versions"/> is present and not yet weak.
    /// </summary>
    /// <exception cref="InvalidDataException">The bytes are not a well-formed ELF64 little-endian file.</exception>
    public static bool NeedsPatch(ReadOnlySpan<byte> image, IEnumerable<string>? versions = null)
    {
        var wanted = ToSet(versions);
        return new ElfImage(image).ReadVersionNeeds().Exists(n => wanted.Contains(n.Version) && !n.IsWeak);
    }

    /// <summary>
    /// Sets <c>VER_FLG_WEAK</c> on every entry whose version is in <paramref name="versions"/>,
    /// whatever dependency it is needed from. Only the two-byte flag fields of those entries change.
    /// </summary>
    /// <param name="image">The complete contents of an ELF64 little-endian file, patched in place.</param>
    /// <param name="versions">Version names to weaken; <see cref="DefaultVersions"/> when null.</param>
    /// <returns>Which entries were weakened and which already were weak.</returns>
    /// <exception cref="InvalidDataException">The bytes are not a well-formed ELF64 little-endian file.</exception>
    public static ElfVersionNeedPatchResult Patch(Span<byte> image, IEnumerable<string>? versions = null)
    {
        var wanted = ToSet(versions);

        // Everything is read and validated before the first write, so a malformed file is left untouched.
        var needs = new ElfImage(image).ReadVersionNeeds();
        var weakened = new List<ElfVersionNeed>();
        var alreadyWeak = new List<ElfVersionNeed>();
        foreach (var need in needs)
        {
            if (!wanted.Contains(need.Version))
            {
                continue;
            }

            if (need.IsWeak)
            {
                alreadyWeak.Add(need);
                continue;
            }

            var flags = (ushort)(need.Flags | WeakFlag);
            BinaryPrimitives.WriteUInt16LittleEndian(image[(int)need.FlagsOffset..], flags);
            weakened.Add(need with { Flags = flags });
        }

        return new ElfVersionNeedPatchResult(weakened, alreadyWeak);
    }

    private static HashSet<string> ToSet(IEnumerable<string>? versions) =>
        new(versions ?? DefaultVersions, StringComparer.Ordinal);
}
