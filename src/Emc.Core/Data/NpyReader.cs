using System.Buffers.Binary;
using System.Globalization;
using System.Text;

namespace Emc.Core.Data;

/// <summary>
/// Reads NumPy .npy arrays, versions 1.0, 2.0 and 3.0: the magic "\x93NUMPY", a version, a header length,
/// a Python dict literal with 'descr', 'fortran_order' and 'shape', then the elements in C order.
/// </summary>
internal static class NpyReader
{
    private const int MaxHeaderBytes = 1 << 20;

    private static ReadOnlySpan<byte> Magic => [0x93, (byte)'N', (byte)'U', (byte)'M', (byte)'P', (byte)'Y'];

    public static ParsedPart Read(SourceStream source, string split, bool isLabels)
    {
        Span<byte> preamble = stackalloc byte[12];
        var got = source.ReadAtMost(preamble[..8]);
        if (got < 8 || !preamble[..6].SequenceEqual(Magic))
        {
            throw source.Error($"not a .npy file (it starts with {Convert.ToHexStringLower(preamble[..Math.Min(got, 6)])}, not 934e554d5059 \"\\x93NUMPY\")");
        }

        int major = preamble[6];
        int minor = preamble[7];
        var lengthBytes = major switch
        {
            1 => 2,
            2 or 3 => 4,
            _ => throw source.Error($"unsupported .npy version {major}.{minor} (1.0, 2.0 and 3.0 are supported)"),
        };
        if (source.ReadAtMost(preamble.Slice(8, lengthBytes)) < lengthBytes)
        {
            throw source.Error("truncated: the file ends inside the .npy preamble");
        }

        var headerLength = lengthBytes == 2
            ? BinaryPrimitives.ReadUInt16LittleEndian(preamble[8..])
            : BinaryPrimitives.ReadUInt32LittleEndian(preamble[8..]);
        if (headerLength > MaxHeaderBytes)
        {
            throw source.Error($"the .npy header claims {headerLength} bytes; headers longer than {MaxHeaderBytes} bytes are refused");
        }

        var headerBytes = new byte[headerLength];
        if (source.ReadAtMost(headerBytes) < headerBytes.Length)
        {
            throw source.Error($"truncated: the .npy header declares {headerLength} bytes but the file has {source.Position} bytes");
        }

        var headerText = major == 3 ? Encoding.UTF8.GetString(headerBytes) : Encoding.Latin1.GetString(headerBytes);
        var header = NpyHeader.Parse(headerText, source);
        var shape = header.Shape;
        if (shape.Length == 0)
        {
            throw source.Error("the array is a scalar (shape ()); it needs a first dimension that counts examples");
        }

        if (header.FortranOrder && shape.Length > 1)
        {
            throw source.Error("the array is stored in Fortran order (fortran_order: True); save it in C order, e.g. np.save(path, np.ascontiguousarray(a))");
        }

        var elementSize = NumericArrays.Size(header.Kind);
        var payloadBytes = Arrays.Elements(shape, source) * elementSize;
        var dataStart = source.Position;
        var declared = $"the header declares shape {FormatTuple(shape)} of '{header.Descr}' ({dataStart + payloadBytes} bytes with the header)";
        var payload = source.ReadPayload(payloadBytes, actual => $"truncated: {declared} but the file has {actual} bytes");
        source.ExpectEnd(actual => $"trailing data: {declared} but the file has {actual} bytes");
        NumericArrays.ToNativeOrder(payload, header.Kind, header.BigEndian);

        if (isLabels)
        {
            if (shape.Length > 2 || (shape.Length == 2 && shape[1] != 1))
            {
                throw source.Error($"labels must have shape (N,) or (N, 1), not {FormatTuple(shape)}");
            }

            return new ParsedPart { Source = source.Name, Split = split, Labels = Arrays.Labels(payload, header.Kind, source) };
        }

        if (shape.Length < 2)
        {
            throw source.Error($"features must have a shape (examples, ...) of at least two dimensions, not {FormatTuple(shape)}");
        }

        return new ParsedPart { Source = source.Name, Split = split, Features = Arrays.Features(payload, header.Kind, shape, source) };
    }

    private static string FormatTuple(int[] shape) =>
        shape.Length == 1 ? $"({shape[0]},)" : $"({string.Join(", ", shape)})";
}

/// <summary>The dict literal of a .npy header, such as {'descr': '&lt;f4', 'fortran_order': False, 'shape': (60000, 28, 28), }.</summary>
internal sealed class NpyHeader
{
    private const int MaxRank = 32;

    private readonly string _text;
    private readonly SourceStream _source;
    private int _position;

    private NpyHeader(string text, SourceStream source)
    {
        _text = text;
        _source = source;
    }

    public string Descr { get; private set; } = "";

    public NumericKind Kind { get; private set; }

    public bool BigEndian { get; private set; }

    public bool FortranOrder { get; private set; }

    public int[] Shape { get; private set; } = [];

    public static NpyHeader Parse(string text, SourceStream source)
    {
        var header = new NpyHeader(text, source);
        header.ParseDict();
        return header;
    }

    private void ParseDict()
    {
        bool seenDescr = false, seenShape = false;
        Expect('{');
        while (true)
        {
            SkipSpace();
            if (TryTake('}'))
            {
                break;
            }

            var key = ParseString();
            SkipSpace();
            Expect(':');
            SkipSpace();
            switch (key)
            {
                case "descr":
                    if (Peek() == '[')
                    {
                        throw _source.Error("structured dtypes (a list 'descr') are not supported; save a plain numeric array");
                    }

                    Descr = ParseString();
                    (Kind, BigEndian) = ParseDescr(Descr);
                    seenDescr = true;
                    break;
                case "fortran_order":
                    FortranOrder = ParseBool();
                    break;
                case "shape":
                    Shape = ParseShape();
                    seenShape = true;
                    break;
                default:
                    throw Invalid($"unexpected key '{key}'");
            }

            SkipSpace();
            if (TryTake(','))
            {
                continue;
            }

            Expect('}');
            break;
        }

        if (!seenDescr || !seenShape)
        {
            throw Invalid($"the header lacks '{(seenDescr ? "shape" : "descr")}'");
        }
    }

    private (NumericKind Kind, bool BigEndian) ParseDescr(string descr)
    {
        var order = '=';
        var code = descr;
        if (descr.Length > 0 && descr[0] is '<' or '>' or '|' or '=')
        {
            order = descr[0];
            code = descr[1..];
        }

        NumericKind? kind = code switch
        {
            "b1" => NumericKind.Bool,
            "u1" => NumericKind.U8,
            "i1" => NumericKind.I8,
            "u2" => NumericKind.U16,
            "i2" => NumericKind.I16,
            "u4" => NumericKind.U32,
            "i4" => NumericKind.I32,
            "u8" => NumericKind.U64,
            "i8" => NumericKind.I64,
            "f2" => NumericKind.F16,
            "f4" => NumericKind.F32,
            "f8" => NumericKind.F64,
            _ => null,
        };
        if (kind is null)
        {
            throw _source.Error($"unsupported dtype '{descr}'; use bool, uint8, int8..int64, uint16..uint64, float16, float32 or float64");
        }

        var bigEndian = order == '>' || (order == '=' && !BitConverter.IsLittleEndian);
        return (kind.Value, bigEndian);
    }

    private string ParseString()
    {
        var quote = Peek();
        if (quote is not ('\'' or '"'))
        {
            throw Invalid("expected a quoted string");
        }

        var end = _text.IndexOf(quote, _position + 1);
        if (end < 0)
        {
            throw Invalid("a string is not closed");
        }

        var value = _text[(_position + 1)..end];
        _position = end + 1;
        return value;
    }

    private bool ParseBool()
    {
        if (Match("True"))
        {
            return true;
        }

        return Match("False") ? false : throw Invalid("expected True or False");
    }

    private int[] ParseShape()
    {
        Expect('(');
        var dims = new List<int>();
        while (true)
        {
            SkipSpace();
            if (TryTake(')'))
            {
                break;
            }

            var start = _position;
            while (_position < _text.Length && char.IsAsciiDigit(_text[_position]))
            {
                _position++;
            }

            if (!int.TryParse(_text.AsSpan(start, _position - start), NumberStyles.None, CultureInfo.InvariantCulture, out var dim))
            {
                throw _position == start ? Invalid("expected a dimension in the shape") : _source.Error($"dimension {_text[start.._position]} of the shape is too large");
            }

            TryTake('L');
            dims.Add(dim);
            if (dims.Count > MaxRank)
            {
                throw _source.Error($"the shape has more than {MaxRank} dimensions");
            }

            SkipSpace();
            if (!TryTake(','))
            {
                Expect(')');
                break;
            }
        }

        return [.. dims];
    }

    private bool Match(string word)
    {
        if (string.CompareOrdinal(_text, _position, word, 0, word.Length) != 0)
        {
            return false;
        }

        _position += word.Length;
        return true;
    }

    private char Peek() => _position < _text.Length ? _text[_position] : '\0';

    private bool TryTake(char expected)
    {
        if (Peek() != expected)
        {
            return false;
        }

        _position++;
        return true;
    }

    private void Expect(char expected)
    {
        SkipSpace();
        if (!TryTake(expected))
        {
            throw Invalid($"expected '{expected}'");
        }
    }

    private void SkipSpace()
    {
        while (_position < _text.Length && char.IsWhiteSpace(_text[_position]))
        {
            _position++;
        }
    }

    private DatasetFormatException Invalid(string problem)
    {
        var shown = _text.Length > 200 ? _text[..200] + "…" : _text;
        return _source.Error($"not a valid .npy header ({problem} at character {_position}): {shown.TrimEnd()}");
    }
}
