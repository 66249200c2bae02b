using System.Buffers.Binary;
using System.IO.Compression;

namespace Emc.Core.Data;

/// <summary>The decompressed bytes one upload may produce; shared by the entries of an .npz.</summary>
internal sealed class DecompressionBudget(long limit)
{
    private long _used;

    public long Limit { get; } = limit;

    public void Take(int bytes, string name)
    {
        _used += bytes;
        if (_used > Limit)
        {
            throw DatasetFormatException.For(name, $"decompresses to more than {Limit} bytes, the limit for one file");
        }
    }
}

/// <summary>
/// The decompressed bytes of one upload (or .npz entry), read once from start to end. It counts what it
/// has read, enforces the <see cref="DecompressionBudget"/>, turns corrupt compressed data into a
/// <see cref="DatasetFormatException"/>, and knows how long the data should be so payloads can be
/// allocated once instead of grown.
/// </summary>
internal sealed class SourceStream : IDisposable
{
    private const int GrowthStart = 1 << 20;

    // Deflate expands at most about 1032:1, so a length hint beyond that is a lie and is ignored:
    // trusting it would let a tiny upload make us allocate gigabytes.
    private const long MaxDeflateRatio = 1032;

    private readonly Stream _inner;
    private readonly DecompressionBudget _budget;

    private SourceStream(string name, Stream inner, DecompressionBudget budget, long? expectedLength, bool exact)
    {
        Name = name;
        _inner = inner;
        _budget = budget;
        ExpectedLength = expectedLength;
        IsExact = exact;
    }

    /// <summary>The file name used in error messages.</summary>
    public string Name { get; }

    /// <summary>Bytes read so far.</summary>
    public long Position { get; private set; }

    /// <summary>The length the data should have: exact for uncompressed data, a hint otherwise (a gzip trailer or zip entry can lie).</summary>
    public long? ExpectedLength { get; }

    public bool IsExact { get; }

    public static bool IsGzip(ReadOnlySpan<byte> content) => content.Length >= 2 && content[0] == 0x1f && content[1] == 0x8b;

    /// <summary>Opens an upload, decompressing it when it starts with the gzip magic.</summary>
    public static SourceStream Open(DatasetSource source, DecompressionBudget budget)
    {
        if (!IsGzip(source.Content))
        {
            return new SourceStream(source.FileName, new MemoryStream(source.Content, writable: false), budget, source.Content.Length, exact: true);
        }

        // ISIZE, the last four bytes, is the uncompressed length modulo 2^32 of the last gzip member.
        long? hint = source.Content.Length >= 18 ? BinaryPrimitives.ReadUInt32LittleEndian(source.Content.AsSpan(^4)) : null;
        return new SourceStream(source.FileName, new GzipReader(source.Content), budget, Plausible(hint, source.Content.Length), exact: false);
    }

    /// <summary>Wraps a stream whose length is given (a zip entry's declared size).</summary>
    public static SourceStream Wrap(string name, Stream inner, DecompressionBudget budget, long expectedLength, long compressedLength) =>
        new(name, inner, budget, Plausible(expectedLength, compressedLength), exact: false);

    private static long? Plausible(long? hint, long compressedLength) =>
        hint <= Math.Max(compressedLength, 1) * MaxDeflateRatio ? hint : null;

    public DatasetFormatException Error(string problem) => DatasetFormatException.For(Name, problem);

    /// <summary>Reads until the buffer is full or the data ends; returns the bytes read.</summary>
    public int ReadAtMost(Span<byte> buffer)
    {
        var total = 0;
        while (total < buffer.Length)
        {
            int read;
            try
            {
                read = _inner.Read(buffer[total..]);
            }
            catch (InvalidDataException ex)
            {
                throw DatasetFormatException.For(Name, $"corrupt compressed data: {ex.Message}", ex);
            }

            if (read == 0)
            {
                break;
            }

            _budget.Take(read, Name);
            Position += read;
            total += read;
        }

        return total;
    }

    /// <summary>
    /// Reads exactly <paramref name="declared"/> bytes of payload. A header can declare far more data than
    /// the file holds, so unless the expected length vouches for it the buffer grows as data arrives.
    /// </summary>
    public byte[] ReadPayload(long declared, Func<long, string> truncated)
    {
        if (declared > Array.MaxLength)
        {
            throw Error($"the header declares {declared} bytes of data, more than one array can hold ({Array.MaxLength} bytes)");
        }

        long? remaining = ExpectedLength - Position;
        if (IsExact && remaining < declared)
        {
            throw Error(truncated(ExpectedLength!.Value));
        }

        if (remaining >= declared)
        {
            var exact = new byte[declared];
            if (ReadAtMost(exact) < declared)
            {
                throw Error(truncated(Position));
            }

            return exact;
        }

        var buffer = new byte[Math.Min(declared, GrowthStart)];
        var filled = 0;
        while (true)
        {
            filled += ReadAtMost(buffer.AsSpan(filled));
            if (filled == declared)
            {
                return buffer;
            }

            if (filled < buffer.Length)
            {
                throw Error(truncated(Position));
            }

            Array.Resize(ref buffer, (int)Math.Min(declared, 2L * buffer.Length));
        }
    }

    /// <summary>Checks that nothing follows the payload; <paramref name="trailing"/> gets the whole length.</summary>
    public void ExpectEnd(Func<long, string> trailing)
    {
        Span<byte> scratch = stackalloc byte[4096];
        if (ReadAtMost(scratch[..1]) == 0)
        {
            return;
        }

        while (ReadAtMost(scratch) > 0)
        {
        }

        throw Error(trailing(Position));
    }

    /// <summary>Reads everything that is left.</summary>
    public byte[] ReadToEnd()
    {
        long? remaining = ExpectedLength - Position;
        var buffer = new byte[remaining is > 0 ? Math.Min(remaining.Value, Math.Min(_budget.Limit, Array.MaxLength)) : GrowthStart];
        var filled = 0;
        Span<byte> probe = stackalloc byte[1];
        while (true)
        {
            filled += ReadAtMost(buffer.AsSpan(filled));
            if (filled < buffer.Length)
            {
                break;
            }

            if (ReadAtMost(probe) == 0)
            {
                break;
            }

            if (buffer.Length == Array.MaxLength)
            {
                throw Error($"the data is larger than one array can hold ({Array.MaxLength} bytes)");
            }

            Array.Resize(ref buffer, (int)Math.Min(Array.MaxLength, 2L * buffer.Length));
            buffer[filled++] = probe[0];
        }

        if (filled != buffer.Length)
        {
            Array.Resize(ref buffer, filled);
        }

        return buffer;
    }

    public void Dispose() => _inner.Dispose();
}
