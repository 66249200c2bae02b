using System.Buffers.Binary;
using System.IO.Compression;

namespace Emc.Core.Data;

/// <summary>
/// Decompresses gzip data (RFC 1952), member after member, and checks each member's CRC-32 and length.
/// <see cref="GZipStream"/> alone would hand back a truncated upload as if it were whole: at the end of its
/// input it stops without saying whether the compressed data ended. Here each member is inflated by a raw
/// <see cref="DeflateStream"/> reading through a <see cref="ChunkStream"/>: a stream cut short makes the
/// inflater ask for input past the end, while a finished one stops inside the last chunk it was given,
/// where its 8-byte trailer (CRC-32, length) must follow the deflate data.
/// </summary>
internal sealed class GzipReader(byte[] content) : Stream
{
    private const byte FlagHeaderCrc = 0x02;
    private const byte FlagExtra = 0x04;
    private const byte FlagName = 0x08;
    private const byte FlagComment = 0x10;
    private const int TrailerBytes = 8;

    private int _offset;
    private ChunkStream? _chunks;
    private DeflateStream? _member;
    private uint _crc;
    private long _memberLength;
    private bool _done;

    public override bool CanRead => true;

    public override bool CanSeek => false;

    public override bool CanWrite => false;

    public override long Length => throw new NotSupportedException();

    public override long Position
    {
        get => throw new NotSupportedException();
        set => throw new NotSupportedException();
    }

    public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

    public override int Read(Span<byte> buffer)
    {
        while (!_done && !buffer.IsEmpty)
        {
            if (_member is null)
            {
                StartMember();
            }

            var read = _member!.Read(buffer);
            if (read > 0)
            {
                _crc = Crc32.Update(_crc, buffer[..read]);
                _memberLength += read;
                return read;
            }

            EndMember();
        }

        return 0;
    }

    private void StartMember()
    {
        var header = content.AsSpan(_offset);
        if (header.Length < 10 || header[0] != 0x1f || header[1] != 0x8b)
        {
            throw new InvalidDataException(_offset == 0
                ? "the gzip header is cut short or damaged"
                : $"{content.Length - _offset} bytes of trailing data follow the gzip data");
        }

        if (header[2] != 8)
        {
            throw new InvalidDataException($"unknown gzip compression method {header[2]} (deflate is 8)");
        }

        var flags = header[3];
        if ((flags & 0xE0) != 0)
        {
            throw new InvalidDataException($"reserved gzip header flags are set (0x{flags:x2})");
        }

        var position = 10;
        if ((flags & FlagExtra) != 0)
        {
            position = header.Length >= 12 ? 12 + BinaryPrimitives.ReadUInt16LittleEndian(header[10..]) : int.MaxValue;
        }

        if ((flags & FlagName) != 0)
        {
            position = SkipZeroTerminated(header, position);
        }

        if ((flags & FlagComment) != 0)
        {
            position = SkipZeroTerminated(header, position);
        }

        if ((flags & FlagHeaderCrc) != 0)
        {
            position = position > header.Length - 2 ? int.MaxValue : position + 2;
        }

        if (position > header.Length)
        {
            throw new InvalidDataException("the gzip header is cut short");
        }

        _chunks = new ChunkStream(content, _offset + position);
        _member = new DeflateStream(_chunks, CompressionMode.Decompress, leaveOpen: true);
        _crc = 0;
        _memberLength = 0;
    }

    private void EndMember()
    {
        _member!.Dispose();
        _member = null;
        var chunks = _chunks!;
        if (chunks.ReadPastEnd)
        {
            throw new InvalidDataException("the gzip data is truncated: it ends before the compressed stream does");
        }

        // The deflate data ended somewhere in the last chunk; its trailer follows at once.
        var trailer = -1;
        for (var end = chunks.LastChunkStart + 1; end <= chunks.LastChunkEnd && end <= content.Length - TrailerBytes; end++)
        {
            if (BinaryPrimitives.ReadUInt32LittleEndian(content.AsSpan(end)) == _crc
                && BinaryPrimitives.ReadUInt32LittleEndian(content.AsSpan(end + 4)) == (uint)_memberLength)
            {
                trailer = end;
                break;
            }
        }

        if (trailer < 0)
        {
            throw new InvalidDataException("the gzip data is truncated or corrupt: no CRC-32 and length trailer matches the decompressed data");
        }

        _offset = trailer + TrailerBytes;
        _done = _offset == content.Length;
    }

    private static int SkipZeroTerminated(ReadOnlySpan<byte> header, int position)
    {
        if (position >= header.Length)
        {
            return int.MaxValue;
        }

        var zero = header[position..].IndexOf((byte)0);
        return zero < 0 ? int.MaxValue : position + zero + 1;
    }

    public override void Flush()
    {
    }

    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

    public override void SetLength(long value) => throw new NotSupportedException();

    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            _member?.Dispose();
        }

        base.Dispose(disposing);
    }

    /// <summary>The compressed bytes from a start offset, handed out in the chunks asked for, remembering the last one.</summary>
    private sealed class ChunkStream(byte[] content, int start) : Stream
    {
        private int _position = start;

        public int LastChunkStart { get; private set; } = start;

        public int LastChunkEnd { get; private set; } = start;

        /// <summary>Whether the reader asked for more after every byte was handed out.</summary>
        public bool ReadPastEnd { get; private set; }

        public override bool CanRead => true;

        public override bool CanSeek => false;

        public override bool CanWrite => false;

        public override long Length => throw new NotSupportedException();

        public override long Position
        {
            get => throw new NotSupportedException();
            set => throw new NotSupportedException();
        }

        public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

        public override int Read(Span<byte> buffer)
        {
            var count = Math.Min(buffer.Length, content.Length - _position);
            if (count == 0)
            {
                ReadPastEnd |= !buffer.IsEmpty;
                return 0;
            }

            content.AsSpan(_position, count).CopyTo(buffer);
            LastChunkStart = _position;
            _position += count;
            LastChunkEnd = _position;
            return count;
        }

        public override void Flush()
        {
        }

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }
}

/// <summary>CRC-32 as gzip and zip use it (reflected polynomial 0xEDB88320), eight bytes a step.</summary>
internal static class Crc32
{
    private static readonly uint[] Table = Build();

    /// <summary>Continues a CRC over <paramref name="data"/>; start with 0.</summary>
    public static uint Update(uint crc, ReadOnlySpan<byte> data)
    {
        var table = Table.AsSpan();
        crc = ~crc;
        while (data.Length >= 8)
        {
            var one = BinaryPrimitives.ReadUInt32LittleEndian(data) ^ crc;
            var two = BinaryPrimitives.ReadUInt32LittleEndian(data[4..]);
            crc = table[(7 * 256) + (int)(one & 0xFF)]
                ^ table[(6 * 256) + (int)((one >> 8) & 0xFF)]
                ^ table[(5 * 256) + (int)((one >> 16) & 0xFF)]
                ^ table[(4 * 256) + (int)(one >> 24)]
                ^ table[(3 * 256) + (int)(two & 0xFF)]
                ^ table[(2 * 256) + (int)((two >> 8) & 0xFF)]
                ^ table[256 + (int)((two >> 16) & 0xFF)]
                ^ table[(int)(two >> 24)];
            data = data[8..];
        }

        foreach (var b in data)
        {
            crc = table[(int)((crc ^ b) & 0xFF)] ^ (crc >> 8);
        }

        return ~crc;
    }

    private static uint[] Build()
    {
        var table = new uint[8 * 256];
        for (uint i = 0; i < 256; i++)
        {
            var crc = i;
            for (var bit = 0; bit < 8; bit++)
            {
                crc = (crc & 1) != 0 ? (crc >> 1) ^ 0xEDB88320u : crc >> 1;
            }

            table[i] = crc;
        }

        for (var slice = 1; slice < 8; slice++)
        {
            for (var i = 0; i < 256; i++)
            {
                var previous = table[((slice - 1) * 256) + i];
                table[(slice * 256) + i] = (previous >> 8) ^ table[(int)(previous & 0xFF)];
            }
        }

        return table;
    }
}
