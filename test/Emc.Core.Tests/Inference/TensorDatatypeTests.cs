using Emc.Core.Inference;

namespace Emc.Core.Tests.Inference;

public class TensorDatatypeTests
{
    [Theory]
    [InlineData("BOOL", TensorDatatype.Bool, 1)]
    [InlineData("UINT8", TensorDatatype.UInt8, 1)]
    [InlineData("UINT16", TensorDatatype.UInt16, 2)]
    [InlineData("UINT32", TensorDatatype.UInt32, 4)]
    [InlineData("UINT64", TensorDatatype.UInt64, 8)]
    [InlineData("INT8", TensorDatatype.Int8, 1)]
    [InlineData("INT16", TensorDatatype.Int16, 2)]
    [InlineData("INT32", TensorDatatype.Int32, 4)]
    [InlineData("INT64", TensorDatatype.Int64, 8)]
    [InlineData("FP16", TensorDatatype.Fp16, 2)]
    [InlineData("FP32", TensorDatatype.Fp32, 4)]
    [InlineData("FP64", TensorDatatype.Fp64, 8)]
    [InlineData("BYTES", TensorDatatype.Bytes, 0)]
    [InlineData("BF16", TensorDatatype.Bf16, 2)]
    public void ParseAndFormat_EveryWireName_RoundTripsWithItsSize(string name, TensorDatatype datatype, int size)
    {
        Assert.True(TensorDatatypes.TryParse(name, out var parsed));
        Assert.Equal(datatype, parsed);
        Assert.Equal(datatype, TensorDatatypes.Parse(name));
        Assert.Equal(name, datatype.ToWireName());
        Assert.Equal(size, datatype.ElementSize());
        Assert.Equal(size > 0, datatype.IsFixedSize());
    }

    [Fact]
    public void All_ListsFourteenDatatypes()
    {
        Assert.Equal(14, TensorDatatypes.All.Count);
        Assert.Equal(14, TensorDatatypes.All.Select(d => d.ToWireName()).Distinct().Count());
    }

    [Theory]
    [InlineData("fp32")]
    [InlineData("Fp32")]
    [InlineData("FLOAT32")]
    [InlineData("")]
    [InlineData(" FP32")]
    [InlineData(null)]
    public void TryParse_WrongCaseOrUnknownName_IsRefused(string? name)
    {
        Assert.False(TensorDatatypes.TryParse(name, out _));
        var error = Assert.Throws<OipException>(() => TensorDatatypes.Parse(name));
        Assert.Equal(400, error.StatusCode);
        Assert.StartsWith($"unknown datatype '{name}'; expected one of BOOL, UINT8", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void ToWireName_ValueOutsideTheEnum_Throws()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => ((TensorDatatype)99).ToWireName());
    }
}
