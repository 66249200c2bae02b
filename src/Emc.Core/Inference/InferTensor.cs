using System.Buffers.Binary;
using System.Collections.ObjectModel;
using System.Numerics;
using System.Runtime.InteropServices;
using System.Text;

namespace Emc.Core.Inference;

/// <summary>
/// One input or output tensor of an inference: a name, a datatype, a shape and the elements in
/// row-major order. Fixed-size elements are held as one little-endian byte buffer (<see cref="Data"/>),
/// exactly as the binary extension and gRPC's raw contents carry them, so a tensor read from a request
/// body can point into that body without copying. BYTES elements are held as a list of byte strings
/// (<see cref="Elements"/>). Instances are immutable and always consistent: the data matches the shape.
/// </summary>
public sealed class InferTensor
{
    private static readonly IReadOnlyList<ReadOnlyMemory<byte>> NoElements = Array.Empty<ReadOnlyMemory<byte>>();

    private InferTensor(
        string name,
        TensorDatatype datatype,
        long[] shape,
        long elementCount,
        ReadOnlyMemory<byte> data,
        IReadOnlyList<ReadOnlyMemory<byte>> elements,
        IReadOnlyDictionary<string, InferParameter>? parameters)
    {
        Name = name;
        Datatype = datatype;
        Shape = new ReadOnlyCollection<long>(shape);
        ElementCount = elementCount;
        Data = data;
        Elements = elements;
        Parameters = parameters ?? InferParameters.Empty;
    }

    /// <summary>The tensor's name.</summary>
    public string Name { get; }

    /// <summary>The element type.</summary>
    public TensorDatatype Datatype { get; }

    /// <summary>The dimensions, outermost first; empty for a scalar. No dimension is negative.</summary>
    public IReadOnlyList<long> Shape { get; }

    /// <summary>The product of <see cref="Shape"/>.</summary>
    public long ElementCount { get; }

    /// <summary>The tensor's parameters (never including the transport's <c>binary_data_size</c>).</summary>
    public IReadOnlyDictionary<string, InferParameter> Parameters { get; }

    /// <summary>Fixed-size datatypes: <see cref="ElementCount"/> × element size little-endian bytes. BYTES: empty.</summary>
    public ReadOnlyMemory<byte> Data { get; }

    /// <summary>BYTES: the <see cref="ElementCount"/> byte strings. Other datatypes: empty.</summary>
    public IReadOnlyList<ReadOnlyMemory<byte>> Elements { get; }

    /// <summary>The size of the elements' bytes (for BYTES, the sum of their lengths).</summary>
    public long ContentByteCount => Datatype == TensorDatatype.Bytes ? SumElementLengths(Elements) : Data.Length;

    /// <summary>The size of the tensor in the binary extension's layout (for BYTES, 4 more bytes of length per element).</summary>
    public long BinaryByteCount => Datatype == TensorDatatype.Bytes ? SumElementLengths(Elements) + (4L * Elements.Count) : Data.Length;

    /// <summary>A fixed-size tensor over existing little-endian bytes (not copied); throws <see cref="ArgumentException"/> when their length does not match the shape.</summary>
    public static InferTensor FromRaw(
        string name,
        TensorDatatype datatype,
        ReadOnlySpan<long> shape,
        ReadOnlyMemory<byte> data,
        IReadOnlyDictionary<string, InferParameter>? parameters = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        if (!datatype.IsFixedSize())
        {
            throw new ArgumentException("BYTES tensors are built with FromBytes or FromStrings.", nameof(datatype));
        }

        var count = CountOrThrow(shape);
        if (data.Length != count * datatype.ElementSize())
        {
            throw new ArgumentException(
                $"A {datatype.ToWireName()} tensor of shape {TensorShape.Format(shape)} needs {count * datatype.ElementSize()} bytes, not {data.Length}.",
                nameof(data));
        }

        if (datatype == TensorDatatype.Bool && data.Span.ContainsAnyExcept((byte)0, (byte)1))
        {
            throw new ArgumentException("BOOL elements must be 0 or 1.", nameof(data));
        }

        return new InferTensor(name, datatype, shape.ToArray(), count, data, NoElements, parameters);
    }

    /// <summary>A tensor of the datatype matching <typeparamref name="T"/> (float: FP32, Half: FP16, int: INT32, bool: BOOL ...), copying <paramref name="values"/>.</summary>
    public static InferTensor Create<T>(
        string name,
        ReadOnlySpan<long> shape,
        ReadOnlySpan<T> values,
        IReadOnlyDictionary<string, InferParameter>? parameters = null)
        where T : unmanaged
    {
        var datatype = DatatypeOf<T>();
        var bytes = MemoryMarshal.AsBytes(values).ToArray();
        if (datatype == TensorDatatype.Bool)
        {
            // A bool's byte can be anything non-zero for true; the wire wants exactly 1.
            for (var i = 0; i < bytes.Length; i++)
            {
                bytes[i] = bytes[i] == 0 ? (byte)0 : (byte)1;
            }
        }

        return FromRaw(name, datatype, shape, bytes, parameters);
    }

    /// <summary>A floating-point tensor of <paramref name="datatype"/> (FP16, BF16, FP32 or FP64) from float32 values, rounding to nearest for the 16-bit types.</summary>
    public static InferTensor FromFloats(
        string name,
        ReadOnlySpan<long> shape,
        ReadOnlySpan<float> values,
        TensorDatatype datatype = TensorDatatype.Fp32,
        IReadOnlyDictionary<string, InferParameter>? parameters = null)
    {
        var size = datatype.ElementSize();
        var bytes = new byte[values.Length * size];
        switch (datatype)
        {
            case TensorDatatype.Fp32:
                MemoryMarshal.AsBytes(values).CopyTo(bytes);
                break;
            case TensorDatatype.Fp16:
                for (var i = 0; i < values.Length; i++)
                {
                    BinaryPrimitives.WriteHalfLittleEndian(bytes.AsSpan(i * 2), (Half)values[i]);
                }

                break;
            case TensorDatatype.Bf16:
                for (var i = 0; i < values.Length; i++)
                {
                    BinaryPrimitives.WriteUInt16LittleEndian(bytes.AsSpan(i * 2), BFloat16Bits.FromFloat(values[i]));
                }

                break;
            case TensorDatatype.Fp64:
                for (var i = 0; i < values.Length; i++)
                {
                    BinaryPrimitives.WriteDoubleLittleEndian(bytes.AsSpan(i * 8), values[i]);
                }

                break;
            default:
                throw new ArgumentException($"{datatype.ToWireName()} is not a floating-point datatype.", nameof(datatype));
        }

        return FromRaw(name, datatype, shape, bytes, parameters);
    }

    /// <summary>A BYTES tensor over existing byte strings (the list is copied, the bytes are not).</summary>
    public static InferTensor FromBytes(
        string name,
        ReadOnlySpan<long> shape,
        IEnumerable<ReadOnlyMemory<byte>> elements,
        IReadOnlyDictionary<string, InferParameter>? parameters = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        ArgumentNullException.ThrowIfNull(elements);
        var list = elements.ToArray();
        var count = CountOrThrow(shape);
        if (list.Length != count)
        {
            throw new ArgumentException($"A tensor of shape {TensorShape.Format(shape)} needs {count} elements, not {list.Length}.", nameof(elements));
        }

        return new InferTensor(name, TensorDatatype.Bytes, shape.ToArray(), count, ReadOnlyMemory<byte>.Empty, list, parameters);
    }

    /// <summary>
    /// A BYTES tensor over elements in the binary layout (each a 4-byte little-endian length, then its
    /// bytes), as the binary extension and raw tensor contents carry them. The elements point into
    /// <paramref name="data"/> (not copied). Throws <see cref="ArgumentException"/> when the data does not
    /// hold exactly as many elements as the shape has.
    /// </summary>
    public static InferTensor FromBinaryBytes(
        string name,
        ReadOnlySpan<long> shape,
        ReadOnlyMemory<byte> data,
        IReadOnlyDictionary<string, InferParameter>? parameters = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        var count = CountOrThrow(shape);

        // Every element takes at least its 4-byte length, which bounds the array before it is made.
        if (count > data.Length / 4)
        {
            throw new ArgumentException($"{data.Length} bytes cannot hold {count} BYTES elements (each has a 4-byte length)", nameof(data));
        }

        var elements = new ReadOnlyMemory<byte>[count];
        var span = data.Span;
        var offset = 0;
        for (var i = 0; i < elements.Length; i++)
        {
            if (span.Length - offset < 4)
            {
                throw new ArgumentException($"the data ends before BYTES element {i} of {count}", nameof(data));
            }

            var length = BinaryPrimitives.ReadUInt32LittleEndian(span[offset..]);
            offset += 4;
            if (length > (uint)(span.Length - offset))
            {
                throw new ArgumentException($"BYTES element {i} claims {length} bytes; {span.Length - offset} are left", nameof(data));
            }

            elements[i] = data.Slice(offset, (int)length);
            offset += (int)length;
        }

        return offset == span.Length
            ? new InferTensor(name, TensorDatatype.Bytes, shape.ToArray(), count, ReadOnlyMemory<byte>.Empty, elements, parameters)
            : throw new ArgumentException($"{span.Length - offset} bytes are left after the {count} BYTES elements", nameof(data));
    }

    /// <summary>A BYTES tensor of strings, each encoded as UTF-8.</summary>
    public static InferTensor FromStrings(
        string name,
        ReadOnlySpan<long> shape,
        IEnumerable<string> values,
        IReadOnlyDictionary<string, InferParameter>? parameters = null)
    {
        ArgumentNullException.ThrowIfNull(values);
        return FromBytes(name, shape, values.Select(v => (ReadOnlyMemory<byte>)Encoding.UTF8.GetBytes(v)), parameters);
    }

    /// <summary>The same tensor with other parameters.</summary>
    public InferTensor WithParameters(IReadOnlyDictionary<string, InferParameter>? parameters) =>
        new(Name, Datatype, Shape.ToArray(), ElementCount, Data, Elements, parameters);

    /// <summary>
    /// The elements in the binary layout: fixed-size data as it is (not copied); BYTES elements each
    /// after its 4-byte little-endian length, laid out once in a new buffer.
    /// </summary>
    public ReadOnlyMemory<byte> ToBinary()
    {
        if (Datatype != TensorDatatype.Bytes)
        {
            return Data;
        }

        var buffer = new byte[BinaryByteCount];
        var offset = 0;
        foreach (var element in Elements)
        {
            BinaryPrimitives.WriteUInt32LittleEndian(buffer.AsSpan(offset), (uint)element.Length);
            element.Span.CopyTo(buffer.AsSpan(offset + 4));
            offset += 4 + element.Length;
        }

        return buffer;
    }

    /// <summary>A copy of the elements as <typeparamref name="T"/>, which must be the datatype's own .NET type (FP32: float, INT64: long ...).</summary>
    public T[] ToArray<T>()
        where T : unmanaged
    {
        var wanted = DatatypeOf<T>();
        if (wanted != Datatype)
        {
            throw new InvalidOperationException($"Tensor '{Name}' is {Datatype.ToWireName()}, not {wanted.ToWireName()}.");
        }

        return MemoryMarshal.Cast<byte, T>(Data.Span).ToArray();
    }

    /// <summary>
    /// The elements converted to float32: FP16 and BF16 exactly, FP64 and wide integers rounded to
    /// nearest, BOOL as 0 or 1. Throws <see cref="InvalidOperationException"/> for BYTES.
    /// </summary>
    public float[] ToFloatArray()
    {
        var data = Data.Span;
        switch (Datatype)
        {
            case TensorDatatype.Fp32:
                return MemoryMarshal.Cast<byte, float>(data).ToArray();
            case TensorDatatype.Fp16:
                var halves = MemoryMarshal.Cast<byte, Half>(data);
                var fromHalves = new float[halves.Length];
                for (var i = 0; i < halves.Length; i++)
                {
                    fromHalves[i] = (float)halves[i];
                }

                return fromHalves;
            case TensorDatatype.Bf16:
                var bf16 = MemoryMarshal.Cast<byte, ushort>(data);
                var fromBf16 = new float[bf16.Length];
                for (var i = 0; i < bf16.Length; i++)
                {
                    fromBf16[i] = BFloat16Bits.ToFloat(bf16[i]);
                }

                return fromBf16;
            case TensorDatatype.Bytes:
                throw new InvalidOperationException($"Tensor '{Name}' is BYTES; it has no numeric value.");
            default:
                return ConvertInts<float>();
        }
    }

    /// <summary>The elements of an integer or BOOL tensor as int64; throws <see cref="OverflowException"/> for a UINT64 value above <see cref="long.MaxValue"/>.</summary>
    public long[] ToInt64Array() => Datatype switch
    {
        TensorDatatype.Fp16 or TensorDatatype.Fp32 or TensorDatatype.Fp64 or TensorDatatype.Bf16 or TensorDatatype.Bytes =>
            throw new InvalidOperationException($"Tensor '{Name}' is {Datatype.ToWireName()}, not an integer datatype."),
        _ => ConvertInts<long>(),
    };

    /// <summary>The elements of a BYTES tensor decoded as UTF-8 (invalid sequences become U+FFFD).</summary>
    public string[] ToStringArray()
    {
        if (Datatype != TensorDatatype.Bytes)
        {
            throw new InvalidOperationException($"Tensor '{Name}' is {Datatype.ToWireName()}, not BYTES.");
        }

        return Elements.Select(e => Encoding.UTF8.GetString(e.Span)).ToArray();
    }

    internal static InferTensor Trusted(
        string name,
        TensorDatatype datatype,
        long[] shape,
        long count,
        ReadOnlyMemory<byte> data,
        IReadOnlyList<ReadOnlyMemory<byte>>? elements,
        IReadOnlyDictionary<string, InferParameter>? parameters) =>
        new(name, datatype, shape, count, data, elements ?? NoElements, parameters);

    internal static TensorDatatype DatatypeOf<T>()
        where T : unmanaged
    {
        var type = typeof(T);
        return type == typeof(float) ? TensorDatatype.Fp32
            : type == typeof(double) ? TensorDatatype.Fp64
            : type == typeof(Half) ? TensorDatatype.Fp16
            : type == typeof(long) ? TensorDatatype.Int64
            : type == typeof(int) ? TensorDatatype.Int32
            : type == typeof(short) ? TensorDatatype.Int16
            : type == typeof(sbyte) ? TensorDatatype.Int8
            : type == typeof(ulong) ? TensorDatatype.UInt64
            : type == typeof(uint) ? TensorDatatype.UInt32
            : type == typeof(ushort) ? TensorDatatype.UInt16
            : type == typeof(byte) ? TensorDatatype.UInt8
            : type == typeof(bool) ? TensorDatatype.Bool
            : throw new NotSupportedException($"{type.Name} has no tensor datatype; use FromFloats for BF16 and FromBytes for BYTES.");
    }

    private static long CountOrThrow(ReadOnlySpan<long> shape) =>
        TensorShape.TryGetElementCount(shape, out var count, out var error) ? count : throw new ArgumentException(error, nameof(shape));

    private static long SumElementLengths(IReadOnlyList<ReadOnlyMemory<byte>> elements)
    {
        long sum = 0;
        foreach (var element in elements)
        {
            sum += element.Length;
        }

        return sum;
    }

    private TTo[] ConvertInts<TTo>()
        where TTo : INumberBase<TTo> => Datatype switch
        {
            TensorDatatype.Bool or TensorDatatype.UInt8 => Convert<byte, TTo>(),
            TensorDatatype.UInt16 => Convert<ushort, TTo>(),
            TensorDatatype.UInt32 => Convert<uint, TTo>(),
            TensorDatatype.UInt64 => Convert<ulong, TTo>(),
            TensorDatatype.Int8 => Convert<sbyte, TTo>(),
            TensorDatatype.Int16 => Convert<short, TTo>(),
            TensorDatatype.Int32 => Convert<int, TTo>(),
            TensorDatatype.Int64 => Convert<long, TTo>(),
            TensorDatatype.Fp64 => Convert<double, TTo>(),
            _ => throw new InvalidOperationException($"Tensor '{Name}' is {Datatype.ToWireName()}."),
        };

    private TTo[] Convert<TFrom, TTo>()
        where TFrom : unmanaged, INumberBase<TFrom>
        where TTo : INumberBase<TTo>
    {
        var source = MemoryMarshal.Cast<byte, TFrom>(Data.Span);
        var result = new TTo[source.Length];
        for (var i = 0; i < source.Length; i++)
        {
            result[i] = TTo.CreateChecked(source[i]);
        }

        return result;
    }
}
