using System.Diagnostics.CodeAnalysis;
using System.Globalization;

namespace Emc.Core.Inference;

/// <summary>Which kind of value an <see cref="InferParameter"/> holds.</summary>
public enum InferParameterKind
{
#pragma warning disable CA1720 // The names are the protocol's parameter kinds (bool_param, int64_param, double_param, string_param).
    /// <summary>true or false.</summary>
    Bool = 0,

    /// <summary>A JSON number without fraction or exponent that fits in 64 bits.</summary>
    Int64 = 1,

    /// <summary>Any other JSON number.</summary>
    Double = 2,

    /// <summary>A string.</summary>
    String = 3,
#pragma warning restore CA1720
}

/// <summary>
/// The value of a request, response or tensor parameter: a string, a number or a boolean, as the
/// protocol allows. JSON numbers that are integers become <see cref="InferParameterKind.Int64"/>,
/// others <see cref="InferParameterKind.Double"/>.
/// </summary>
public readonly record struct InferParameter
{
    private readonly string? _text;
    private readonly long _integer;
    private readonly double _real;

    private InferParameter(InferParameterKind kind, string? text, long integer, double real)
    {
        Kind = kind;
        _text = text;
        _integer = integer;
        _real = real;
    }

    /// <summary>The kind of value held.</summary>
    public InferParameterKind Kind { get; }

    public static InferParameter FromBool(bool value) => new(InferParameterKind.Bool, null, value ? 1 : 0, 0);

    public static InferParameter FromInt64(long value) => new(InferParameterKind.Int64, null, value, 0);

    public static InferParameter FromDouble(double value) => new(InferParameterKind.Double, null, 0, value);

    public static InferParameter FromString(string value)
    {
        ArgumentNullException.ThrowIfNull(value);
        return new(InferParameterKind.String, value, 0, 0);
    }

    public static implicit operator InferParameter(bool value) => FromBool(value);

    public static implicit operator InferParameter(long value) => FromInt64(value);

    public static implicit operator InferParameter(double value) => FromDouble(value);

    public static implicit operator InferParameter(string value) => FromString(value);

    /// <summary>The value when it is a boolean.</summary>
    public bool TryGetBool(out bool value)
    {
        value = Kind == InferParameterKind.Bool && _integer != 0;
        return Kind == InferParameterKind.Bool;
    }

    /// <summary>The value when it is an integer.</summary>
    public bool TryGetInt64(out long value)
    {
        value = Kind == InferParameterKind.Int64 ? _integer : 0;
        return Kind == InferParameterKind.Int64;
    }

    /// <summary>The value when it is a number of either kind.</summary>
    public bool TryGetDouble(out double value)
    {
        value = Kind switch
        {
            InferParameterKind.Int64 => _integer,
            InferParameterKind.Double => _real,
            _ => 0,
        };
        return Kind is InferParameterKind.Int64 or InferParameterKind.Double;
    }

    /// <summary>The value when it is a string.</summary>
    public bool TryGetString([NotNullWhen(true)] out string? value)
    {
        value = _text;
        return Kind == InferParameterKind.String;
    }

    /// <summary>The value as JSON would show it, unquoted: "true", "42", "0.5", "text".</summary>
    public override string ToString() => Kind switch
    {
        InferParameterKind.Bool => _integer != 0 ? "true" : "false",
        InferParameterKind.Int64 => _integer.ToString(CultureInfo.InvariantCulture),
        InferParameterKind.Double => _real.ToString("R", CultureInfo.InvariantCulture),
        _ => _text ?? string.Empty,
    };
}

/// <summary>Parameter names the binary tensor data extension gives meaning to, and parameter helpers.</summary>
public static class InferParameters
{
    /// <summary>On an input or output: the size in bytes of its data in the binary part of the body.</summary>
    public const string BinaryDataSize = "binary_data_size";

    /// <summary>On a requested output: true to receive it in the binary part, false to receive it as JSON.</summary>
    public const string BinaryData = "binary_data";

    /// <summary>On a request: true to receive every output in the binary part unless the output says otherwise.</summary>
    public const string BinaryDataOutput = "binary_data_output";

    /// <summary>No parameters.</summary>
    public static IReadOnlyDictionary<string, InferParameter> Empty { get; } = new Dictionary<string, InferParameter>(StringComparer.Ordinal);
}
