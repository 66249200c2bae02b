using System.Buffers.Binary;
using System.Text;
using Emc.Core.Inference;
using static Emc.Core.Tests.Inference.OipTestData;

namespace Emc.Core.Tests.Inference;

public class OipBinaryTests
{
    [Theory]
    [MemberData(nameof(AllDatatypes), MemberType = typeof(OipTestData))]
    public void Request_EveryDatatype_RoundTripsThroughBinaryData(TensorDatatype datatype)
    {
        var input = Sample(datatype);
        var request = new InferRequest { Inputs = [input, Sample(TensorDatatype.Int32, "second")] };

        var (body, headerLength) = Written(request, binaryInputs: true);
        var read = OipCodec.ReadRequest(body, headerLength);

        Assert.NotNull(headerLength);
        Assert.Equal(body.Length - input.BinaryByteCount - 24, headerLength);
        var json = Encoding.UTF8.GetString(body, 0, (int)headerLength);
        Assert.DoesNotContain("\"data\"", json, StringComparison.Ordinal);
        Assert.Contains($"\"parameters\":{{\"binary_data_size\":{input.BinaryByteCount}}}", json, StringComparison.Ordinal);
        AssertSame(input, read.Inputs[0]);
        AssertSame(request.Inputs[1], read.Inputs[1]);
    }

    [Theory]
    [MemberData(nameof(AllDatatypes), MemberType = typeof(OipTestData))]
    public void Response_EveryDatatype_RoundTripsThroughBinaryData(TensorDatatype datatype)
    {
        var response = new InferResponse { ModelName = "m", Outputs = [Sample(datatype, "y")] };
        var request = new InferRequest { Inputs = [], Parameters = new Dictionary<string, InferParameter> { ["binary_data_output"] = true } };

        var (body, headerLength) = Written(response, request);
        var read = OipCodec.ReadResponse(body, headerLength);

        Assert.Equal(body.Length - response.Outputs[0].BinaryByteCount, headerLength);
        AssertSame(response.Outputs[0], Assert.Single(read.Outputs));
    }

    [Fact]
    public void ReadRequest_TritonStyleBody_MixesJsonAndBinaryInputs()
    {
        var fp16 = Bits16(0x3C00, 0xC000);
        var strings = new byte[] { 2, 0, 0, 0, (byte)'h', (byte)'i', 0, 0, 0, 0 };
        var (body, headerLength) = WithBinary(
            """
            {"inputs":[
              {"name":"a","datatype":"FP16","shape":[2],"parameters":{"binary_data_size":4}},
              {"name":"b","datatype":"INT32","shape":[1],"data":[9]},
              {"name":"c","datatype":"BYTES","shape":[2],"parameters":{"binary_data_size":10,"other":"kept"}}]}
            """,
            fp16,
            strings);

        var read = OipCodec.ReadRequest(body, headerLength);

        Assert.Equal([1f, -2f], read.Inputs[0].ToFloatArray());
        Assert.Empty(read.Inputs[0].Parameters);
        Assert.Equal([9], read.Inputs[1].ToArray<int>());
        Assert.Equal(["hi", ""], read.Inputs[2].ToStringArray());
        Assert.Equal(["other"], read.Inputs[2].Parameters.Keys);
    }

    [Fact]
    public void ReadRequest_BinaryTensor_PointsIntoTheBodyWithoutCopying()
    {
        var (body, headerLength) = WithBinary("""{"inputs":[{"name":"a","datatype":"UINT8","shape":[3],"parameters":{"binary_data_size":3}}]}""", [1, 2, 3]);

        var read = OipCodec.ReadRequest(body, headerLength);
        body[^1] = 42;

        Assert.Equal([(byte)1, 2, 42], read.Inputs[0].ToArray<byte>());
    }

    [Fact]
    public void ReadRequest_HeaderLengthLargerThanBody_IsRefused()
    {
        var (body, _) = WithBinary("""{"inputs":[]}""");

        Assert.Equal(
            $"Inference-Header-Content-Length 1000 is larger than the body ({body.Length} bytes)",
            ErrorOf(() => OipCodec.ReadRequest(body, 1000)));
        Assert.Equal("Inference-Header-Content-Length -1 is negative", ErrorOf(() => OipCodec.ReadRequest(body, -1)));
    }

    [Theory]
    [InlineData(7)]
    [InlineData(9)]
    [InlineData(0)]
    public void ReadRequest_BinaryDataSizeNotMatchingShape_IsRefused(int size)
    {
        var (body, headerLength) = WithBinary(
            $$$"""{"inputs":[{"name":"a","datatype":"FP32","shape":[2],"parameters":{"binary_data_size":{{{size}}}}}]}""",
            new byte[size]);

        Assert.Equal(
            $"input 'a': binary_data_size {size} does not match shape [2] of FP32 (2 × 4 = 8 bytes)",
            ErrorOf(() => OipCodec.ReadRequest(body, headerLength)));
    }

    [Fact]
    public void ReadRequest_BinaryDataSizePastTheEnd_IsRefused()
    {
        var (body, headerLength) = WithBinary("""{"inputs":[{"name":"a","datatype":"FP32","shape":[2],"parameters":{"binary_data_size":8}}]}""", new byte[5]);

        Assert.Equal("input 'a': binary_data_size 8 goes past the end of the body (5 bytes left)", ErrorOf(() => OipCodec.ReadRequest(body, headerLength)));
    }

    [Fact]
    public void ReadRequest_TrailingBytes_AreRefused()
    {
        var (body, headerLength) = WithBinary("""{"inputs":[{"name":"a","datatype":"INT8","shape":[2],"parameters":{"binary_data_size":2}}]}""", new byte[5]);

        Assert.Equal("the body has 3 bytes after the last binary tensor", ErrorOf(() => OipCodec.ReadRequest(body, headerLength)));
    }

    [Fact]
    public void ReadRequest_TrailingBytesWithOnlyJsonInputs_AreRefused()
    {
        var (body, headerLength) = WithBinary("""{"inputs":[{"name":"a","datatype":"INT8","shape":[1],"data":[1]}]}""", [0]);

        Assert.Equal("the body has 1 bytes after the last binary tensor", ErrorOf(() => OipCodec.ReadRequest(body, headerLength)));
    }

    [Fact]
    public void ReadRequest_BothDataAndBinaryDataSize_IsRefused()
    {
        var (body, headerLength) = WithBinary("""{"inputs":[{"name":"a","datatype":"INT8","shape":[1],"data":[1],"parameters":{"binary_data_size":1}}]}""", [1]);

        Assert.Equal("input 'a' has both data and binary_data_size", ErrorOf(() => OipCodec.ReadRequest(body, headerLength)));
    }

    [Fact]
    public void ReadRequest_BinaryDataSizeWithoutHeaderLength_IsRefused()
    {
        var body = Utf8("""{"inputs":[{"name":"a","datatype":"INT8","shape":[1],"parameters":{"binary_data_size":1}}]}""");

        Assert.Equal("input 'a' has binary_data_size but the body has no Inference-Header-Content-Length", ErrorOf(() => OipCodec.ReadRequest(body)));
    }

    [Theory]
    [InlineData("-1", "-1")]
    [InlineData("1.5", "1.5")]
    [InlineData("\"4\"", "4")]
    [InlineData("true", "true")]
    public void ReadRequest_BinaryDataSizeNotANonNegativeInteger_IsRefused(string size, string shown)
    {
        var (body, headerLength) = WithBinary($$$"""{"inputs":[{"name":"a","datatype":"INT8","shape":[1],"parameters":{"binary_data_size":{{{size}}}}}]}""", [1]);

        Assert.Equal($"input 'a': binary_data_size must be a non-negative integer, not {shown}", ErrorOf(() => OipCodec.ReadRequest(body, headerLength)));
    }

    [Fact]
    public void ReadRequest_BoolByteOtherThanZeroOrOne_IsRefused()
    {
        var (body, headerLength) = WithBinary("""{"inputs":[{"name":"a","datatype":"BOOL","shape":[3],"parameters":{"binary_data_size":3}}]}""", [1, 0, 2]);

        Assert.Equal("input 'a': BOOL value 2 at index 2 is neither 0 nor 1", ErrorOf(() => OipCodec.ReadRequest(body, headerLength)));
    }

    [Fact]
    public void ReadRequest_BytesElementWithCutOffLength_IsRefused()
    {
        var (body, headerLength) = WithBinary(
            """{"inputs":[{"name":"s","datatype":"BYTES","shape":[2],"parameters":{"binary_data_size":10}}]}""",
            [1, 0, 0, 0, (byte)'a', 3, 0, 0, 0, (byte)'b']);

        Assert.Equal("input 's': BYTES element 1 is truncated: it declares 3 bytes but only 1 remain", ErrorOf(() => OipCodec.ReadRequest(body, headerLength)));
    }

    [Fact]
    public void ReadRequest_BytesElementWhoseLengthIsCutOff_IsRefused()
    {
        var (body, headerLength) = WithBinary(
            """{"inputs":[{"name":"s","datatype":"BYTES","shape":[2],"parameters":{"binary_data_size":8}}]}""",
            [1, 0, 0, 0, (byte)'a', 0, 0, 0]);

        Assert.Equal("input 's': BYTES element 1 is truncated: its 4-byte length is cut off", ErrorOf(() => OipCodec.ReadRequest(body, headerLength)));
    }

    [Fact]
    public void ReadRequest_BytesElementLongerThanEverything_IsRefused()
    {
        var (body, headerLength) = WithBinary(
            """{"inputs":[{"name":"s","datatype":"BYTES","shape":[1],"parameters":{"binary_data_size":5}}]}""",
            [255, 255, 255, 255, 0]);

        Assert.Equal("input 's': BYTES element 0 is truncated: it declares 4294967295 bytes but only 1 remain", ErrorOf(() => OipCodec.ReadRequest(body, headerLength)));
    }

    [Fact]
    public void ReadRequest_BytesSizeLargerThanItsElements_IsRefused()
    {
        var (body, headerLength) = WithBinary(
            """{"inputs":[{"name":"s","datatype":"BYTES","shape":[1],"parameters":{"binary_data_size":7}}]}""",
            [1, 0, 0, 0, (byte)'a', 9, 9]);

        Assert.Equal("input 's': binary_data_size 7 is 2 bytes more than its 1 BYTES elements use", ErrorOf(() => OipCodec.ReadRequest(body, headerLength)));
    }

    [Fact]
    public void ReadRequest_BytesSizeTooSmallForTheElementCount_IsRefused()
    {
        var (body, headerLength) = WithBinary(
            """{"inputs":[{"name":"s","datatype":"BYTES","shape":[1000000000],"parameters":{"binary_data_size":8}}]}""",
            new byte[8]);
        var limits = new OipLimits { MaxTotalElements = long.MaxValue };

        Assert.Equal(
            "input 's': binary_data_size 8 cannot hold 1000000000 BYTES elements (each has a 4-byte length)",
            ErrorOf(() => OipCodec.ReadRequest(body, headerLength, limits)));
    }

    [Fact]
    public void WriteResponse_BinaryChosenPerOutput()
    {
        var response = new InferResponse
        {
            ModelName = "m",
            Outputs = [InferTensor.Create<int>("json", [1], [5]), InferTensor.Create<short>("bin", [2], [1, -1]), InferTensor.FromStrings("text", [1], ["ab"])],
        };
        var request = new InferRequest
        {
            Inputs = [],
            Parameters = new Dictionary<string, InferParameter> { ["binary_data_output"] = true },
            Outputs =
            [
                new InferRequestedOutput("json") { Parameters = new Dictionary<string, InferParameter> { ["binary_data"] = false } },
                new InferRequestedOutput("bin"),
                new InferRequestedOutput("text") { Parameters = new Dictionary<string, InferParameter> { ["binary_data"] = true } },
            ],
        };

        var (body, headerLength) = Written(response, request);

        Assert.NotNull(headerLength);
        Assert.Equal(
            """{"model_name":"m","outputs":[{"name":"json","datatype":"INT32","shape":[1],"data":[5]},{"name":"bin","datatype":"INT16","shape":[2],"parameters":{"binary_data_size":4}},{"name":"text","datatype":"BYTES","shape":[1],"parameters":{"binary_data_size":6}}]}""",
            Encoding.UTF8.GetString(body, 0, (int)headerLength));
        Assert.Equal(new byte[] { 1, 0, 0xFF, 0xFF, 2, 0, 0, 0, (byte)'a', (byte)'b' }, body[(int)headerLength..]);
        var read = OipCodec.ReadResponse(body, headerLength);
        Assert.Equal([(short)1, -1], read.Outputs[1].ToArray<short>());
        Assert.Equal(["ab"], read.Outputs[2].ToStringArray());
    }

    [Fact]
    public void WriteResponse_NoBinaryAsked_ReturnsNoHeaderLength()
    {
        var response = new InferResponse { ModelName = "m", Outputs = [InferTensor.Create<int>("y", [1], [5])] };
        var request = new InferRequest { Inputs = [], Outputs = [new InferRequestedOutput("y") { Parameters = new Dictionary<string, InferParameter> { ["binary_data"] = false } }] };

        Assert.Null(Written(response, request).HeaderLength);
        Assert.Null(Written(response).HeaderLength);
    }

    [Fact]
    public void WriteResponse_NonUtf8BytesAsBinary_IsFine()
    {
        var response = new InferResponse { ModelName = "m", Outputs = [InferTensor.FromBytes("y", [1], [new byte[] { 0xFF }])] };
        var request = new InferRequest { Inputs = [], Parameters = new Dictionary<string, InferParameter> { ["binary_data_output"] = true } };

        var (body, headerLength) = Written(response, request);

        Assert.Equal(new byte[] { 1, 0, 0, 0, 0xFF }, body[(int)headerLength!..]);
    }

    [Fact]
    public void WriteRequest_LargeTensor_IsCopiedWhole()
    {
        var values = Enumerable.Range(0, 100_000).Select(i => (float)i).ToArray();
        var request = new InferRequest { Inputs = [InferTensor.Create<float>("x", [values.Length], values)] };

        var (body, headerLength) = Written(request, binaryInputs: true);

        Assert.Equal(values, OipCodec.ReadRequest(body, headerLength).Inputs[0].ToArray<float>());
        Assert.Equal(99_999f, BinaryPrimitives.ReadSingleLittleEndian(body.AsSpan(body.Length - 4)));
    }

    [Theory]
    [InlineData(null, null)]
    [InlineData("", null)]
    [InlineData("123", 123L)]
    [InlineData(" 7 ", 7L)]
    public void ParseHeaderLength_ValidValues(string? value, long? expected)
    {
        Assert.Equal(expected, OipCodec.ParseHeaderLength(value));
    }

    [Theory]
    [InlineData("-5")]
    [InlineData("abc")]
    [InlineData("1.5")]
    [InlineData("99999999999999999999")]
    public void ParseHeaderLength_InvalidValues_Are400(string value)
    {
        Assert.Equal($"Inference-Header-Content-Length '{value}' is not a non-negative integer", ErrorOf(() => OipCodec.ParseHeaderLength(value)));
    }
}
