using System.Globalization;
using System.Runtime.InteropServices;
using System.Text;

namespace Emc.Core.Data;

/// <summary>
/// Reads CSV: a header row, then one example per row. The label column holds integer class labels; every
/// other column is a float32 feature. Fields may be quoted (RFC 4180); numbers use the invariant culture.
/// Rows count from 1 with the header as row 1, so "row 5" is the fifth line of an ordinary file.
/// </summary>
internal static class CsvReader
{
    private static ReadOnlySpan<byte> Bom => [0xEF, 0xBB, 0xBF];

    public static ParsedPart Read(SourceStream source, string split, string labelColumn)
    {
        var bytes = source.ReadToEnd();
        ReadOnlySpan<byte> text = bytes;
        if (text.StartsWith(Bom))
        {
            text = text[Bom.Length..];
        }

        if (text.Trim("\r\n\t "u8).IsEmpty)
        {
            throw source.Error("the file is empty; a CSV dataset needs a header row and data rows");
        }

        var tokenizer = new Tokenizer(source);
        var fields = new List<Field>();
        var position = 0;
        var row = 1;
        tokenizer.ReadRecord(text, ref position, ref row, fields);
        var columns = new string[fields.Count];
        for (var i = 0; i < columns.Length; i++)
        {
            columns[i] = fields[i].Name(text).Trim();
        }

        var labelIndex = FindLabel(columns, labelColumn, source);
        var features = columns.Length - 1;
        if (features == 0)
        {
            throw source.Error($"there are no feature columns besides the label column '{columns[labelIndex]}'");
        }

        // A valid row has at least one character and one separator per column, which bounds the row count
        // (and so the allocation) by the size of the file, whatever its line count claims.
        var rest = text[position..];
        var maxRows = Math.Min(rest.Count((byte)'\n') + 1L, (rest.Length / (2L * columns.Length)) + 1);
        if (maxRows * features * 4 > Array.MaxLength)
        {
            maxRows = Array.MaxLength / (features * 4L);
        }

        var data = new byte[maxRows * features * 4];
        var values = MemoryMarshal.Cast<byte, float>(data.AsSpan());
        var labels = new long[maxRows];
        var rows = new int[maxRows];
        var count = 0;
        while (position < text.Length)
        {
            var recordRow = row;
            tokenizer.ReadRecord(text, ref position, ref row, fields);
            if (fields.Count == 1 && fields[0].Length == 0 && !fields[0].Quoted)
            {
                continue;
            }

            if (fields.Count != columns.Length)
            {
                throw source.Error($"row {recordRow} has {fields.Count} fields but the header has {columns.Length} columns");
            }

            if (count == maxRows)
            {
                throw source.Error($"row {recordRow}: the features take more than one array can hold ({Array.MaxLength} bytes)");
            }

            var target = values.Slice(count * features, features);
            var feature = 0;
            for (var column = 0; column < fields.Count; column++)
            {
                var field = fields[column].Span(text);
                if (column == labelIndex)
                {
                    labels[count] = ParseLabel(field, source, recordRow, column, columns[column]);
                }
                else
                {
                    target[feature++] = ParseFeature(field, source, recordRow, column, columns[column]);
                }
            }

            rows[count++] = recordRow;
        }

        if (count == 0)
        {
            throw source.Error("the file has a header but no data rows");
        }

        if (count < maxRows)
        {
            Array.Resize(ref data, count * features * 4);
            Array.Resize(ref labels, count);
            Array.Resize(ref rows, count);
        }

        if (!BitConverter.IsLittleEndian)
        {
            var words = MemoryMarshal.Cast<byte, uint>(data.AsSpan());
            System.Buffers.Binary.BinaryPrimitives.ReverseEndianness(words, words);
        }

        return new ParsedPart
        {
            Source = source.Name,
            Split = split,
            Features = new FeatureArray(ElementType.F32, [features], count, data),
            Labels = new LabelArray(labels, index => $"in row {rows[index]}"),
        };
    }

    private static int FindLabel(string[] columns, string labelColumn, SourceStream source)
    {
        var exact = Array.IndexOf(columns, labelColumn);
        if (exact >= 0)
        {
            return exact;
        }

        var loose = columns.Select((name, index) => (name, index))
            .Where(column => string.Equals(column.name, labelColumn, StringComparison.OrdinalIgnoreCase))
            .ToList();
        if (loose.Count == 1)
        {
            return loose[0].index;
        }

        var shown = string.Join(", ", columns.Take(8)) + (columns.Length > 8 ? $", … ({columns.Length} columns)" : "");
        throw source.Error($"row 1: the header has no label column '{labelColumn}' (columns: {shown}); name the label column with --label-column");
    }

    private static long ParseLabel(ReadOnlySpan<byte> field, SourceStream source, int row, int column, string name)
    {
        var trimmed = field.Trim(" \t"u8);
        if (!long.TryParse(trimmed, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var label))
        {
            // "3.0" is how some tools write an integer column that once held a missing value.
            if (!double.TryParse(trimmed, NumberStyles.Float, CultureInfo.InvariantCulture, out var real)
                || !double.IsFinite(real) || Math.Floor(real) != real || Math.Abs(real) > 1e15)
            {
                throw source.Error($"row {row}, column {column + 1} '{name}': '{Show(field)}' is not an integer class label");
            }

            label = (long)real;
        }

        return label >= 0
            ? label
            : throw source.Error($"row {row}, column {column + 1} '{name}': label {label} is negative; labels must be class numbers from 0");
    }

    private static float ParseFeature(ReadOnlySpan<byte> field, SourceStream source, int row, int column, string name)
    {
        if (float.TryParse(field, NumberStyles.Float, CultureInfo.InvariantCulture, out var value) && float.IsFinite(value))
        {
            return value;
        }

        throw source.Error(field.Trim(" \t"u8).IsEmpty
            ? $"row {row}, column {column + 1} '{name}': the value is empty; every feature must be a number"
            : $"row {row}, column {column + 1} '{name}': '{Show(field)}' is not a finite number");
    }

    private static string Show(ReadOnlySpan<byte> field)
    {
        var text = Encoding.UTF8.GetString(field[..Math.Min(field.Length, 40)]);
        return field.Length > 40 ? text + "…" : text;
    }

    /// <summary>A field's place in the text; a quoted field's span excludes the quotes.</summary>
    private readonly record struct Field(int Start, int Length, bool Quoted, bool Escaped)
    {
        public string Name(ReadOnlySpan<byte> text) =>
            Escaped
                ? Encoding.UTF8.GetString(text.Slice(Start, Length)).Replace("\"\"", "\"", StringComparison.Ordinal)
                : Encoding.UTF8.GetString(text.Slice(Start, Length));

        public ReadOnlySpan<byte> Span(ReadOnlySpan<byte> text) => text.Slice(Start, Length);
    }

    private sealed class Tokenizer(SourceStream source)
    {
        /// <summary>Reads one record starting at <paramref name="position"/>; <paramref name="row"/> counts line breaks, quoted ones too.</summary>
        public void ReadRecord(ReadOnlySpan<byte> text, ref int position, ref int row, List<Field> fields)
        {
            fields.Clear();
            while (true)
            {
                if (position < text.Length && text[position] == (byte)'"')
                {
                    var start = ++position;
                    var startRow = row;
                    var escaped = false;
                    while (true)
                    {
                        if (position >= text.Length)
                        {
                            throw source.Error($"row {startRow}: a quoted field is not closed before the end of the file");
                        }

                        var b = text[position];
                        if (b == (byte)'"')
                        {
                            if (position + 1 < text.Length && text[position + 1] == (byte)'"')
                            {
                                escaped = true;
                                position += 2;
                                continue;
                            }

                            break;
                        }

                        if (b == (byte)'\n')
                        {
                            row++;
                        }

                        position++;
                    }

                    fields.Add(new Field(start, position - start, Quoted: true, escaped));
                    position++;
                    if (position < text.Length && text[position] is not ((byte)',' or (byte)'\n' or (byte)'\r'))
                    {
                        throw source.Error($"row {row}, column {fields.Count}: text follows the closing quote of a quoted field");
                    }
                }
                else
                {
                    var start = position;
                    var found = text[position..].IndexOfAny((byte)',', (byte)'\n');
                    var end = found < 0 ? text.Length : position + found;
                    var fieldEnd = end > start && text[end - 1] == (byte)'\r' && (end == text.Length || text[end] == (byte)'\n') ? end - 1 : end;
                    fields.Add(new Field(start, fieldEnd - start, Quoted: false, Escaped: false));
                    position = end;
                }

                if (position >= text.Length)
                {
                    return;
                }

                if (text[position] == (byte)',')
                {
                    position++;
                    continue;
                }

                if (text[position] == (byte)'\r')
                {
                    position++;
                }

                if (position < text.Length && text[position] == (byte)'\n')
                {
                    position++;
                }

                row++;
                return;
            }
        }
    }
}
