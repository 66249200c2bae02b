namespace Emc.Node.Inference;

/// <summary>
/// Reads server-sent events (the WHATWG event stream format) from a stream: each event's data, its
/// "data:" lines joined with "\n". Comments and other fields (event, id, retry) are skipped. An event
/// whose data grows past the limit is an <see cref="InvalidDataException"/>, so that a server cannot
/// make the reader hold more than about twice the limit.
/// </summary>
public sealed class SseReader
{
    private readonly Stream _stream;
    private readonly int _maxEventBytes;
    private byte[] _buffer = new byte[16 * 1024];
    private int _start;
    private int _end;
    private bool _eof;

    /// <param name="stream">The response body.</param>
    /// <param name="maxEventBytes">The largest data of one event.</param>
    public SseReader(Stream stream, int maxEventBytes)
    {
        ArgumentNullException.ThrowIfNull(stream);
        ArgumentOutOfRangeException.ThrowIfLessThan(maxEventBytes, 1);
        _stream = stream;
        _maxEventBytes = maxEventBytes;
    }

    /// <summary>The next event's data, or null at the end of the stream (an unfinished last event is dropped, as the format says).</summary>
    /// <exception cref="InvalidDataException">An event or a line is larger than the limit.</exception>
    public async ValueTask<byte[]?> ReadEventAsync(CancellationToken cancellationToken)
    {
        using var data = new MemoryStream();
        var hasData = false;
        while (true)
        {
            var line = await ReadLineAsync(cancellationToken);
            if (line is not { } span)
            {
                return null;
            }

            var text = _buffer.AsMemory(span.Start, span.Length);
            if (text.Length == 0)
            {
                if (hasData)
                {
                    return data.ToArray();
                }

                continue;
            }

            if (text.Span[0] == (byte)':')
            {
                continue;
            }

            var colon = text.Span.IndexOf((byte)':');
            var field = colon < 0 ? text.Span : text.Span[..colon];
            if (!field.SequenceEqual("data"u8))
            {
                continue;
            }

            var value = colon < 0 ? ReadOnlyMemory<byte>.Empty : text[(colon + 1)..];
            if (value.Length > 0 && value.Span[0] == (byte)' ')
            {
                value = value[1..];
            }

            if (data.Length + value.Length + 1 > _maxEventBytes)
            {
                throw new InvalidDataException($"a server-sent event is larger than {_maxEventBytes} bytes");
            }

            if (hasData)
            {
                data.WriteByte((byte)'\n');
            }

            data.Write(value.Span);
            hasData = true;
        }
    }

    /// <summary>The next line (without its line ending) as a range of the buffer, valid until the next call; null at the end.</summary>
    private async ValueTask<(int Start, int Length)?> ReadLineAsync(CancellationToken cancellationToken)
    {
        var scanned = 0;
        while (true)
        {
            var newline = _buffer.AsSpan(_start + scanned, _end - _start - scanned).IndexOf((byte)'\n');
            if (newline >= 0)
            {
                var start = _start;
                var length = scanned + newline;
                _start += length + 1;
                if (length > 0 && _buffer[start + length - 1] == (byte)'\r')
                {
                    length--;
                }

                return (start, length);
            }

            scanned = _end - _start;
            if (_eof)
            {
                if (scanned == 0)
                {
                    return null;
                }

                // The last line has no line ending: it is still a line.
                var start = _start;
                _start = _end;
                return (start, scanned);
            }

            if (scanned > _maxEventBytes + 16)
            {
                throw new InvalidDataException($"a line of the event stream is longer than {_maxEventBytes} bytes");
            }

            if (_start > 0)
            {
                // Move what is left to the front before reading more.
                _buffer.AsSpan(_start, scanned).CopyTo(_buffer);
                _start = 0;
                _end = scanned;
            }

            if (_end == _buffer.Length)
            {
                Array.Resize(ref _buffer, _buffer.Length * 2);
            }

            var read = await _stream.ReadAsync(_buffer.AsMemory(_end), cancellationToken);
            if (read == 0)
            {
                _eof = true;
            }

            _end += read;
        }
    }
}
