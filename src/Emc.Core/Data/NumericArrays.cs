using System.Buffers.Binary;
using System.Numerics;
using System.Runtime.InteropServices;

namespace Emc.Core.Data;

/// <summary>The element types IDX and .npy files store.</summary>
internal enum NumericKind
{
    Bool,
    U8,
    I8,
    U16,
    I16,
    U32,
    I32,
    U64,
    I64,
    F16,
    F32,
    F64,
}

/// <summary>Turns raw arrays into what a <see cref="ParsedSplit"/> holds: U8 or little-endian F32 features, int64 labels.</summary>
internal static class NumericArrays
{
    public static int Size(NumericKind kind) => kind switch
    {
        NumericKind.Bool or NumericKind.U8 or NumericKind.I8 => 1,
        NumericKind.U16 or NumericKind.I16 or NumericKind.F16 => 2,
        NumericKind.U32 or NumericKind.I32 or NumericKind.F32 => 4,
        _ => 8,
    };

    public static bool IsInteger(NumericKind kind) => kind is not (NumericKind.F16 or NumericKind.F32 or NumericKind.F64);

    /// <summary>
    /// Puts the elements of <paramref name="raw"/> (which this takes over) in this machine's byte order,
    /// in place: a copy here would double the memory of a large array.
    /// </summary>
    public static void ToNativeOrder(byte[] raw, NumericKind kind, bool bigEndian)
    {
        if (bigEndian == !BitConverter.IsLittleEndian)
        {
            return;
        }

        switch (Size(kind))
        {
            case 2:
                BinaryPrimitives.ReverseEndianness(MemoryMarshal.Cast<byte, ushort>(raw.AsSpan()), MemoryMarshal.Cast<byte, ushort>(raw.AsSpan()));
                break;
            case 4:
                BinaryPrimitives.ReverseEndianness(MemoryMarshal.Cast<byte, uint>(raw.AsSpan()), MemoryMarshal.Cast<byte, uint>(raw.AsSpan()));
                break;
            case 8:
                BinaryPrimitives.ReverseEndianness(MemoryMarshal.Cast<byte, ulong>(raw.AsSpan()), MemoryMarshal.Cast<byte, ulong>(raw.AsSpan()));
                break;
        }
    }

    /// <summary>
    /// Features in native order as little-endian float32 bytes; float32 input is returned as it is.
    /// </summary>
    public static byte[] ToF32(byte[] native, NumericKind kind)
    {
        if (kind == NumericKind.F32 && BitConverter.IsLittleEndian)
        {
            return native;
        }

        var count = native.Length / Size(kind);
        var output = new byte[checked(count * 4)];
        var target = MemoryMarshal.Cast<byte, float>(output.AsSpan());
        switch (kind)
        {
            case NumericKind.Bool:
                for (var i = 0; i < target.Length; i++)
                {
                    target[i] = native[i] == 0 ? 0f : 1f;
                }

                break;
            case NumericKind.U8:
                Convert<byte>(native, target);
                break;
            case NumericKind.I8:
                Convert<sbyte>(native, target);
                break;
            case NumericKind.U16:
                Convert<ushort>(native, target);
                break;
            case NumericKind.I16:
                Convert<short>(native, target);
                break;
            case NumericKind.U32:
                Convert<uint>(native, target);
                break;
            case NumericKind.I32:
                Convert<int>(native, target);
                break;
            case NumericKind.U64:
                Convert<ulong>(native, target);
                break;
            case NumericKind.I64:
                Convert<long>(native, target);
                break;
            case NumericKind.F16:
                Convert<Half>(native, target);
                break;
            case NumericKind.F32:
                MemoryMarshal.Cast<byte, float>(native.AsSpan()).CopyTo(target);
                break;
            case NumericKind.F64:
                Convert<double>(native, target);
                break;
        }

        if (!BitConverter.IsLittleEndian)
        {
            var words = MemoryMarshal.Cast<byte, uint>(output.AsSpan());
            BinaryPrimitives.ReverseEndianness(words, words);
        }

        return output;
    }

    /// <summary>Labels in native order as int64; a negative (or unrepresentable) label is an error naming its index.</summary>
    public static long[] ToLabels(byte[] native, NumericKind kind, SourceStream source)
    {
        if (!IsInteger(kind))
        {
            throw source.Error($"labels must be integers, but the file holds {kind.ToString().ToLowerInvariant()} values");
        }

        var labels = new long[native.Length / Size(kind)];
        switch (kind)
        {
            case NumericKind.Bool:
                for (var i = 0; i < labels.Length; i++)
                {
                    labels[i] = native[i] == 0 ? 0 : 1;
                }

                break;
            case NumericKind.U8:
                for (var i = 0; i < labels.Length; i++)
                {
                    labels[i] = native[i];
                }

                break;
            case NumericKind.I8:
                Widen<sbyte>(native, labels);
                break;
            case NumericKind.U16:
                Widen<ushort>(native, labels);
                break;
            case NumericKind.I16:
                Widen<short>(native, labels);
                break;
            case NumericKind.U32:
                Widen<uint>(native, labels);
                break;
            case NumericKind.I32:
                Widen<int>(native, labels);
                break;
            case NumericKind.U64:
                var unsigned = MemoryMarshal.Cast<byte, ulong>(native.AsSpan());
                for (var i = 0; i < labels.Length; i++)
                {
                    if (unsigned[i] > long.MaxValue)
                    {
                        throw source.Error($"label {unsigned[i]} at index {i} is too large");
                    }

                    labels[i] = (long)unsigned[i];
                }

                break;
            case NumericKind.I64:
                MemoryMarshal.Cast<byte, long>(native.AsSpan()).CopyTo(labels);
                break;
        }

        var negative = Array.FindIndex(labels, label => label < 0);
        if (negative >= 0)
        {
            throw source.Error($"label {labels[negative]} at index {negative} is negative; labels must be class numbers from 0");
        }

        return labels;
    }

    private static void Convert<T>(byte[] native, Span<float> target)
        where T : unmanaged, INumberBase<T>
    {
        var source = MemoryMarshal.Cast<byte, T>(native.AsSpan());
        for (var i = 0; i < target.Length; i++)
        {
            target[i] = float.CreateTruncating(source[i]);
        }
    }

    private static void Widen<T>(byte[] native, long[] labels)
        where T : unmanaged, INumberBase<T>
    {
        var source = MemoryMarshal.Cast<byte, T>(native.AsSpan());
        for (var i = 0; i < labels.Length; i++)
        {
            labels[i] = long.CreateTruncating(source[i]);
        }
    }
}
