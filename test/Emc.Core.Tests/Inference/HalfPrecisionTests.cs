using Emc.Core.Inference;

namespace Emc.Core.Tests.Inference;

public class HalfPrecisionTests
{
    [Theory]
    [InlineData(0x3F800000u, (ushort)0x3F80)] // 1
    [InlineData(0xC0000000u, (ushort)0xC000)] // -2
    [InlineData(0x40490FDBu, (ushort)0x4049)] // pi: the dropped half 0x0FDB is under a half, so it rounds down
    [InlineData(0x3DCCCCCDu, (ushort)0x3DCD)] // 0.1: the dropped half 0xCCCD is over a half, so it rounds up
    [InlineData(0x3F808000u, (ushort)0x3F80)] // exactly half-way, kept part even: stays
    [InlineData(0x3F818000u, (ushort)0x3F82)] // exactly half-way, kept part odd: rounds to even
    [InlineData(0x7F7FFFFFu, (ushort)0x7F80)] // float.MaxValue rounds up to infinity
    [InlineData(0xFF800000u, (ushort)0xFF80)] // -infinity
    [InlineData(0x80000000u, (ushort)0x8000)] // -0
    [InlineData(0x00000001u, (ushort)0x0000)] // the smallest subnormal float rounds to +0
    [InlineData(0x7F800001u, (ushort)0x7FC0)] // a NaN whose payload lies in the dropped bits stays NaN
    public void Bf16FromFloat_KnownBitPatterns(uint floatBits, ushort expected)
    {
        Assert.Equal(expected, BFloat16Bits.FromFloat(BitConverter.UInt32BitsToSingle(floatBits)));
    }

    [Theory]
    [InlineData((ushort)0x3F80, 1f)]
    [InlineData((ushort)0xC020, -2.5f)]
    [InlineData((ushort)0x7F7F, 3.3895314e38f)]
    [InlineData((ushort)0x0001, 9.18355e-41f)]
    public void Bf16ToFloat_IsTheUpperHalfOfTheFloat(ushort bits, float expected)
    {
        Assert.Equal(expected, BFloat16Bits.ToFloat(bits));
        Assert.Equal((uint)bits << 16, BitConverter.SingleToUInt32Bits(BFloat16Bits.ToFloat(bits)));
    }

    [Fact]
    public void Bf16_EveryPatternButNaN_RoundTripsThroughFloat()
    {
        for (var bits = 0; bits <= ushort.MaxValue; bits++)
        {
            var value = BFloat16Bits.ToFloat((ushort)bits);
            if (!float.IsNaN(value))
            {
                Assert.Equal((ushort)bits, BFloat16Bits.FromFloat(value));
            }
        }
    }

    [Theory]
    [InlineData(1f, (ushort)0x3C00)]
    [InlineData(-2f, (ushort)0xC000)]
    [InlineData(65504f, (ushort)0x7BFF)]
    [InlineData(5.9604645e-8f, (ushort)0x0001)] // 2^-24, the smallest subnormal half
    [InlineData(0.1f, (ushort)0x2E66)]
    [InlineData(65520f, (ushort)0x7C00)] // past the largest half: infinity
    public void Fp16Tensor_FromFloats_StoresTheHalfBitPattern(float value, ushort expected)
    {
        var tensor = InferTensor.FromFloats("h", [1], [value], TensorDatatype.Fp16);
        Assert.Equal(OipTestData.Bits16(expected), tensor.Data.ToArray());
    }

    [Fact]
    public void Bf16Tensor_FromFloats_StoresRoundedBitsAndReadsBackExactly()
    {
        var tensor = InferTensor.FromFloats("b", [4], [1f, 0.1f, -2.5f, 3.14159265f], TensorDatatype.Bf16);

        Assert.Equal(OipTestData.Bits16(0x3F80, 0x3DCD, 0xC020, 0x4049), tensor.Data.ToArray());
        Assert.Equal([1f, BFloat16Bits.ToFloat(0x3DCD), -2.5f, 3.140625f], tensor.ToFloatArray());
    }

    [Fact]
    public void Fp16Tensor_ToFloatArray_WidensExactly()
    {
        var tensor = InferTensor.FromRaw("h", TensorDatatype.Fp16, [5], OipTestData.Bits16(0x3C00, 0xC000, 0x7BFF, 0x0001, 0x7C00));

        Assert.Equal([1f, -2f, 65504f, 5.9604645e-8f, float.PositiveInfinity], tensor.ToFloatArray());
    }
}
