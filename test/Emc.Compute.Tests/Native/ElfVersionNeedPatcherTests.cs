using System.Buffers.Binary;
using Emc.Compute.Native;

namespace Emc.Compute.Tests.Native;

public sealed class ElfVersionNeedPatcherTests
{
    private const string Glibcxx332 = "GLIBCXX_3.4.32";

    private static readonly string _pristineLibraryPath =
        Path.Combine(AppContext.BaseDirectory, "pristine", "libLibTorchSharp.so");

    [Fact]
    public void Patch_RealLibTorchSharp_SetsWeakFlagOnGlibcxx3432AndChangesNothingElse()
    {
        var original = File.ReadAllBytes(_pristineLibraryPath);
        var before = ElfVersionNeedPatcher.ReadVersionNeeds(original);
        var target = Assert.Single(before, n => n.Version == Glibcxx332);
        Assert.Equal("libstdc++.so.6", target.File);
        Assert.False(target.IsWeak);

        var patched = (byte[])original.Clone();
        var result = ElfVersionNeedPatcher.Patch(patched);

        Assert.True(result.Changed);
        var weakened = Assert.Single(result.Weakened);
        Assert.Equal(target.FlagsOffset, weakened.FlagsOffset);
        Assert.Empty(result.AlreadyWeak);

        // Only the two bytes of that entry's vna_flags may differ, and only by VER_FLG_WEAK.
        Assert.Equal(original.Length, patched.Length);
        var changed = Enumerable.Range(0, original.Length).Where(i => original[i] != patched[i]).ToList();
        Assert.NotEmpty(changed);
        Assert.All(changed, i => Assert.InRange(i, target.FlagsOffset, target.FlagsOffset + 1));
        var flagsBefore = BinaryPrimitives.ReadUInt16LittleEndian(original.AsSpan((int)target.FlagsOffset));
        var flagsAfter = BinaryPrimitives.ReadUInt16LittleEndian(patched.AsSpan((int)target.FlagsOffset));
        Assert.Equal(flagsBefore | ElfVersionNeedPatcher.WeakFlag, flagsAfter);

        var after = ElfVersionNeedPatcher.ReadVersionNeeds(patched);
        Assert.Equal(before.Count, after.Count);
        Assert.True(Assert.Single(after, n => n.Version == Glibcxx332).IsWeak);
        Assert.Equal(
            before.Where(n => n.Version != Glibcxx332),
            after.Where(n => n.Version != Glibcxx332));
    }

    [Fact]
    public void Patch_AlreadyPatchedLibTorchSharp_ReportsNoChange()
    {
        var image = File.ReadAllBytes(_pristineLibraryPath);
        ElfVersionNeedPatcher.Patch(image);
        var once = (byte[])image.Clone();

        var result = ElfVersionNeedPatcher.Patch(image);

        Assert.False(result.Changed);
        Assert.Empty(result.Weakened);
        Assert.Equal(Glibcxx332, Assert.Single(result.AlreadyWeak).Version);
        Assert.Equal(once, image);
        Assert.False(ElfVersionNeedPatcher.NeedsPatch(image));
    }

    [Fact]
    public void NeedsPatch_PristineLibTorchSharp_ReturnsTrue()
    {
        Assert.True(ElfVersionNeedPatcher.NeedsPatch(File.ReadAllBytes(_pristineLibraryPath)));
    }

    [Fact]
    public void ReadVersionNeeds_RealLibTorchSharp_MatchesReadelfListing()
    {
        // `readelf -V` on TorchSharp 0.107.0's library lists 5 Verneed entries with 1 + 1 + 1 + 5 + 20
        // Vernaux entries; recheck (and revisit the fix-up) when TorchSharp is upgraded.
        var needs = ElfVersionNeedPatcher.ReadVersionNeeds(File.ReadAllBytes(_pristineLibraryPath));

        Assert.Equal(28, needs.Count);
        Assert.Equal(["ld-linux-x86-64.so.2", "libm.so.6", "libgcc_s.so.1", "libc.so.6", "libstdc++.so.6"], needs.Select(n => n.File).Distinct());
        Assert.Equal(20, needs.Count(n => n.File == "libstdc++.so.6"));
        Assert.All(needs, n => Assert.False(n.IsWeak));
    }

    [Fact]
    public void Patch_SyntheticImageWithVersionUnderTwoFiles_WeakensEveryMatchAndNothingElse()
    {
        var image = SyntheticElf.Build(
        [
            new("libfoo.so.1", ("V_1", 0), ("V_2", 0)),
            new("libbar.so", ("V_2", 0), ("V_3", 0x1)),
        ]);
        var original = (byte[])image.Clone();

        var result = ElfVersionNeedPatcher.Patch(image, ["V_2"]);

        Assert.Equal(2, result.Weakened.Count);
        Assert.Equal(["libfoo.so.1", "libbar.so"], result.Weakened.Select(n => n.File));
        var after = ElfVersionNeedPatcher.ReadVersionNeeds(image);
        Assert.Equal(
            [("libfoo.so.1", "V_1", (ushort)0), ("libfoo.so.1", "V_2", (ushort)2), ("libbar.so", "V_2", (ushort)2), ("libbar.so", "V_3", (ushort)1)],
            after.Select(n => (n.File, n.Version, n.Flags)));
        Assert.Equal(2, Enumerable.Range(0, image.Length).Count(i => image[i] != original[i]));
    }

    [Fact]
    public void Patch_SyntheticImageKeepsOtherFlagBits_AddsOnlyWeakBit()
    {
        var image = SyntheticElf.Build([new("libstdc++.so.6", (Glibcxx332, 0x1))]);

        var result = ElfVersionNeedPatcher.Patch(image);

        Assert.Equal(0x3, Assert.Single(result.Weakened).Flags);
        Assert.Equal(0x3, Assert.Single(ElfVersionNeedPatcher.ReadVersionNeeds(image)).Flags);
    }

    [Fact]
    public void Patch_SyntheticImageWithoutRequestedVersion_ReportsNoChange()
    {
        var image = SyntheticElf.Build([new("libstdc++.so.6", ("GLIBCXX_3.4.30", 0))]);
        var original = (byte[])image.Clone();

        var result = ElfVersionNeedPatcher.Patch(image);

        Assert.False(result.Changed);
        Assert.Empty(result.AlreadyWeak);
        Assert.Equal(original, image);
    }

    [Fact]
    public void Patch_ImageWithoutVerneedSection_ReportsNoChange()
    {
        var image = SyntheticElf.Build([new("libstdc++.so.6", (Glibcxx332, 0))], includeVerneed: false);

        Assert.Empty(ElfVersionNeedPatcher.ReadVersionNeeds(image));
        Assert.False(ElfVersionNeedPatcher.Patch(image).Changed);
    }

    [Theory]
    [InlineData(new byte[0])]
    [InlineData(new byte[] { 1, 2, 3 })]
    [InlineData(new byte[] { (byte)'M', (byte)'Z', 0x90, 0, 3, 0, 0, 0, 4, 0, 0, 0, 0xff, 0xff, 0, 0, 0xb8, 0 })]
    public void Patch_NonElfInput_ThrowsInvalidDataException(byte[] image)
    {
        var ex = Assert.Throws<InvalidDataException>(() => ElfVersionNeedPatcher.Patch(image));
        Assert.Contains("Not an ELF file", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Patch_RandomGarbage_ThrowsInvalidDataException()
    {
        var garbage = new byte[4096];
        new Random(42).NextBytes(garbage);

        Assert.Throws<InvalidDataException>(() => ElfVersionNeedPatcher.Patch(garbage));
    }

    [Fact]
    public void Patch_Elf32Image_ThrowsInvalidDataExceptionNamingElf64()
    {
        var image = SyntheticElf.Build([new("libstdc++.so.6", (Glibcxx332, 0))]);
        image[4] = 1;

        var ex = Assert.Throws<InvalidDataException>(() => ElfVersionNeedPatcher.Patch(image));
        Assert.Contains("ELF64", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Patch_BigEndianImage_ThrowsInvalidDataExceptionNamingLittleEndian()
    {
        var image = SyntheticElf.Build([new("libstdc++.so.6", (Glibcxx332, 0))]);
        image[5] = 2;

        var ex = Assert.Throws<InvalidDataException>(() => ElfVersionNeedPatcher.Patch(image));
        Assert.Contains("little-endian", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Patch_VerneedSectionBeyondEndOfFile_ThrowsInvalidDataException()
    {
        var image = SyntheticElf.Build([new("libstdc++.so.6", (Glibcxx332, 0))]);
        BinaryPrimitives.WriteUInt64LittleEndian(VerneedSectionHeader(image)[32..], 1UL << 40);

        var ex = Assert.Throws<InvalidDataException>(() => ElfVersionNeedPatcher.Patch(image));
        Assert.Contains("outside", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Patch_VerneedChainLeavingSection_ThrowsAndLeavesBytesUntouched()
    {
        var image = SyntheticElf.Build(
        [
            new("libfoo.so.1", (Glibcxx332, 0)),
            new("libstdc++.so.6", (Glibcxx332, 0)),
        ]);

        // Point the first Verneed's vn_next far past its section: the first entry is valid, and
        // it must not be written before the malformed second one is found.
        var verneedOffset = (int)BinaryPrimitives.ReadUInt64LittleEndian(VerneedSectionHeader(image)[24..]);
        BinaryPrimitives.WriteUInt32LittleEndian(image.AsSpan(verneedOffset + 12), 0x10000);
        var original = (byte[])image.Clone();

        Assert.Throws<InvalidDataException>(() => ElfVersionNeedPatcher.Patch(image));
        Assert.Equal(original, image);
    }

    private static Span<byte> VerneedSectionHeader(byte[] image)
    {
        var sectionTable = (int)BinaryPrimitives.ReadUInt64LittleEndian(image.AsSpan(40));
        return image.AsSpan(sectionTable + (2 * 64), 64);
    }
}
