using System.Diagnostics.CodeAnalysis;

namespace Emc.Core.Inference;

/// <summary>
/// The element type of an Open Inference Protocol v2 tensor. On the wire each has an upper-case name
/// (<see cref="TensorDatatypes.ToWireName"/>); every type but <see cref="Bytes"/> has a fixed size and
/// is stored as little-endian values.
/// </summary>
public enum TensorDatatype
{
#pragma warning disable CA1720 // The names are the protocol's datatypes (BOOL, UINT8, INT32 ...), not stand-ins for .NET types.
    /// <summary>"BOOL": one byte, 0 or 1.</summary>
    Bool = 0,

    /// <summary>"UINT8".</summary>
    UInt8 = 1,

    /// <summary>"UINT16".</summary>
    UInt16 = 2,

    /// <summary>"UINT32".</summary>
    UInt32 = 3,

    /// <summary>"UINT64".</summary>
    UInt64 = 4,

    /// <summary>"INT8".</summary>
    Int8 = 5,

    /// <summary>"INT16".</summary>
    Int16 = 6,

    /// <summary>"INT32".</summary>
    Int32 = 7,

    /// <summary>"INT64".</summary>
    Int64 = 8,
#pragma warning restore CA1720

    /// <summary>"FP16": IEEE 754 binary16 (<see cref="Half"/>).</summary>
    Fp16 = 9,

    /// <summary>"FP32": IEEE 754 binary32.</summary>
    Fp32 = 10,

    /// <summary>"FP64": IEEE 754 binary64.</summary>
    Fp64 = 11,

    /// <summary>"BYTES": each element is a byte string of any length (text is UTF-8).</summary>
    Bytes = 12,

    /// <summary>"BF16": bfloat16, the upper 16 bits of a binary32 (a Triton extension).</summary>
    Bf16 = 13,
}

/// <summary>Wire names and sizes of <see cref="TensorDatatype"/>.</summary>
public static class TensorDatatypes
{
    // Indexed by the enum value.
    private static readonly string[] WireNames =
    [
        "BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64", "FP16", "FP32", "FP64", "BYTES", "BF16",
    ];

    private static readonly int[] Sizes = [1, 1, 2, 4, 8, 1, 2, 4, 8, 2, 4, 8, 0, 2];

    /// <summary>Every datatype, in enum order.</summary>
    public static IReadOnlyList<TensorDatatype> All { get; } = Enum.GetValues<TensorDatatype>();

    /// <summary>The protocol's name: "FP32", "BYTES" and so on.</summary>
    public static string ToWireName(this TensorDatatype datatype) => WireNames[Index(datatype)];

    /// <summary>Bytes per element; 0 for <see cref="TensorDatatype.Bytes"/>, whose elements vary in length.</summary>
    public static int ElementSize(this TensorDatatype datatype) => Sizes[Index(datatype)];

    /// <summary>True for every datatype but <see cref="TensorDatatype.Bytes"/>.</summary>
    public static bool IsFixedSize(this TensorDatatype datatype) => datatype.ElementSize() > 0;

    /// <summary>Parses a wire name. Names are case-sensitive, as the specification says: "fp32" is not a datatype.</summary>
    public static bool TryParse([NotNullWhen(true)] string? name, out TensorDatatype datatype)
    {
        var index = Array.IndexOf(WireNames, name);
        datatype = (TensorDatatype)Math.Max(index, 0);
        return index >= 0;
    }

    /// <summary>Parses a wire name; throws a 400 <see cref="OipException"/> naming the accepted ones when it is not one.</summary>
    public static TensorDatatype Parse(string? name) =>
        TryParse(name, out var datatype)
            ? datatype
            : throw new OipException(OipErrorKind.BadRequest, UnknownMessage(name));

    internal static string UnknownMessage(string? name) => $"unknown datatype '{name}'; expected one of {string.Join(", ", WireNames)}";

    private static int Index(TensorDatatype datatype) =>
        (uint)datatype < (uint)WireNames.Length
            ? (int)datatype
            : throw new ArgumentOutOfRangeException(nameof(datatype), datatype, "Unknown tensor datatype.");
}
