namespace Emc.Core.Inference;

/// <summary>
/// bfloat16 conversions. A bfloat16 is the upper half of a float32 (sign, 8 exponent bits, 7 mantissa
/// bits), so widening is a shift and narrowing rounds the dropped 16 bits to nearest, ties to even.
/// </summary>
public static class BFloat16Bits
{
    /// <summary>The bfloat16 nearest to <paramref name="value"/> (ties to even); NaN stays a (quiet) NaN, too-large values become infinity.</summary>
    public static ushort FromFloat(float value)
    {
        var bits = BitConverter.SingleToUInt32Bits(value);
        if (float.IsNaN(value))
        {
            // Truncating could clear every mantissa bit left and turn the NaN into an infinity.
            return (ushort)((bits >> 16) | 0x0040);
        }

        bits += 0x7FFFu + ((bits >> 16) & 1u);
        return (ushort)(bits >> 16);
    }

    /// <summary>The float32 equal to the bfloat16 <paramref name="bits"/> (exact).</summary>
    public static float ToFloat(ushort bits) => BitConverter.UInt32BitsToSingle((uint)bits << 16);
}
