using System.Buffers;
using System.Text;
using Emc.Core.Inference;

namespace Emc.Core.Tests.Inference;

/// <summary>Sample tensors of every datatype (with each type's extremes) and body helpers shared by the inference tests.</summary>
internal static class OipTestData
{
    public static TheoryData<TensorDatatype> AllDatatypes()
    {
        var data = new TheoryData<TensorDatatype>();
        foreach (var datatype in TensorDatatypes.All)
        {
            data.Add(datatype);
        }

        return data;
    }

    /// <summary>A tensor named <paramref name="name"/> of shape [2, 3] holding awkward values of <paramref name="datatype"/>.</summary>
    public static InferTensor Sample(TensorDatatype datatype, string name = "x") => datatype switch
    {
        TensorDatatype.Bool => InferTensor.Create<bool>(name, [2, 3], [true, false, true, true, false, false]),
        TensorDatatype.UInt8 => InferTensor.Create<byte>(name, [2, 3], [0, 1, 127, 128, 254, 255]),
        TensorDatatype.UInt16 => InferTensor.Create<ushort>(name, [2, 3], [0, 1, 255, 256, 65534, 65535]),
        TensorDatatype.UInt32 => InferTensor.Create<uint>(name, [2, 3], [0, 1, 65536, 2147483648, 4294967294, uint.MaxValue]),
        TensorDatatype.UInt64 => InferTensor.Create<ulong>(name, [2, 3], [0, 1, uint.MaxValue + 1UL, long.MaxValue, long.MaxValue + 1UL, ulong.MaxValue]),
        TensorDatatype.Int8 => InferTensor.Create<sbyte>(name, [2, 3], [sbyte.MinValue, -1, 0, 1, 100, sbyte.MaxValue]),
        TensorDatatype.Int16 => InferTensor.Create<short>(name, [2, 3], [short.MinValue, -1, 0, 1, 1000, short.MaxValue]),
        TensorDatatype.Int32 => InferTensor.Create<int>(name, [2, 3], [int.MinValue, -1, 0, 1, 100000, int.MaxValue]),
        TensorDatatype.Int64 => InferTensor.Create<long>(name, [2, 3], [long.MinValue, -1, 0, 1, 1L << 53, long.MaxValue]),
        TensorDatatype.Fp16 => InferTensor.Create<Half>(
            name, [2, 3], [(Half)0.1f, Half.MaxValue, Half.Epsilon, Half.NegativeZero, (Half)(-2.5f), BitConverter.UInt16BitsToHalf(0x03FF)]),
        TensorDatatype.Fp32 => InferTensor.Create<float>(name, [2, 3], [0.1f, float.MaxValue, float.Epsilon, -0f, -2.5f, 16777217f]),
        TensorDatatype.Fp64 => InferTensor.Create<double>(name, [2, 3], [0.1, double.MaxValue, double.Epsilon, -0.0, -2.5, Math.PI]),
        TensorDatatype.Bf16 => InferTensor.FromRaw(name, TensorDatatype.Bf16, [2, 3], Bits16(0x3F80, 0x7F7F, 0x0001, 0x8000, 0xC020, 0x3DCD)),
        TensorDatatype.Bytes => InferTensor.FromStrings(name, [2, 3], ["", "hello", "héllo wörld", "quote \" backslash \\ newline \n", "日本語", "\u0001"]),
        _ => throw new ArgumentOutOfRangeException(nameof(datatype)),
    };

    public static byte[] Bits16(params ushort[] values)
    {
        var bytes = new byte[values.Length * 2];
        for (var i = 0; i < values.Length; i++)
        {
            System.Buffers.Binary.BinaryPrimitives.WriteUInt16LittleEndian(bytes.AsSpan(i * 2), values[i]);
        }

        return bytes;
    }

    public static byte[] Utf8(string text) => Encoding.UTF8.GetBytes(text);

    /// <summary>A body of <paramref name="json"/> followed by <paramref name="binary"/>, and the header length to send with it.</summary>
    public static (byte[] Body, long HeaderLength) WithBinary(string json, params byte[][] binary)
    {
        var header = Utf8(json);
        return ([.. header, .. binary.SelectMany(b => b)], header.Length);
    }

    /// <summary>A one-input request body.</summary>
    public static byte[] OneInput(string datatype, string shape, string data) =>
        Utf8($$"""{"inputs":[{"name":"x","datatype":"{{datatype}}","shape":{{shape}},"data":{{data}}}]}""");

    public static InferTensor ParseOne(string datatype, string shape, string data) =>
        Assert.Single(OipCodec.ReadRequest(OneInput(datatype, shape, data)).Inputs);

    public static string ErrorOf(Action action) => Assert.Throws<OipException>(action).Message;

    public static string ParseError(string datatype, string shape, string data) =>
        ErrorOf(() => OipCodec.ReadRequest(OneInput(datatype, shape, data)));

    public static (byte[] Body, long? HeaderLength) Written(InferRequest request, bool binaryInputs = false)
    {
        var buffer = new ArrayBufferWriter<byte>();
        var headerLength = OipCodec.WriteRequest(request, buffer, binaryInputs);
        return (buffer.WrittenSpan.ToArray(), headerLength);
    }

    public static (byte[] Body, long? HeaderLength) Written(InferResponse response, InferRequest? request = null)
    {
        var buffer = new ArrayBufferWriter<byte>();
        var headerLength = OipCodec.WriteResponse(response, buffer, request);
        return (buffer.WrittenSpan.ToArray(), headerLength);
    }

    /// <summary>Asserts two tensors are the same bit for bit: name, datatype, shape, parameters and elements.</summary>
    public static void AssertSame(InferTensor expected, InferTensor actual)
    {
        Assert.Equal(expected.Name, actual.Name);
        Assert.Equal(expected.Datatype, actual.Datatype);
        Assert.Equal(expected.Shape, actual.Shape);
        Assert.Equal(expected.ElementCount, actual.ElementCount);
        Assert.Equal(expected.Parameters.OrderBy(p => p.Key), actual.Parameters.OrderBy(p => p.Key));
        Assert.Equal(expected.Data.ToArray(), actual.Data.ToArray());
        Assert.Equal(expected.Elements.Select(e => e.ToArray()), actual.Elements.Select(e => e.ToArray()));
    }
}
