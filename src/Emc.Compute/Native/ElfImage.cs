using System.Buffers.Binary;
using System.Text;

namespace Emc.Compute.Native;

/// <summary>
/// A bounds-checked, read-only view of the parts of an ELF64 little-endian file that the native
/// loader fix-ups need: the section header table, string tables, the version-needed section and
/// the dynamic section. Every offset read from the file is checked, so a truncated or hostile
/// file yields <see cref="InvalidDataException"/> rather than an out-of-range access.
/// </summary>
internal readonly ref struct ElfImage
{
    internal const uint ShtDynamic = 6;
    internal const uint ShtGnuVerneed = 0x6ffffffe;
    internal const long DtNull = 0;
    internal const long DtNeeded = 1;

    private const int HeaderSize = 64;
    private const int SectionHeaderSize = 64;
    private const int VerneedSize = 16;
    private const int VernauxSize = 16;
    private const int DynamicEntrySize = 16;

    private readonly ReadOnlySpan<byte> _data;
    private readonly ulong _sectionHeaderOffset;
    private readonly int _sectionHeaderEntrySize;

    public ElfImage(ReadOnlySpan<byte> data)
    {
        if (data.Length < 16 || data[0] != 0x7f || data[1] != (byte)'E' || data[2] != (byte)'L' || data[3] != (byte)'F')
        {
            throw new InvalidDataException("Not an ELF file: the 0x7F 'E' 'L' 'F' magic number is missing.");
        }

        if (data[4] != 2)
        {
            throw new InvalidDataException(
                $"Unsupported ELF class {data[4]} (1 = ELF32, 2 = ELF64): only ELF64 files are supported.");
        }

        if (data[5] != 1)
        {
            throw new InvalidDataException(
                $"Unsupported ELF data encoding {data[5]} (1 = little-endian, 2 = big-endian): only little-endian files are supported.");
        }

        if (data.Length < HeaderSize)
        {
            throw new InvalidDataException($"Truncated ELF64 file: {data.Length} bytes is shorter than the 64-byte file header.");
        }

        _data = data;
        _sectionHeaderOffset = BinaryPrimitives.ReadUInt64LittleEndian(data[40..]);
        _sectionHeaderEntrySize = BinaryPrimitives.ReadUInt16LittleEndian(data[58..]);
        var sectionCount = (int)BinaryPrimitives.ReadUInt16LittleEndian(data[60..]);

        if (_sectionHeaderOffset == 0)
        {
            SectionCount = 0;
            return;
        }

        if (_sectionHeaderEntrySize < SectionHeaderSize)
        {
            throw new InvalidDataException($"Malformed ELF64 file: section header entry size {_sectionHeaderEntrySize} is below 64.");
        }

        // With 0xff00 or more sections e_shnum is 0 and the real count lives in section 0's sh_size.
        if (sectionCount == 0)
        {
            var extended = ReadUInt64(_sectionHeaderOffset + 32);
            if (extended > int.MaxValue)
            {
                throw new InvalidDataException($"Malformed ELF64 file: extended section count {extended} is implausible.");
            }

            sectionCount = (int)extended;
        }

        SectionCount = sectionCount;
        CheckRange(_sectionHeaderOffset, (ulong)sectionCount * (ulong)_sectionHeaderEntrySize, "section header table");
    }

    public int SectionCount { get; }

    public ElfSection GetSection(int index)
    {
        if ((uint)index >= (uint)SectionCount)
        {
            throw new InvalidDataException($"Malformed ELF64 file: section index {index} is outside the {SectionCount} sections.");
        }

        var offset = _sectionHeaderOffset + ((ulong)index * (ulong)_sectionHeaderEntrySize);
        return new ElfSection(
            index,
            Type: ReadUInt32(offset + 4),
            Offset: ReadUInt64(offset + 24),
            Size: ReadUInt64(offset + 32),
            Link: ReadUInt32(offset + 40),
            Info: ReadUInt32(offset + 44));
    }

    public ElfSection? FindSection(uint type)
    {
        for (var i = 0; i < SectionCount; i++)
        {
            var section = GetSection(i);
            if (section.Type == type)
            {
                return section;
            }
        }

        return null;
    }

    /// <summary>Lists every Vernaux entry of the version-needed section, in file order.</summary>
    public List<ElfVersionNeed> ReadVersionNeeds()
    {
        var result = new List<ElfVersionNeed>();
        if (FindSection(ShtGnuVerneed) is not { } section)
        {
            return result;
        }

        CheckRange(section.Offset, section.Size, ".gnu.version_r section");
        var strings = GetSection((int)Math.Min(section.Link, int.MaxValue));
        var end = section.Offset + section.Size;

        // sh_info holds the number of Verneed entries; the vn_next chain must agree with it, and
        // the size bound keeps a cyclic chain in a corrupt file from looping forever.
        var maxEntries = section.Size / VerneedSize;
        var needCount = section.Info == 0 ? maxEntries : Math.Min(section.Info, maxEntries);
        var needOffset = section.Offset;
        for (ulong i = 0; i < needCount; i++)
        {
            CheckWithin(needOffset, VerneedSize, section.Offset, end);
            var auxCount = ReadUInt16(needOffset + 2);
            var file = ReadString(strings, ReadUInt32(needOffset + 4));
            var auxOffset = needOffset + ReadUInt32(needOffset + 8);
            var next = ReadUInt32(needOffset + 12);

            for (var j = 0; j < auxCount; j++)
            {
                CheckWithin(auxOffset, VernauxSize, section.Offset, end);
                var flags = ReadUInt16(auxOffset + 4);
                var name = ReadString(strings, ReadUInt32(auxOffset + 8));
                result.Add(new ElfVersionNeed(file, name, flags, (long)(auxOffset + 4)));
                if (result.Count > (int)Math.Min(maxEntries, int.MaxValue))
                {
                    throw new InvalidDataException("Malformed ELF64 file: the .gnu.version_r entries do not fit in their section.");
                }

                var auxNext = ReadUInt32(auxOffset + 12);
                if (auxNext == 0)
                {
                    break;
                }

                auxOffset += auxNext;
            }

            if (next == 0)
            {
                break;
            }

            needOffset += next;
        }

        return result;
    }

    /// <summary>Lists the DT_NEEDED entries of the dynamic section (the libraries this one links against).</summary>
    public List<string> ReadNeededLibraries()
    {
        var result = new List<string>();
        if (FindSection(ShtDynamic) is not { } section)
        {
            return result;
        }

        CheckRange(section.Offset, section.Size, ".dynamic section");
        var strings = GetSection((int)Math.Min(section.Link, int.MaxValue));
        for (var offset = section.Offset; offset + DynamicEntrySize <= section.Offset + section.Size; offset += DynamicEntrySize)
        {
            var tag = (long)ReadUInt64(offset);
            if (tag == DtNull)
            {
                break;
            }

            if (tag == DtNeeded)
            {
                result.Add(ReadString(strings, ReadUInt64(offset + 8)));
            }
        }

        return result;
    }

    private string ReadString(ElfSection table, ulong offset)
    {
        CheckRange(table.Offset, table.Size, "string table");
        if (offset >= table.Size)
        {
            throw new InvalidDataException(
                $"Malformed ELF64 file: string offset {offset} is outside string table section {table.Index} ({table.Size} bytes).");
        }

        var bytes = _data.Slice((int)(table.Offset + offset), (int)(table.Size - offset));
        var length = bytes.IndexOf((byte)0);
        if (length < 0)
        {
            throw new InvalidDataException($"Malformed ELF64 file: unterminated string in string table section {table.Index}.");
        }

        return Encoding.UTF8.GetString(bytes[..length]);
    }

    private ushort ReadUInt16(ulong offset)
    {
        CheckRange(offset, 2, "field");
        return BinaryPrimitives.ReadUInt16LittleEndian(_data[(int)offset..]);
    }

    private uint ReadUInt32(ulong offset)
    {
        CheckRange(offset, 4, "field");
        return BinaryPrimitives.ReadUInt32LittleEndian(_data[(int)offset..]);
    }

    private ulong ReadUInt64(ulong offset)
    {
        CheckRange(offset, 8, "field");
        return BinaryPrimitives.ReadUInt64LittleEndian(_data[(int)offset..]);
    }

    private void CheckRange(ulong offset, ulong length, string what)
    {
        if (offset > (ulong)_data.Length || length > (ulong)_data.Length - offset)
        {
            throw new InvalidDataException(
                $"Malformed ELF64 file: {what} at offset {offset} (+{length} bytes) lies outside the {_data.Length}-byte file.");
        }
    }

    private static void CheckWithin(ulong offset, ulong length, ulong start, ulong end)
    {
        if (offset < start || offset > end || length > end - offset)
        {
            throw new InvalidDataException(
                $"Malformed ELF64 file: a .gnu.version_r entry at offset {offset} lies outside its section [{start}, {end}).");
        }
    }
}

/// <summary>The fields of one ELF64 section header that the fix-ups use.</summary>
internal readonly record struct ElfSection(int Index, uint Type, ulong Offset, ulong Size, uint Link, uint Info);
