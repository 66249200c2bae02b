using Emc.Core.Inference;

namespace Emc.Core.Tests.Inference;

public class InferTensorTests
{
    [Fact]
    public void Create_Floats_StoresLittleEndianBytesAndShape()
    {
        var tensor = InferTensor.Create<float>("x", [2, 2], [1f, -2f, 0.5f, 0f]);

        Assert.Equal(TensorDatatype.Fp32, tensor.Datatype);
        Assert.Equal([2L, 2L], tensor.Shape);
        Assert.Equal(4, tensor.ElementCount);
        Assert.Equal(
            new byte[] { 0, 0, 0x80, 0x3F, 0, 0, 0, 0xC0, 0, 0, 0, 0x3F, 0, 0, 0, 0 },
            tensor.Data.ToArray());
        Assert.Equal([1f, -2f, 0.5f, 0f], tensor.ToArray<float>());
        Assert.Equal(16, tensor.ContentByteCount);
        Assert.Equal(16, tensor.BinaryByteCount);
    }

    [Theory]
    [MemberData(nameof(OipTestData.AllDatatypes), MemberType = typeof(OipTestData))]
    public void Sample_EveryDatatype_HasSixElementsAndTheRightByteCount(TensorDatatype datatype)
    {
        var tensor = OipTestData.Sample(datatype);

        Assert.Equal(datatype, tensor.Datatype);
        Assert.Equal(6, tensor.ElementCount);
        if (datatype.IsFixedSize())
        {
            Assert.Equal(6 * datatype.ElementSize(), tensor.Data.Length);
            Assert.Empty(tensor.Elements);
        }
        else
        {
            Assert.True(tensor.Data.IsEmpty);
            Assert.Equal(6, tensor.Elements.Count);
            Assert.Equal(tensor.ContentByteCount + 24, tensor.BinaryByteCount);
        }
    }

    [Fact]
    public void ToArray_EveryNetType_RoundTrips()
    {
        Assert.Equal([true, false], InferTensor.Create<bool>("t", [2], [true, false]).ToArray<bool>());
        Assert.Equal([(byte)1, (byte)255], InferTensor.Create<byte>("t", [2], [1, 255]).ToArray<byte>());
        Assert.Equal([(ushort)1, ushort.MaxValue], InferTensor.Create<ushort>("t", [2], [1, ushort.MaxValue]).ToArray<ushort>());
        Assert.Equal([1u, uint.MaxValue], InferTensor.Create<uint>("t", [2], [1, uint.MaxValue]).ToArray<uint>());
        Assert.Equal([1ul, ulong.MaxValue], InferTensor.Create<ulong>("t", [2], [1, ulong.MaxValue]).ToArray<ulong>());
        Assert.Equal([(sbyte)-1, sbyte.MinValue], InferTensor.Create<sbyte>("t", [2], [-1, sbyte.MinValue]).ToArray<sbyte>());
        Assert.Equal([(short)-1, short.MinValue], InferTensor.Create<short>("t", [2], [-1, short.MinValue]).ToArray<short>());
        Assert.Equal([-1, int.MinValue], InferTensor.Create<int>("t", [2], [-1, int.MinValue]).ToArray<int>());
        Assert.Equal([-1L, long.MinValue], InferTensor.Create<long>("t", [2], [-1, long.MinValue]).ToArray<long>());
        Assert.Equal([(Half)1.5f], InferTensor.Create<Half>("t", [1], [(Half)1.5f]).ToArray<Half>());
        Assert.Equal([0.25], InferTensor.Create<double>("t", [1], [0.25]).ToArray<double>());
    }

    [Fact]
    public void ToArray_TypeOfAnotherDatatype_Throws()
    {
        var tensor = InferTensor.Create<int>("t", [1], [1]);

        var error = Assert.Throws<InvalidOperationException>(() => tensor.ToArray<long>());
        Assert.Equal("Tensor 't' is INT32, not INT64.", error.Message);
        Assert.Throws<NotSupportedException>(() => tensor.ToArray<decimal>());
    }

    [Theory]
    [MemberData(nameof(OipTestData.AllDatatypes), MemberType = typeof(OipTestData))]
    public void ToFloatArray_EveryNumericDatatype_ConvertsEachElement(TensorDatatype datatype)
    {
        var tensor = OipTestData.Sample(datatype);
        if (datatype == TensorDatatype.Bytes)
        {
            Assert.Throws<InvalidOperationException>(() => tensor.ToFloatArray());
            return;
        }

        float[] expected = datatype switch
        {
            TensorDatatype.Bool => [1, 0, 1, 1, 0, 0],
            TensorDatatype.UInt8 => [0, 1, 127, 128, 254, 255],
            TensorDatatype.UInt16 => [0, 1, 255, 256, 65534, 65535],
            TensorDatatype.UInt32 => [0, 1, 65536, 2147483648, 4294967294, uint.MaxValue],
            TensorDatatype.UInt64 => [0, 1, uint.MaxValue + 1UL, long.MaxValue, long.MaxValue + 1UL, ulong.MaxValue],
            TensorDatatype.Int8 => [-128, -1, 0, 1, 100, 127],
            TensorDatatype.Int16 => [short.MinValue, -1, 0, 1, 1000, short.MaxValue],
            TensorDatatype.Int32 => [int.MinValue, -1, 0, 1, 100000, int.MaxValue],
            TensorDatatype.Int64 => [long.MinValue, -1, 0, 1, 1L << 53, long.MaxValue],
            TensorDatatype.Fp16 => [(float)(Half)0.1f, 65504f, 5.9604645e-8f, -0f, -2.5f, (float)BitConverter.UInt16BitsToHalf(0x03FF)],
            TensorDatatype.Fp32 => [0.1f, float.MaxValue, float.Epsilon, -0f, -2.5f, 16777216f],
            TensorDatatype.Fp64 => [0.1f, float.PositiveInfinity, 0f, -0f, -2.5f, MathF.PI],
            TensorDatatype.Bf16 => [1f, 3.3895314e38f, 9.18355e-41f, -0f, -2.5f, BFloat16Bits.ToFloat(0x3DCD)],
            _ => throw new ArgumentOutOfRangeException(nameof(datatype)),
        };
        Assert.Equal(expected, tensor.ToFloatArray());
    }

    [Fact]
    public void ToInt64Array_IntegerDatatypes_Widen()
    {
        Assert.Equal([0L, 255L], InferTensor.Create<byte>("t", [2], [0, 255]).ToInt64Array());
        Assert.Equal([1L, 0L], InferTensor.Create<bool>("t", [2], [true, false]).ToInt64Array());
        Assert.Equal([int.MinValue, 7L], InferTensor.Create<int>("t", [2], [int.MinValue, 7]).ToInt64Array());
        Assert.Equal([(long)uint.MaxValue], InferTensor.Create<uint>("t", [1], [uint.MaxValue]).ToInt64Array());
    }

    [Fact]
    public void ToInt64Array_Uint64AboveInt64_OverflowsAndFloatsAreRefused()
    {
        Assert.Throws<OverflowException>(() => InferTensor.Create<ulong>("t", [1], [ulong.MaxValue]).ToInt64Array());
        Assert.Throws<InvalidOperationException>(() => InferTensor.Create<float>("t", [1], [1f]).ToInt64Array());
        Assert.Throws<InvalidOperationException>(() => InferTensor.FromStrings("t", [1], ["a"]).ToInt64Array());
    }

    [Fact]
    public void FromStrings_EncodesUtf8AndToStringArrayDecodes()
    {
        var tensor = InferTensor.FromStrings("s", [3], ["", "héllo", "日本"]);

        Assert.Equal(TensorDatatype.Bytes, tensor.Datatype);
        Assert.Equal([0, 6, 6], tensor.Elements.Select(e => e.Length));
        Assert.Equal(12, tensor.ContentByteCount);
        Assert.Equal(24, tensor.BinaryByteCount);
        Assert.Equal(["", "héllo", "日本"], tensor.ToStringArray());
        Assert.Throws<InvalidOperationException>(() => InferTensor.Create<int>("t", [1], [1]).ToStringArray());
    }

    [Fact]
    public void Create_Bools_StoresZeroOrOne()
    {
        var tensor = InferTensor.Create<bool>("b", [3], [true, false, true]);

        Assert.Equal(new byte[] { 1, 0, 1 }, tensor.Data.ToArray());
    }

    [Fact]
    public void FromRaw_BoolByteOtherThanZeroOrOne_Throws()
    {
        Assert.Throws<ArgumentException>(() => InferTensor.FromRaw("b", TensorDatatype.Bool, [2], new byte[] { 1, 2 }));
    }

    [Fact]
    public void FromRaw_LengthNotMatchingShape_Throws()
    {
        var error = Assert.Throws<ArgumentException>(() => InferTensor.FromRaw("x", TensorDatatype.Fp32, [2, 3], new byte[20]));
        Assert.StartsWith("A FP32 tensor of shape [2,3] needs 24 bytes, not 20.", error.Message, StringComparison.Ordinal);
        Assert.Throws<ArgumentException>(() => InferTensor.FromRaw("x", TensorDatatype.Bytes, [0], Array.Empty<byte>()));
        Assert.Throws<ArgumentException>(() => InferTensor.FromRaw("", TensorDatatype.Fp32, [0], Array.Empty<byte>()));
    }

    [Fact]
    public void FromBytes_CountNotMatchingShape_Throws()
    {
        Assert.Throws<ArgumentException>(() => InferTensor.FromStrings("s", [2], ["a"]));
    }

    [Fact]
    public void ToBinary_BytesTensor_LengthPrefixesEachElementAndFromBinaryBytesPointsBackIntoIt()
    {
        var tensor = InferTensor.FromStrings("s", [3], ["héllo", "", "x"]);

        var binary = tensor.ToBinary();
        var back = InferTensor.FromBinaryBytes("s", [3], binary);

        Assert.Equal(tensor.BinaryByteCount, binary.Length);
        Assert.Equal(new byte[] { 6, 0, 0, 0 }, binary[..4].ToArray());
        Assert.Equal(["héllo", "", "x"], back.ToStringArray());
        Assert.True(System.Runtime.InteropServices.MemoryMarshal.TryGetArray(back.Elements[2], out var segment));
        Assert.Equal(binary.Length - 1, segment.Offset);
    }

    [Fact]
    public void ToBinary_FixedSizeTensor_IsItsDataUncopied()
    {
        var data = new byte[8];
        var tensor = InferTensor.FromRaw("x", TensorDatatype.Fp32, [2], data);

        Assert.True(System.Runtime.InteropServices.MemoryMarshal.TryGetArray(tensor.ToBinary(), out var segment));
        Assert.Same(data, segment.Array);
    }

    [Theory]
    [InlineData(new byte[] { 9, 0, 0, 0, 1 }, 1, "BYTES element 0 claims 9 bytes; 1 are left")]
    [InlineData(new byte[] { 1, 0, 0, 0, 7, 2 }, 1, "1 bytes are left after the 1 BYTES elements")]
    [InlineData(new byte[] { 4, 0, 0, 0, 1, 2, 3, 4 }, 2, "the data ends before BYTES element 1 of 2")]
    [InlineData(new byte[] { 0, 0, 0, 0 }, 2, "4 bytes cannot hold 2 BYTES elements (each has a 4-byte length)")]
    public void FromBinaryBytes_DataNotMatchingShape_SaysWhy(byte[] data, long count, string message)
    {
        var error = Assert.Throws<ArgumentException>(() => InferTensor.FromBinaryBytes("s", [count], data));

        Assert.StartsWith(message, error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void FromFloats_NonFloatDatatype_Throws()
    {
        Assert.Throws<ArgumentException>(() => InferTensor.FromFloats("x", [1], [1f], TensorDatatype.Int32));
        Assert.Equal([1.5], InferTensor.FromFloats("x", [1], [1.5f], TensorDatatype.Fp64).ToArray<double>());
    }

    [Fact]
    public void Shape_NegativeDimension_Throws()
    {
        var error = Assert.Throws<ArgumentException>(() => InferTensor.Create<float>("x", [2, -1], []));
        Assert.StartsWith("shape [2,-1] has a negative dimension", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void ElementCount_ScalarZeroAndOverflow()
    {
        Assert.True(TensorShape.TryGetElementCount([], out var scalar, out _));
        Assert.Equal(1, scalar);
        Assert.True(TensorShape.TryGetElementCount([long.MaxValue, long.MaxValue, 0], out var empty, out _));
        Assert.Equal(0, empty);
        Assert.True(TensorShape.TryGetElementCount([3037000499, 3037000499], out var big, out _));
        Assert.Equal(3037000499L * 3037000499L, big);
        Assert.False(TensorShape.TryGetElementCount([3037000500, 3037000500], out _, out var error));
        Assert.Equal("shape [3037000500,3037000500] has more elements than fit in 64 bits", error);
    }

    [Fact]
    public void WithParameters_KeepsDataAndReplacesParameters()
    {
        var tensor = InferTensor.Create<int>("x", [1], [5]);

        var with = tensor.WithParameters(new Dictionary<string, InferParameter> { ["k"] = "v" });

        Assert.Empty(tensor.Parameters);
        Assert.Equal("v", with.Parameters["k"].ToString());
        Assert.Equal([5], with.ToArray<int>());
    }

    [Fact]
    public void Shape_CannotBeChangedThroughTheInterface()
    {
        var tensor = InferTensor.Create<int>("x", [1], [5]);

        Assert.False(tensor.Shape is long[]);
    }

    [Fact]
    public void InferParameter_KindsAndAccessors()
    {
        InferParameter text = "a";
        InferParameter integer = 42L;
        InferParameter real = 0.5;
        InferParameter flag = true;

        Assert.Equal(InferParameterKind.String, text.Kind);
        Assert.True(text.TryGetString(out var s) && s == "a");
        Assert.False(text.TryGetInt64(out _));
        Assert.True(integer.TryGetInt64(out var i) && i == 42);
        Assert.True(integer.TryGetDouble(out var d) && d == 42);
        Assert.False(integer.TryGetBool(out _));
        Assert.True(real.TryGetDouble(out var r) && r == 0.5);
        Assert.False(real.TryGetInt64(out _));
        Assert.True(flag.TryGetBool(out var b) && b);
        Assert.False(flag.TryGetString(out _));
        Assert.Equal(["a", "42", "0.5", "true"], new[] { text, integer, real, flag }.Select(p => p.ToString()));
        Assert.Equal(InferParameter.FromInt64(42), integer);
        Assert.NotEqual(InferParameter.FromDouble(42), integer);
    }
}
