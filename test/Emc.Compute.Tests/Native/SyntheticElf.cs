using System.Buffers.Binary;
using System.Text;

namespace Emc.Compute.Tests.Native;

/// <summary>
/// Builds minimal ELF64 images with a string table and a .gnu.version_r section, laid out the
/// way GNU ld writes them, so the patcher can be tested on exact, known bytes.
/// </summary>
internal static class SyntheticElf
{
    private const int HeaderSize = 64;
    private const int SectionHeaderSize = 64;

    /// <summary>One needed file and the versions required from it.</summary>
    public sealed record Need(string File, params (string Version, ushort Flags)[] Versions);

    public static byte[] Build(IReadOnlyList<Need> needs, bool includeVerneed = true)
    {
        var strings = new MemoryStream();
        strings.WriteByte(0);
        var offsets = new Dictionary<string, int>(StringComparer.Ordinal);
        int Intern(string s)
        {
            if (!offsets.TryGetValue(s, out var offset))
            {
                offset = (int)strings.Length;
                strings.Write(Encoding.ASCII.GetBytes(s));
                strings.WriteByte(0);
                offsets[s] = offset;
            }

            return offset;
        }

        foreach (var need in needs)
        {
            Intern(need.File);
            foreach (var (version, _) in need.Versions)
            {
                Intern(version);
            }
        }

        var verneed = new MemoryStream();
        for (var i = 0; i < needs.Count; i++)
        {
            var need = needs[i];
            var entrySize = 16 + (16 * need.Versions.Length);
            var header = new byte[16];
            BinaryPrimitives.WriteUInt16LittleEndian(header.AsSpan(0), 1);
            BinaryPrimitives.WriteUInt16LittleEndian(header.AsSpan(2), (ushort)need.Versions.Length);
            BinaryPrimitives.WriteUInt32LittleEndian(header.AsSpan(4), (uint)Intern(need.File));
            BinaryPrimitives.WriteUInt32LittleEndian(header.AsSpan(8), 16);
            BinaryPrimitives.WriteUInt32LittleEndian(header.AsSpan(12), i == needs.Count - 1 ? 0u : (uint)entrySize);
            verneed.Write(header);
            for (var j = 0; j < need.Versions.Length; j++)
            {
                var aux = new byte[16];
                BinaryPrimitives.WriteUInt32LittleEndian(aux.AsSpan(0), (uint)(0x0abc0000 + j));
                BinaryPrimitives.WriteUInt16LittleEndian(aux.AsSpan(4), need.Versions[j].Flags);
                BinaryPrimitives.WriteUInt16LittleEndian(aux.AsSpan(6), (ushort)(10 + j));
                BinaryPrimitives.WriteUInt32LittleEndian(aux.AsSpan(8), (uint)Intern(need.Versions[j].Version));
                BinaryPrimitives.WriteUInt32LittleEndian(aux.AsSpan(12), j == need.Versions.Length - 1 ? 0u : 16u);
                verneed.Write(aux);
            }
        }

        var stringsOffset = HeaderSize;
        var verneedOffset = Align(stringsOffset + (int)strings.Length, 8);
        var sectionHeadersOffset = Align(verneedOffset + (int)verneed.Length, 8);
        var sectionCount = includeVerneed ? 3 : 2;
        var image = new byte[sectionHeadersOffset + (sectionCount * SectionHeaderSize)];

        image[0] = 0x7f;
        image[1] = (byte)'E';
        image[2] = (byte)'L';
        image[3] = (byte)'F';
        image[4] = 2; // ELFCLASS64
        image[5] = 1; // ELFDATA2LSB
        image[6] = 1; // EV_CURRENT
        BinaryPrimitives.WriteUInt16LittleEndian(image.AsSpan(16), 3); // ET_DYN
        BinaryPrimitives.WriteUInt16LittleEndian(image.AsSpan(18), 62); // EM_X86_64
        BinaryPrimitives.WriteUInt64LittleEndian(image.AsSpan(40), (ulong)sectionHeadersOffset);
        BinaryPrimitives.WriteUInt16LittleEndian(image.AsSpan(52), HeaderSize);
        BinaryPrimitives.WriteUInt16LittleEndian(image.AsSpan(58), SectionHeaderSize);
        BinaryPrimitives.WriteUInt16LittleEndian(image.AsSpan(60), (ushort)sectionCount);

        strings.ToArray().CopyTo(image, stringsOffset);
        verneed.ToArray().CopyTo(image, verneedOffset);

        // Section 0 stays all zeros (SHN_UNDEF), as the ELF specification requires.
        WriteSection(image, sectionHeadersOffset, 1, type: 3, stringsOffset, strings.Length, link: 0, info: 0);
        if (includeVerneed)
        {
            WriteSection(image, sectionHeadersOffset, 2, type: 0x6ffffffe, verneedOffset, verneed.Length, link: 1, info: (uint)needs.Count);
        }

        return image;
    }

    private static void WriteSection(byte[] image, int tableOffset, int index, uint type, long offset, long size, uint link, uint info)
    {
        var header = image.AsSpan(tableOffset + (index * SectionHeaderSize), SectionHeaderSize);
        BinaryPrimitives.WriteUInt32LittleEndian(header[4..], type);
        BinaryPrimitives.WriteUInt64LittleEndian(header[24..], (ulong)offset);
        BinaryPrimitives.WriteUInt64LittleEndian(header[32..], (ulong)size);
        BinaryPrimitives.WriteUInt32LittleEndian(header[40..], link);
        BinaryPrimitives.WriteUInt32LittleEndian(header[44..], info);
    }

    private static int Align(int value, int alignment) => (value + alignment - 1) / alignment * alignment;
}
