using System.Buffers;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using Emc.Core.Inference;
using static Emc.Core.Tests.Inference.OipTestData;

namespace Emc.Core.Tests.Inference;

public class OipJsonTests
{
    [Fact]
    public void ReadRequest_SpecExample_ReadsEveryField()
    {
        var body = Utf8("""
            { "id": "42",
              "parameters": { "k": "v", "n": 7, "r": 0.5, "b": true },
              "inputs": [ { "name": "input0", "shape": [2, 2], "datatype": "UINT32", "parameters": { "p": 1 }, "data": [1, 2, 3, 4] } ],
              "outputs": [ { "name": "output0", "parameters": { "binary_data": true } }, { "name": "output1" } ] }
            """);

        var request = OipCodec.ReadRequest(body);

        Assert.Equal("42", request.Id);
        Assert.Equal(["b", "k", "n", "r"], request.Parameters.Keys.Order(StringComparer.Ordinal));
        Assert.Equal(InferParameter.FromString("v"), request.Parameters["k"]);
        Assert.Equal(InferParameter.FromInt64(7), request.Parameters["n"]);
        Assert.Equal(InferParameter.FromDouble(0.5), request.Parameters["r"]);
        Assert.Equal(InferParameter.FromBool(true), request.Parameters["b"]);
        var input = Assert.Single(request.Inputs);
        Assert.Equal("input0", input.Name);
        Assert.Equal(TensorDatatype.UInt32, input.Datatype);
        Assert.Equal([2L, 2L], input.Shape);
        Assert.Equal(InferParameter.FromInt64(1), input.Parameters["p"]);
        Assert.Equal([1u, 2u, 3u, 4u], input.ToArray<uint>());
        Assert.Equal(["output0", "output1"], request.Outputs.Select(o => o.Name));
        Assert.True(request.WantsBinaryOutput("output0"));
        Assert.False(request.WantsBinaryOutput("output1"));
    }

    [Fact]
    public void ReadRequest_MinimalRequest_HasNoIdParametersOrOutputs()
    {
        var request = OipCodec.ReadRequest(OneInput("FP32", "[1]", "[1.5]"));

        Assert.Null(request.Id);
        Assert.Empty(request.Parameters);
        Assert.Empty(request.Outputs);
        Assert.Empty(request.Inputs[0].Parameters);
    }

    [Theory]
    [MemberData(nameof(AllDatatypes), MemberType = typeof(OipTestData))]
    public void Request_EveryDatatype_RoundTripsThroughJsonBitForBit(TensorDatatype datatype)
    {
        var input = Sample(datatype).WithParameters(new Dictionary<string, InferParameter> { ["note"] = "n" });
        var request = new InferRequest { Id = "r1", Inputs = [input] };

        var (body, headerLength) = Written(request);
        var read = OipCodec.ReadRequest(body, headerLength);

        Assert.Null(headerLength);
        Assert.Equal("r1", read.Id);
        AssertSame(input, Assert.Single(read.Inputs));
    }

    [Theory]
    [MemberData(nameof(AllDatatypes), MemberType = typeof(OipTestData))]
    public void Response_EveryDatatype_RoundTripsThroughJsonBitForBit(TensorDatatype datatype)
    {
        var response = new InferResponse
        {
            ModelName = "m",
            ModelVersion = "3",
            Id = "r1",
            Parameters = new Dictionary<string, InferParameter> { ["sequence_end"] = true },
            Outputs = [Sample(datatype, "y")],
        };

        var (body, headerLength) = Written(response);
        var read = OipCodec.ReadResponse(body, headerLength);

        Assert.Null(headerLength);
        Assert.Equal("m", read.ModelName);
        Assert.Equal("3", read.ModelVersion);
        Assert.Equal("r1", read.Id);
        Assert.Equal(InferParameter.FromBool(true), read.Parameters["sequence_end"]);
        AssertSame(response.Outputs[0], Assert.Single(read.Outputs));
    }

    [Fact]
    public void WriteResponse_WritesTheSpecLayoutWithFlatData()
    {
        var response = new InferResponse
        {
            ModelName = "mymodel",
            ModelVersion = "1",
            Id = "42",
            Outputs = [InferTensor.Create<float>("output0", [3, 2], [1f, 1.1f, 2f, 2.1f, 3f, 3.1f])],
        };

        var (body, _) = Written(response);

        Assert.Equal(
            """{"model_name":"mymodel","model_version":"1","id":"42","outputs":[{"name":"output0","datatype":"FP32","shape":[3,2],"data":[1,1.1,2,2.1,3,3.1]}]}""",
            Encoding.UTF8.GetString(body));
    }

    [Fact]
    public void WriteRequest_WritesInputsAndRequestedOutputs()
    {
        var request = new InferRequest
        {
            Parameters = new Dictionary<string, InferParameter> { ["priority"] = 2L },
            Inputs = [InferTensor.Create<bool>("b", [2], [true, false]), InferTensor.FromStrings("s", [1], ["hi"])],
            Outputs = [new InferRequestedOutput("o") { Parameters = new Dictionary<string, InferParameter> { ["binary_data"] = false } }],
        };

        var (body, _) = Written(request);

        Assert.Equal(
            """{"parameters":{"priority":2},"inputs":[{"name":"b","datatype":"BOOL","shape":[2],"data":[true,false]},{"name":"s","datatype":"BYTES","shape":[1],"data":["hi"]}],"outputs":[{"name":"o","parameters":{"binary_data":false}}]}""",
            Encoding.UTF8.GetString(body));
    }

    [Theory]
    [InlineData("[1,2,3,4,5,6]")]
    [InlineData("[[1,2,3],[4,5,6]]")]
    [InlineData("[[[1],[2],[3]],[[4],[5],[6]]]")]
    [InlineData("[[1,2],[3,4],[5,6]]")]
    [InlineData(" [ [ 1 , 2 , 3 ] , [ 4 , 5 , 6 ] ] ")]
    public void ReadRequest_NestedOrFlatData_GiveTheSameTensor(string data)
    {
        var tensor = ParseOne("INT16", "[2,3]", data);

        Assert.Equal([(short)1, 2, 3, 4, 5, 6], tensor.ToArray<short>());
    }

    [Fact]
    public void ReadRequest_NestedStrings_Flatten()
    {
        Assert.Equal(["a", "b", "c", "d"], ParseOne("BYTES", "[2,2]", """[["a","b"],["c","d"]]""").ToStringArray());
    }

    [Fact]
    public void ReadRequest_DataBeforeShapeAndDatatype_IsDecodedAfterwards()
    {
        var body = Utf8("""{"inputs":[{"data":[[1.5,2.5]],"shape":[1,2],"name":"x","datatype":"FP64"}]}""");

        Assert.Equal([1.5, 2.5], OipCodec.ReadRequest(body).Inputs[0].ToArray<double>());
    }

    [Fact]
    public void ReadRequest_ScalarAndEmptyTensors()
    {
        Assert.Equal([7L], ParseOne("INT64", "[]", "[7]").ToArray<long>());
        var empty = ParseOne("FP32", "[0,3]", "[]");
        Assert.Equal(0, empty.ElementCount);
        Assert.True(empty.Data.IsEmpty);
        Assert.Empty(ParseOne("BYTES", "[0]", "[]").Elements);
    }

    [Theory]
    [InlineData("BOOL", "[true,false]", new byte[] { 1, 0 })]
    [InlineData("UINT8", "[0,255]", new byte[] { 0, 255 })]
    [InlineData("UINT16", "[1,65535]", new byte[] { 1, 0, 255, 255 })]
    [InlineData("UINT32", "[-0,4294967295]", new byte[] { 0, 0, 0, 0, 255, 255, 255, 255 })]
    [InlineData("UINT64", "[1,18446744073709551615]", new byte[] { 1, 0, 0, 0, 0, 0, 0, 0, 255, 255, 255, 255, 255, 255, 255, 255 })]
    [InlineData("INT8", "[-128,127]", new byte[] { 0x80, 0x7F })]
    [InlineData("INT16", "[-32768,32767]", new byte[] { 0, 0x80, 255, 0x7F })]
    [InlineData("INT32", "[-2147483648,2147483647]", new byte[] { 0, 0, 0, 0x80, 255, 255, 255, 0x7F })]
    [InlineData("INT64", "[-9223372036854775808,9223372036854775807]", new byte[] { 0, 0, 0, 0, 0, 0, 0, 0x80, 255, 255, 255, 255, 255, 255, 255, 0x7F })]
    [InlineData("FP16", "[1,0.1]", new byte[] { 0x00, 0x3C, 0x66, 0x2E })]
    [InlineData("BF16", "[1,0.1]", new byte[] { 0x80, 0x3F, 0xCD, 0x3D })]
    [InlineData("FP32", "[1,-2.5]", new byte[] { 0, 0, 0x80, 0x3F, 0, 0, 0x20, 0xC0 })]
    [InlineData("FP64", "[1,-0.5]", new byte[] { 0, 0, 0, 0, 0, 0, 0xF0, 0x3F, 0, 0, 0, 0, 0, 0, 0xE0, 0xBF })]
    public void ReadRequest_BoundaryValues_AreStoredAsLittleEndianBytes(string datatype, string data, byte[] expected)
    {
        Assert.Equal(expected, ParseOne(datatype, "[2]", data).Data.ToArray());
    }

    [Theory]
    [InlineData("UINT8", "300")]
    [InlineData("UINT8", "256")]
    [InlineData("UINT8", "-1")]
    [InlineData("UINT16", "65536")]
    [InlineData("UINT32", "-1")]
    [InlineData("UINT32", "4294967296")]
    [InlineData("UINT64", "18446744073709551616")]
    [InlineData("UINT64", "-1")]
    [InlineData("INT8", "128")]
    [InlineData("INT8", "-129")]
    [InlineData("INT16", "32768")]
    [InlineData("INT16", "-32769")]
    [InlineData("INT32", "2147483648")]
    [InlineData("INT32", "-2147483649")]
    [InlineData("INT64", "9223372036854775808")]
    [InlineData("INT64", "-9223372036854775809")]
    [InlineData("FP16", "65520")]
    [InlineData("FP16", "-1e5")]
    [InlineData("BF16", "1e39")]
    [InlineData("FP32", "3.5e38")]
    [InlineData("FP32", "-1e39")]
    [InlineData("FP64", "1e309")]
    public void ReadRequest_ValueOutOfRange_IsRefusedWithItsIndex(string datatype, string value)
    {
        var error = ParseError(datatype, "[2]", $"[0,{value}]");

        Assert.Equal($"input 'x': value {value} at index 1 is out of range for {datatype}", error);
    }

    [Theory]
    [InlineData("INT32", "1.5")]
    [InlineData("UINT8", "1e2")]
    [InlineData("INT64", "1.0")]
    [InlineData("UINT64", "0.5")]
    public void ReadRequest_NonIntegerForIntegerType_IsRefused(string datatype, string value)
    {
        Assert.Equal($"input 'x': value {value} at index 1 is not an integer ({datatype})", ParseError(datatype, "[2]", $"[0,{value}]"));
    }

    [Theory]
    [InlineData("INT32", "\"3\"", "\"3\"")]
    [InlineData("FP32", "true", "true")]
    [InlineData("FP64", "null", "null")]
    [InlineData("UINT8", "\"NaN\"", "\"NaN\"")]
    [InlineData("FP32", "\"nan\"", "\"nan\"")]
    public void ReadRequest_NonNumberForNumericType_IsRefused(string datatype, string value, string shown)
    {
        Assert.Equal($"input 'x': value {shown} at index 1 is not a number ({datatype})", ParseError(datatype, "[2]", $"[0,{value}]"));
    }

    [Fact]
    public void ReadRequest_ObjectInData_IsRefused()
    {
        Assert.Equal("input 'x': value an object at index 0 is not a number (INT32)", ParseError("INT32", "[1]", """[{"a":1}]"""));
        Assert.Equal("input 'x': data holds an object at index 1", ParseError("INT32", "[1]", """[1,{"a":1}]"""));
    }

    [Theory]
    [InlineData("1")]
    [InlineData("0")]
    [InlineData("\"true\"")]
    [InlineData("null")]
    public void ReadRequest_BoolNotTrueOrFalse_IsRefused(string value)
    {
        Assert.Equal($"input 'x': value {value} at index 0 is not true or false (BOOL)", ParseError("BOOL", "[1]", $"[{value}]"));
    }

    [Theory]
    [InlineData("1")]
    [InlineData("true")]
    [InlineData("null")]
    public void ReadRequest_BytesNotString_IsRefused(string value)
    {
        Assert.Equal($"input 'x': value {value} at index 1 is not a string (BYTES)", ParseError("BYTES", "[2]", $"[\"a\",{value}]"));
    }

    [Fact]
    public void ReadRequest_BytesWithEscapes_AreUnescapedUtf8()
    {
        var tensor = ParseOne("BYTES", "[3]", """["caf\u00e9","tab\there","\ud83d\ude00"]""");

        Assert.Equal(["café", "tab\there", "😀"], tensor.ToStringArray());
        Assert.Equal(Utf8("café"), tensor.Elements[0].ToArray());
    }

    [Theory]
    [InlineData("FP32")]
    [InlineData("FP64")]
    [InlineData("FP16")]
    [InlineData("BF16")]
    public void NonFiniteFloats_AreWrittenAsStringsAndReadBack(string datatypeName)
    {
        var datatype = TensorDatatypes.Parse(datatypeName);
        var input = InferTensor.FromFloats("x", [3], [float.NaN, float.PositiveInfinity, float.NegativeInfinity], datatype);
        var (body, _) = Written(new InferRequest { Inputs = [input] });

        Assert.Contains("""["NaN","Infinity","-Infinity"]""", Encoding.UTF8.GetString(body), StringComparison.Ordinal);
        var read = OipCodec.ReadRequest(body).Inputs[0].ToFloatArray();
        Assert.True(float.IsNaN(read[0]));
        Assert.Equal([float.PositiveInfinity, float.NegativeInfinity], read[1..]);
    }

    [Theory]
    [InlineData("[1,2,3]", 3)]
    [InlineData("[[1,2],[3,4],[5]]", 5)]
    [InlineData("[1,2,3,4,5,6,7]", 7)]
    [InlineData("[]", 0)]
    public void ReadRequest_CountNotMatchingShape_IsRefused(string data, int found)
    {
        Assert.Equal($"input 'x': data holds {found} values but shape [2,3] needs 6", ParseError("FP32", "[2,3]", data));
        Assert.Equal($"input 'x': data holds {found} values but shape [2,3] needs 6", ParseError("BYTES", "[2,3]", Regex.Replace(data, "[0-9]", "\"a\"")));
    }

    [Fact]
    public void ReadRequest_ShapeLargerThanTheText_IsRefusedWithTheCount()
    {
        Assert.Equal("input 'x': data holds 2 values but shape [1000] needs 1000", ParseError("FP32", "[1000]", "[1,2]"));
        Assert.Equal("input 'x': data holds 2 values but shape [1000] needs 1000", ParseError("BYTES", "[1000]", "[\"a\",\"b\"]"));
    }

    [Theory]
    [InlineData("""{"inputs":[{"datatype":"FP32","shape":[1],"data":[1]}]}""", "input 0 has no name")]
    [InlineData("""{"inputs":[{"name":"","datatype":"FP32","shape":[1],"data":[1]}]}""", "input 0 has no name")]
    [InlineData("""{"inputs":[{"name":"x","shape":[1],"data":[1]}]}""", "input 'x' has no datatype")]
    [InlineData("""{"inputs":[{"name":"x","datatype":"FP32","data":[1]}]}""", "input 'x' has no shape")]
    [InlineData("""{"inputs":[{"name":"x","datatype":"FP32","shape":[1]}]}""", "input 'x' has neither data nor binary_data_size")]
    [InlineData("""{"inputs":[{"name":"x","datatype":"fp32","shape":[1],"data":[1]}]}""", "input 'x': unknown datatype 'fp32'; expected one of BOOL, UINT8, UINT16, UINT32, UINT64, INT8, INT16, INT32, INT64, FP16, FP32, FP64, BYTES, BF16")]
    [InlineData("""{"inputs":[{"name":"x","datatype":"FP32","shape":[-1],"data":[1]}]}""", "input 'x': shape dimension -1 is negative")]
    [InlineData("""{"inputs":[{"name":"x","datatype":"FP32","shape":[1.5],"data":[1]}]}""", "input 'x': shape holds 1.5, not an integer")]
    [InlineData("""{"inputs":[{"name":"x","datatype":"FP32","shape":"[1]","data":[1]}]}""", "input 'x' shape must be an array, not \"[1]\"")]
    [InlineData("""{"inputs":[{"name":"x","datatype":"FP32","shape":[4294967296,4294967296],"data":[1]}]}""", "input 'x': shape [4294967296,4294967296] has more elements than fit in 64 bits")]
    [InlineData("""{"inputs":[{"name":"x","datatype":"FP32","shape":[1],"data":1}]}""", "input 'x' data must be an array, not 1")]
    [InlineData("""{"inputs":[{"name":"x","datatype":"FP32","shape":[1],"data":[1],"data":[2]}]}""", "input 'x' has 'data' more than once")]
    [InlineData("""{"inputs":[{"name":"x","datatype":"FP32","shape":[1],"data":[1]},{"name":"x","datatype":"FP32","shape":[1],"data":[1]}]}""", "input 'x' appears more than once")]
    [InlineData("""{"inputs":[{"name":"x","datatype":"FP32","shape":[1],"data":[1],"parameters":{"a":null}}]}""", "input 'x' parameters: 'a' is null; a parameter is a string, a number or a boolean")]
    [InlineData("""{"inputs":[{"name":"x","datatype":"FP32","shape":[1],"data":[1],"parameters":{"a":[1]}}]}""", "input 'x' parameters: 'a' is an array; a parameter is a string, a number or a boolean")]
    [InlineData("""{"parameters":{"a":1,"a":2},"inputs":[]}""", "request parameters: 'a' appears more than once")]
    [InlineData("""{"inputs":[],"inputs":[]}""", "the request has 'inputs' more than once")]
    [InlineData("""{"id":5,"inputs":[]}""", "id must be a string, not 5")]
    [InlineData("""{"inputs":{}}""", "inputs must be an array, not an object")]
    [InlineData("""{"inputs":[1]}""", "input 0 must be an object, not 1")]
    [InlineData("""{"id":"a"}""", "the request has no inputs")]
    [InlineData("""[]""", "the request must be an object, not an array")]
    [InlineData("""{"inputs":[],"outputs":[{"parameters":{}}]}""", "requested output 0 has no name")]
    [InlineData("""{"inputs":[],"outputs":[{"name":"o"},{"name":"o"}]}""", "output 'o' is requested more than once")]
    public void ReadRequest_MalformedRequest_IsRefusedWithAClearMessage(string json, string message)
    {
        var error = Assert.Throws<OipException>(() => OipCodec.ReadRequest(Utf8(json)));

        Assert.Equal(OipErrorKind.BadRequest, error.Kind);
        Assert.Equal(message, error.Message);
    }

    [Theory]
    [InlineData("")]
    [InlineData("   ")]
    [InlineData("{")]
    [InlineData("""{"inputs":[]} x""")]
    [InlineData("""{"inputs":[]}{}""")]
    [InlineData("""{"inputs":[] /* comment */}""")]
    [InlineData("""{"inputs":[{"name":"x","datatype":"FP32","shape":[1],"data":[1,]}]}""")]
    public void ReadRequest_InvalidJson_IsA400(string json)
    {
        var error = Assert.Throws<OipException>(() => OipCodec.ReadRequest(Utf8(json)));

        Assert.Equal(400, error.StatusCode);
        Assert.True(
            error.Message.StartsWith("invalid JSON: ", StringComparison.Ordinal) || error.Message == "the request body is empty",
            error.Message);
    }

    [Fact]
    public void ReadRequest_UnknownProperties_AreIgnored()
    {
        var body = Utf8("""{"model_name":"m","extra":{"a":[1,{"b":2}]},"inputs":[{"name":"x","datatype":"INT8","shape":[1],"data":[3],"other":[1,2]}]}""");

        Assert.Equal([(sbyte)3], OipCodec.ReadRequest(body).Inputs[0].ToArray<sbyte>());
    }

    [Fact]
    public void ReadResponse_MissingModelNameOrOutputs_IsRefused()
    {
        Assert.Equal("the response has no model_name", ErrorOf(() => OipCodec.ReadResponse(Utf8("""{"outputs":[]}"""))));
        Assert.Equal("the response has no outputs", ErrorOf(() => OipCodec.ReadResponse(Utf8("""{"model_name":"m"}"""))));
    }

    [Fact]
    public void WriteResponse_NonUtf8BytesAsJson_Throws()
    {
        var response = new InferResponse { ModelName = "m", Outputs = [InferTensor.FromBytes("y", [1], [new byte[] { 0xFF, 0xFE }])] };

        Assert.Throws<InvalidOperationException>(() => Written(response));
    }

    [Fact]
    public void WriteResponse_StaleBinaryDataSizeParameter_IsDropped()
    {
        var output = InferTensor.Create<int>("y", [1], [1]).WithParameters(new Dictionary<string, InferParameter> { ["binary_data_size"] = 99L, ["k"] = 1.5 });

        var (body, _) = Written(new InferResponse { ModelName = "m", Outputs = [output] });

        Assert.Contains("\"parameters\":{\"k\":1.5},\"data\":[1]", Encoding.UTF8.GetString(body), StringComparison.Ordinal);
    }

    [Fact]
    public void ModelMetadata_RoundTripsWithVariableDimensions()
    {
        var metadata = new ModelMetadata
        {
            Name = "resnet",
            Versions = ["1", "2"],
            Platform = "onnx_onnxv1",
            Inputs = [new TensorMetadata("image", TensorDatatype.Fp32, [-1, 3, 224, 224])],
            Outputs = [new TensorMetadata("logits", TensorDatatype.Fp16, [-1, 1000]), new TensorMetadata("label", TensorDatatype.Bytes, [-1])],
        };
        var buffer = new ArrayBufferWriter<byte>();

        OipCodec.WriteModelMetadata(metadata, buffer);
        var read = OipCodec.ReadModelMetadata(buffer.WrittenSpan);

        Assert.Equal(
            """{"name":"resnet","versions":["1","2"],"platform":"onnx_onnxv1","inputs":[{"name":"image","datatype":"FP32","shape":[-1,3,224,224]}],"outputs":[{"name":"logits","datatype":"FP16","shape":[-1,1000]},{"name":"label","datatype":"BYTES","shape":[-1]}]}""",
            Encoding.UTF8.GetString(buffer.WrittenSpan));
        Assert.Equal("resnet", read.Name);
        Assert.Equal(["1", "2"], read.Versions);
        Assert.Equal("onnx_onnxv1", read.Platform);
        Assert.Equal([-1L, 3, 224, 224], read.Inputs[0].Shape);
        Assert.Equal(["logits", "label"], read.Outputs.Select(o => o.Name));
        Assert.Equal(TensorDatatype.Bytes, read.Outputs[1].Datatype);
    }

    [Theory]
    [InlineData("""{"name":"m","inputs":[{"name":"x","datatype":"FP32","shape":[-2]}]}""", "input 0: shape dimension -2 is below -1")]
    [InlineData("""{"name":"m","inputs":[{"name":"x","shape":[1]}]}""", "input 0 needs a name, a datatype and a shape")]
    [InlineData("""{"name":"m","inputs":[{"name":"x","datatype":"F32","shape":[1]}]}""", "unknown datatype 'F32'; expected one of BOOL, UINT8, UINT16, UINT32, UINT64, INT8, INT16, INT32, INT64, FP16, FP32, FP64, BYTES, BF16")]
    [InlineData("""{"platform":"x"}""", "the model metadata has no name")]
    public void ReadModelMetadata_Malformed_IsRefused(string json, string message)
    {
        Assert.Equal(message, ErrorOf(() => OipCodec.ReadModelMetadata(Utf8(json))));
    }

    [Fact]
    public void ServerMetadata_RoundTrips()
    {
        var buffer = new ArrayBufferWriter<byte>();

        OipCodec.WriteServerMetadata(new ServerMetadata { Name = "emc", Version = "0.1", Extensions = [OipCodec.BinaryTensorDataExtension] }, buffer);
        var read = OipCodec.ReadServerMetadata(buffer.WrittenSpan);

        Assert.Equal("""{"name":"emc","version":"0.1","extensions":["binary_tensor_data"]}""", Encoding.UTF8.GetString(buffer.WrittenSpan));
        Assert.Equal("emc", read.Name);
        Assert.Equal("0.1", read.Version);
        Assert.Equal(["binary_tensor_data"], read.Extensions);
        Assert.Equal("the server metadata has no name", ErrorOf(() => OipCodec.ReadServerMetadata(Utf8("{}"))));
    }

    [Fact]
    public void ErrorBody_IsTheSpecErrorObject()
    {
        var body = OipCodec.ErrorBody("input 'x' has \"quotes\"");

        using var document = JsonDocument.Parse(body);
        Assert.Equal("input 'x' has \"quotes\"", document.RootElement.GetProperty("error").GetString());
        Assert.Single(document.RootElement.EnumerateObject());
    }

    [Fact]
    public void OipException_CarriesTheHttpStatus()
    {
        Assert.Equal(400, new OipException("bad").StatusCode);
        Assert.Equal(404, OipException.UnknownModel("m").StatusCode);
        Assert.Equal("unknown model 'm'", OipException.UnknownModel("m").Message);
        Assert.Equal("unknown model 'm' version '2'", OipException.UnknownModel("m", "2").Message);
        Assert.Equal(503, OipException.Unavailable("no node serves 'm'").StatusCode);
        Assert.Equal(413, new OipException(OipErrorKind.PayloadTooLarge, "big").StatusCode);
        Assert.Equal(OipErrorKind.BadRequest, new OipException().Kind);
        var inner = new InvalidOperationException();
        Assert.Same(inner, new OipException(OipErrorKind.Unavailable, "x", inner).InnerException);
    }
}

public class OipJsonEdgeTests
{
    [Fact]
    public void ReadRequest_InvalidUtf8InAName_IsA400()
    {
        byte[] body = [.. Utf8("""{"id":" """), 0xFF, .. Utf8(""" ","inputs":[]}""")];

        Assert.Equal(400, Assert.Throws<OipException>(() => OipCodec.ReadRequest(body)).StatusCode);
    }

    [Fact]
    public void ReadRequest_InvalidUtf8InBytesData_IsKeptAsBytes()
    {
        byte[] body = [.. Utf8("""{"inputs":[{"name":"s","datatype":"BYTES","shape":[1],"data":[" """), 0xFF, .. Utf8(""" "]}]}""")];

        var tensor = OipCodec.ReadRequest(body).Inputs[0];

        Assert.Equal(new byte[] { 0x20, 0xFF, 0x20 }, tensor.Elements[0].ToArray());
    }

    [Fact]
    public void ReadRequest_LoneSurrogateEscapeInBytesData_IsA400()
    {
        var body = OneInput("BYTES", "[1]", """["\ud800"]""");

        Assert.Equal(400, Assert.Throws<OipException>(() => OipCodec.ReadRequest(body)).StatusCode);
    }

    [Fact]
    public void ReadRequest_HugeNumberParameter_IsA400()
    {
        var body = Utf8("""{"parameters":{"p":1e400},"inputs":[]}""");

        Assert.Equal("request parameters: 'p' is out of range", ErrorOf(() => OipCodec.ReadRequest(body)));
    }
}

public class OipJsonMessageTests
{
    [Fact]
    public void ReadRequest_InvalidUtf8StringInNumericData_IsA400()
    {
        byte[] body = [.. Utf8("""{"inputs":[{"name":"s","datatype":"INT32","shape":[1],"data":[" """), 0xFF, .. Utf8(""" "]}]}""")];

        Assert.Equal("input 's': value \" \uFFFD \" at index 0 is not a number (INT32)", ErrorOf(() => OipCodec.ReadRequest(body)));
    }

    [Fact]
    public void ReadRequest_LongValueInAMessage_IsShortened()
    {
        var error = ParseError("INT32", "[1]", $"[\"{new string('a', 100)}\"]");

        Assert.Equal($"input 'x': value \"{new string('a', 40)}…\" at index 0 is not a number (INT32)", error);
    }
}
