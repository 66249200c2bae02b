using Emc.Core.Inference;
using static Emc.Core.Tests.Inference.OipTestData;

namespace Emc.Core.Tests.Inference;

public class OipLimitsTests
{
    [Fact]
    public void ReadRequest_HugeShapeInASmallBody_IsA413WithoutAllocatingIt()
    {
        var body = OneInput("FP64", "[1000000,1000000]", "[1]");

        var before = GC.GetAllocatedBytesForCurrentThread();
        var error = Assert.Throws<OipException>(() => OipCodec.ReadRequest(body));
        var allocated = GC.GetAllocatedBytesForCurrentThread() - before;

        Assert.Equal(OipErrorKind.PayloadTooLarge, error.Kind);
        Assert.Equal("input 'x': 1000000000000 elements exceed the limit of 16777216 elements per body", error.Message);
        Assert.True(allocated < 1_000_000, $"{allocated} bytes allocated");
    }

    [Theory]
    [InlineData("FP64")]
    [InlineData("BYTES")]
    public void ReadRequest_ShapeWithinLimitsButBeyondTheBody_IsA400WithoutAllocatingIt(string datatype)
    {
        var body = OneInput(datatype, "[1000000]", datatype == "BYTES" ? "[\"a\"]" : "[1]");

        var before = GC.GetAllocatedBytesForCurrentThread();
        var error = Assert.Throws<OipException>(() => OipCodec.ReadRequest(body));
        var allocated = GC.GetAllocatedBytesForCurrentThread() - before;

        Assert.Equal(OipErrorKind.BadRequest, error.Kind);
        Assert.Equal("input 'x': data holds 1 values but shape [1000000] needs 1000000", error.Message);
        Assert.True(allocated < 1_000_000, $"{allocated} bytes allocated");
    }

    [Fact]
    public void ReadRequest_BinaryShapeBeyondTheBody_IsA400WithoutAllocatingIt()
    {
        var (body, headerLength) = WithBinary("""{"inputs":[{"name":"a","datatype":"FP32","shape":[4000000],"parameters":{"binary_data_size":16000000}}]}""", new byte[16]);

        var before = GC.GetAllocatedBytesForCurrentThread();
        var message = ErrorOf(() => OipCodec.ReadRequest(body, headerLength));
        var allocated = GC.GetAllocatedBytesForCurrentThread() - before;

        Assert.Equal("input 'a': binary_data_size 16000000 goes past the end of the body (16 bytes left)", message);
        Assert.True(allocated < 1_000_000, $"{allocated} bytes allocated");
    }

    [Fact]
    public void ReadRequest_TotalBytesOverTheLimit_IsA413()
    {
        var limits = new OipLimits { MaxTotalBytes = 15 };
        var body = Utf8("""{"inputs":[{"name":"a","datatype":"FP32","shape":[2],"data":[1,2]},{"name":"b","datatype":"FP64","shape":[1],"data":[1]}]}""");

        var error = Assert.Throws<OipException>(() => OipCodec.ReadRequest(body, null, limits));

        Assert.Equal(413, error.StatusCode);
        Assert.Equal("input 'b': the tensors exceed the limit of 15 bytes per body", error.Message);
        Assert.Equal(2, OipCodec.ReadRequest(body, null, new OipLimits { MaxTotalBytes = 16 }).Inputs.Count);
    }

    [Fact]
    public void ReadRequest_BytesOverTheLimit_IsA413ForJsonAndBinary()
    {
        var limits = new OipLimits { MaxTotalBytes = 5 };
        var json = OneInput("BYTES", "[2]", """["abc","def"]""");
        var (binary, headerLength) = WithBinary(
            """{"inputs":[{"name":"x","datatype":"BYTES","shape":[2],"parameters":{"binary_data_size":14}}]}""",
            [3, 0, 0, 0, 1, 2, 3, 3, 0, 0, 0, 4, 5, 6]);

        Assert.Equal(413, Assert.Throws<OipException>(() => OipCodec.ReadRequest(json, null, limits)).StatusCode);
        Assert.Equal(413, Assert.Throws<OipException>(() => OipCodec.ReadRequest(binary, headerLength, limits)).StatusCode);
        Assert.Equal(2, OipCodec.ReadRequest(binary, headerLength, new OipLimits { MaxTotalBytes = 6 }).Inputs[0].Elements.Count);
    }

    [Fact]
    public void ReadRequest_TotalElementsOverTheLimit_IsA413()
    {
        var limits = new OipLimits { MaxTotalElements = 3 };
        var body = Utf8("""{"inputs":[{"name":"a","datatype":"BOOL","shape":[2],"data":[true,true]},{"name":"b","datatype":"BOOL","shape":[2],"data":[true,true]}]}""");

        Assert.Equal("input 'b': 2 elements exceed the limit of 3 elements per body", ErrorOf(() => OipCodec.ReadRequest(body, null, limits)));
    }

    [Fact]
    public void ReadRequest_TooManyTensorsOrDimensions_IsRefused()
    {
        var twoInputs = Utf8("""{"inputs":[{"name":"a","datatype":"BOOL","shape":[1],"data":[true]},{"name":"b","datatype":"BOOL","shape":[1],"data":[true]}]}""");
        var error = Assert.Throws<OipException>(() => OipCodec.ReadRequest(twoInputs, null, new OipLimits { MaxTensors = 1 }));
        Assert.Equal(413, error.StatusCode);
        Assert.Equal("more than 1 inputs", error.Message);

        Assert.Equal(
            "input 'x': shape has more than 2 dimensions",
            ErrorOf(() => OipCodec.ReadRequest(OneInput("FP32", "[1,1,1]", "[1]"), null, new OipLimits { MaxRank = 2 })));
    }

    [Fact]
    public void ReadResponse_LimitsApplyToOutputsToo()
    {
        var body = Utf8("""{"model_name":"m","outputs":[{"name":"y","datatype":"INT64","shape":[4],"data":[1,2,3,4]}]}""");

        Assert.Equal(413, Assert.Throws<OipException>(() => OipCodec.ReadResponse(body, null, new OipLimits { MaxTotalBytes = 31 })).StatusCode);
    }

    [Fact]
    public void Limits_InvalidValues_AreRejected()
    {
        var body = OneInput("FP32", "[1]", "[1]");

        Assert.Throws<ArgumentOutOfRangeException>(() => OipCodec.ReadRequest(body, null, new OipLimits { MaxTotalBytes = -1 }));
        Assert.Throws<ArgumentOutOfRangeException>(() => OipCodec.ReadRequest(body, null, new OipLimits { MaxTotalBytes = long.MaxValue }));
        Assert.Throws<ArgumentOutOfRangeException>(() => OipCodec.ReadRequest(body, null, new OipLimits { MaxRank = -1 }));
    }

    [Fact]
    public void Defaults_AreDocumentedValues()
    {
        Assert.Equal(64L * 1024 * 1024, OipLimits.Default.MaxTotalBytes);
        Assert.Equal(16L * 1024 * 1024, OipLimits.Default.MaxTotalElements);
        Assert.Equal(1024, OipLimits.Default.MaxTensors);
        Assert.Equal(32, OipLimits.Default.MaxRank);
    }
}
