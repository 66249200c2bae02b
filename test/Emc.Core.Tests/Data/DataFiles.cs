using System.Buffers.Binary;
using System.IO.Compression;
using System.Text;
using Emc.Core.Data;

namespace Emc.Core.Tests.Data;

/// <summary>Tiny writers of the formats the parser reads, so tests build their inputs in memory.</summary>
internal static class DataFiles
{
    public const byte IdxU8 = 0x08;
    public const byte IdxI8 = 0x09;
    public const byte IdxI16 = 0x0B;
    public const byte IdxI32 = 0x0C;
    public const byte IdxF32 = 0x0D;
    public const byte IdxF64 = 0x0E;

    /// <summary>An IDX file: magic 0x0000TTDD, big-endian dims, then <paramref name="payload"/> as given (big-endian for wide types).</summary>
    public static byte[] Idx(byte type, int[] dims, byte[] payload)
    {
        var file = new byte[4 + (4 * dims.Length) + payload.Length];
        file[2] = type;
        file[3] = (byte)dims.Length;
        for (var i = 0; i < dims.Length; i++)
        {
            BinaryPrimitives.WriteInt32BigEndian(file.AsSpan(4 + (4 * i)), dims[i]);
        }

        payload.CopyTo(file, 4 + (4 * dims.Length));
        return file;
    }

    /// <summary>An IDX file of ubyte images whose pixel i is (i + seed) mod 256.</summary>
    public static byte[] IdxImages(int count, int rows, int columns, int seed = 0) =>
        Idx(IdxU8, [count, rows, columns], Pattern(count * rows * columns, seed));

    public static byte[] IdxLabels(params byte[] labels) => Idx(IdxU8, [labels.Length], labels);

    public static byte[] Pattern(int length, int seed = 0)
    {
        var bytes = new byte[length];
        for (var i = 0; i < length; i++)
        {
            bytes[i] = (byte)(i + seed);
        }

        return bytes;
    }

    /// <summary>An .npy file with a header of the given descr and shape, padded to a multiple of 64 bytes as NumPy does.</summary>
    public static byte[] Npy(string descr, int[] shape, byte[] payload, bool fortranOrder = false, int major = 1, string? header = null)
    {
        var shapeText = shape.Length == 1 ? $"({shape[0]},)" : $"({string.Join(", ", shape)})";
        header ??= $"{{'descr': '{descr}', 'fortran_order': {(fortranOrder ? "True" : "False")}, 'shape': {shapeText}, }}";
        var lengthBytes = major == 1 ? 2 : 4;
        var prefix = 8 + lengthBytes;
        var padded = header.PadRight(((prefix + header.Length + 1 + 63) / 64 * 64) - prefix - 1) + "\n";
        var headerBytes = Encoding.Latin1.GetBytes(padded);
        using var stream = new MemoryStream();
        stream.Write([0x93, (byte)'N', (byte)'U', (byte)'M', (byte)'P', (byte)'Y', (byte)major, 0]);
        var length = new byte[lengthBytes];
        if (major == 1)
        {
            BinaryPrimitives.WriteUInt16LittleEndian(length, (ushort)headerBytes.Length);
        }
        else
        {
            BinaryPrimitives.WriteUInt32LittleEndian(length, (uint)headerBytes.Length);
        }

        stream.Write(length);
        stream.Write(headerBytes);
        stream.Write(payload);
        return stream.ToArray();
    }

    public static byte[] NpyU8(int[] shape, byte[] data) => Npy("|u1", shape, data);

    public static byte[] NpyF32(int[] shape, params float[] values)
    {
        var payload = new byte[values.Length * 4];
        for (var i = 0; i < values.Length; i++)
        {
            BinaryPrimitives.WriteSingleLittleEndian(payload.AsSpan(4 * i), values[i]);
        }

        return Npy("<f4", shape, payload);
    }

    public static byte[] NpyI64(params long[] labels)
    {
        var payload = new byte[labels.Length * 8];
        for (var i = 0; i < labels.Length; i++)
        {
            BinaryPrimitives.WriteInt64LittleEndian(payload.AsSpan(8 * i), labels[i]);
        }

        return Npy("<i8", [labels.Length], payload);
    }

    /// <summary>An .npz archive: a zip of the entries, deflated or stored.</summary>
    public static byte[] Npz(CompressionLevel level, params (string Name, byte[] Content)[] entries)
    {
        using var stream = new MemoryStream();
        using (var zip = new ZipArchive(stream, ZipArchiveMode.Create, leaveOpen: true))
        {
            foreach (var (name, content) in entries)
            {
                using var entry = zip.CreateEntry(name, level).Open();
                entry.Write(content);
            }
        }

        return stream.ToArray();
    }

    public static byte[] Gzip(byte[] content)
    {
        using var stream = new MemoryStream();
        using (var gzip = new GZipStream(stream, CompressionLevel.Fastest, leaveOpen: true))
        {
            gzip.Write(content);
        }

        return stream.ToArray();
    }

    public static byte[] Utf8(string text) => Encoding.UTF8.GetBytes(text);

    public static DatasetSource Source(string name, byte[] content) => new(name, content);

    public static float[] Floats(byte[] data)
    {
        var values = new float[data.Length / 4];
        for (var i = 0; i < values.Length; i++)
        {
            values[i] = BinaryPrimitives.ReadSingleLittleEndian(data.AsSpan(4 * i));
        }

        return values;
    }

    public static ParsedDataset Parse(DatasetFormat format, params DatasetSource[] files) =>
        DatasetParser.Parse(files, format, new DatasetParseOptions());

    public static ParsedDataset Parse(DatasetFormat format, DatasetParseOptions options, params DatasetSource[] files) =>
        DatasetParser.Parse(files, format, options);

    /// <summary>Asserts that parsing fails with a message that contains every fragment.</summary>
    public static DatasetFormatException Fails(DatasetFormat format, DatasetParseOptions options, DatasetSource[] files, params string[] fragments)
    {
        var ex = Assert.Throws<DatasetFormatException>(() => DatasetParser.Parse(files, format, options));
        foreach (var fragment in fragments)
        {
            Assert.Contains(fragment, ex.Message, StringComparison.Ordinal);
        }

        return ex;
    }

    public static DatasetFormatException Fails(DatasetFormat format, DatasetSource[] files, params string[] fragments) =>
        Fails(format, new DatasetParseOptions(), files, fragments);
}
