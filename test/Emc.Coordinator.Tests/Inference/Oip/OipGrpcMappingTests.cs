using System.Text;
using Emc.Contracts.Inference.V2;
using Emc.Coordinator.Inference.Oip;
using Emc.Core.Inference;
using CoreInferParameter = Emc.Core.Inference.InferParameter;

namespace Emc.Coordinator.Tests.Inference.Oip;

public sealed class OipGrpcMappingTests
{
    public static TheoryData<string> Datatypes => new(TensorDatatypes.All.Select(d => d.ToWireName()));

    [Theory]
    [MemberData(nameof(Datatypes))]
    public void Tensor_ThroughOutputAndBackAsInput_SameBytes(string wireName)
    {
        var datatype = TensorDatatypes.Parse(wireName);
        var tensor = Sample(datatype);
        foreach (var raw in new[] { false, true })
        {
            var response = OipGrpcMapping.ToMessage(
                new InferResponse { ModelName = "m", Outputs = [tensor], Parameters = new Dictionary<string, CoreInferParameter> { ["p"] = 3L } },
                "id-1",
                raw);
            var wentRaw = response.RawOutputContents.Count == 1;
            Assert.Equal(raw || datatype is TensorDatatype.Fp16 or TensorDatatype.Bf16, wentRaw);
            Assert.Equal(3L, response.Parameters["p"].Int64Param);
            Assert.Equal("id-1", response.Id);

            var output = response.Outputs[0];
            var request = new ModelInferRequest { ModelName = "m", Id = "id-1" };
            request.Inputs.Add(new ModelInferRequest.Types.InferInputTensor { Name = output.Name, Datatype = output.Datatype, Shape = { output.Shape }, Contents = output.Contents });
            if (wentRaw)
            {
                request.RawInputContents.Add(response.RawOutputContents[0]);
            }

            var back = Assert.Single(OipGrpcMapping.ToRequest(request, OipLimits.Default).Inputs);

            Assert.Equal(tensor.Datatype, back.Datatype);
            Assert.Equal(tensor.Shape, back.Shape);
            Assert.Equal(tensor.Data.ToArray(), back.Data.ToArray());
            Assert.Equal(tensor.Elements.Select(e => e.ToArray()), back.Elements.Select(e => e.ToArray()));
        }
    }

    [Theory]
    [InlineData("INT8", 128)]
    [InlineData("INT8", -129)]
    [InlineData("INT16", 40000)]
    public void TypedInts_OutOfRange_400(string datatype, int value)
    {
        var request = new ModelInferRequest { ModelName = "m" };
        var input = new ModelInferRequest.Types.InferInputTensor { Name = "x", Datatype = datatype, Shape = { 1 }, Contents = new InferTensorContents() };
        input.Contents.IntContents.Add(value);
        request.Inputs.Add(input);

        var error = Assert.Throws<OipException>(() => OipGrpcMapping.ToRequest(request, OipLimits.Default));

        Assert.Equal(OipErrorKind.BadRequest, error.Kind);
        Assert.Contains("out of range", error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(new byte[] { 5, 0, 0, 0, 1 })]
    [InlineData(new byte[] { 1, 0, 0 })]
    [InlineData(new byte[] { 1, 0, 0, 0, 65, 9 })]
    public void RawBytes_Malformed_400(byte[] raw)
    {
        var request = new ModelInferRequest { ModelName = "m" };
        request.Inputs.Add(new ModelInferRequest.Types.InferInputTensor { Name = "x", Datatype = "BYTES", Shape = { 1 } });
        request.RawInputContents.Add(Google.Protobuf.ByteString.CopyFrom(raw));

        Assert.Equal(OipErrorKind.BadRequest, Assert.Throws<OipException>(() => OipGrpcMapping.ToRequest(request, OipLimits.Default)).Kind);
    }

    [Fact]
    public void Limits_TooManyElements_413()
    {
        var request = new ModelInferRequest { ModelName = "m" };
        request.Inputs.Add(new ModelInferRequest.Types.InferInputTensor { Name = "x", Datatype = "FP32", Shape = { 100 } });
        request.RawInputContents.Add(Google.Protobuf.ByteString.CopyFrom(new byte[400]));

        var error = Assert.Throws<OipException>(() => OipGrpcMapping.ToRequest(request, new OipLimits { MaxTotalElements = 10 }));

        Assert.Equal(OipErrorKind.PayloadTooLarge, error.Kind);
    }

    private static InferTensor Sample(TensorDatatype datatype) => datatype switch
    {
        TensorDatatype.Bool => InferTensor.Create<bool>("t", [2, 2], [true, false, false, true]),
        TensorDatatype.UInt8 => InferTensor.Create<byte>("t", [3], [0, 7, 255]),
        TensorDatatype.UInt16 => InferTensor.Create<ushort>("t", [3], [0, 7, 65535]),
        TensorDatatype.UInt32 => InferTensor.Create<uint>("t", [3], [0, 7, uint.MaxValue]),
        TensorDatatype.UInt64 => InferTensor.Create<ulong>("t", [3], [0, 7, ulong.MaxValue]),
        TensorDatatype.Int8 => InferTensor.Create<sbyte>("t", [3], [-128, 7, 127]),
        TensorDatatype.Int16 => InferTensor.Create<short>("t", [3], [short.MinValue, 7, short.MaxValue]),
        TensorDatatype.Int32 => InferTensor.Create<int>("t", [3], [int.MinValue, 7, int.MaxValue]),
        TensorDatatype.Int64 => InferTensor.Create<long>("t", [3], [long.MinValue, 7, long.MaxValue]),
        TensorDatatype.Fp32 => InferTensor.Create<float>("t", [1, 3], [float.MinValue, 0.1f, float.NaN]),
        TensorDatatype.Fp64 => InferTensor.Create<double>("t", [3], [double.Epsilon, 0.1, double.NegativeInfinity]),
        TensorDatatype.Bytes => InferTensor.FromBytes("t", [3], [Encoding.UTF8.GetBytes("héllo"), Array.Empty<byte>(), new byte[] { 0, 255, 1 }]),
        _ => InferTensor.FromFloats("t", [3], [1.5f, -2f, 65504f], datatype),
    };
}
