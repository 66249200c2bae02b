using System.Runtime.InteropServices;
using Emc.Contracts.Inference.V2;
using Google.Protobuf;
using Grpc.Core;

namespace Emc.Coordinator.Tests.Inference.Oip;

[Collection(OipCollection.Name)]
public sealed class OipGrpcTests(OipFixture fixture)
{
    private GRPCInferenceService.GRPCInferenceServiceClient Grpc => fixture.Grpc;

    [Fact]
    public async Task HealthAndMetadata_Answer()
    {
        Assert.True((await Grpc.ServerLiveAsync(new ServerLiveRequest())).Live);
        Assert.True((await Grpc.ServerReadyAsync(new ServerReadyRequest())).Ready);
        var server = await Grpc.ServerMetadataAsync(new ServerMetadataRequest());
        Assert.Equal("emc", server.Name);
        Assert.Contains("binary_tensor_data", server.Extensions);

        Assert.True((await Grpc.ModelReadyAsync(new ModelReadyRequest { Name = OipFixture.Model })).Ready);
        Assert.True((await Grpc.ModelReadyAsync(new ModelReadyRequest { Name = OipFixture.Model, Version = "1" })).Ready);
        Assert.False((await Grpc.ModelReadyAsync(new ModelReadyRequest { Name = "nope" })).Ready);

        var model = await Grpc.ModelMetadataAsync(new ModelMetadataRequest { Name = OipFixture.Model });
        Assert.Equal("onnx_onnxv1", model.Platform);
        Assert.Equal(["1"], model.Versions);
        var input = Assert.Single(model.Inputs);
        Assert.Equal(("input", "FP32"), (input.Name, input.Datatype));
        Assert.Equal([-1L, OipFixture.Features], input.Shape);
        Assert.Equal("logits", Assert.Single(model.Outputs).Name);
    }

    [Fact]
    public async Task ModelMetadata_Unknown_NotFound()
    {
        var error = await Assert.ThrowsAsync<RpcException>(async () => await Grpc.ModelMetadataAsync(new ModelMetadataRequest { Name = "nope" }));
        Assert.Equal(StatusCode.NotFound, error.StatusCode);
        Assert.Contains("unknown model", error.Status.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public async Task ModelInfer_TypedContents_TypedOutputsSameAsOnnxRuntime()
    {
        var input = OipFixture.Input(3, seed: 31);
        var request = Request(3);
        request.Id = "g-1";
        request.Inputs[0].Contents = new InferTensorContents();
        request.Inputs[0].Contents.Fp32Contents.AddRange(input);

        var response = await Grpc.ModelInferAsync(request);

        Assert.Equal("g-1", response.Id);
        Assert.Equal(OipFixture.Model, response.ModelName);
        Assert.Empty(response.RawOutputContents);
        var output = Assert.Single(response.Outputs);
        Assert.Equal(("logits", "FP32"), (output.Name, output.Datatype));
        Assert.Equal([3L, OipFixture.Classes], output.Shape);
        Assert.Equal(fixture.Expected(input), output.Contents.Fp32Contents.ToArray());
    }

    [Fact]
    public async Task ModelInfer_RawContents_RawOutputsBitwiseSameAsOnnxRuntime()
    {
        var input = OipFixture.Input(5, seed: 41);
        var request = Request(5);
        request.RawInputContents.Add(ByteString.CopyFrom(MemoryMarshal.AsBytes(input.AsSpan())));
        request.Outputs.Add(new ModelInferRequest.Types.InferRequestedOutputTensor { Name = "logits" });

        var response = await Grpc.ModelInferAsync(request);

        var raw = Assert.Single(response.RawOutputContents);
        Assert.Equal(fixture.Expected(input), MemoryMarshal.Cast<byte, float>(raw.Span).ToArray());
        Assert.Null(Assert.Single(response.Outputs).Contents);
    }

    public static TheoryData<string, Action<ModelInferRequest>, StatusCode> BadRequests => new()
    {
        { "wrong shape", r => { r.Inputs[0].Shape[1] = 4; Fill(r, 4); }, StatusCode.InvalidArgument },
        { "wrong datatype", r => { r.Inputs[0].Datatype = "FP64"; r.Inputs[0].Contents = new InferTensorContents(); r.Inputs[0].Contents.Fp64Contents.AddRange(new double[8]); }, StatusCode.InvalidArgument },
        { "unknown datatype", r => { r.Inputs[0].Datatype = "FLOAT"; Fill(r, 8); }, StatusCode.InvalidArgument },
        { "too few values", r => Fill(r, 7), StatusCode.InvalidArgument },
        { "values in the wrong field", r => { r.Inputs[0].Contents = new InferTensorContents(); r.Inputs[0].Contents.IntContents.AddRange(new int[8]); }, StatusCode.InvalidArgument },
        { "truncated raw", r => r.RawInputContents.Add(ByteString.CopyFrom(new byte[31])), StatusCode.InvalidArgument },
        { "FP16 as typed contents", r => { r.Inputs[0].Datatype = "FP16"; Fill(r, 8); }, StatusCode.InvalidArgument },
        { "missing input", r => { r.Inputs[0].Name = "other"; Fill(r, 8); }, StatusCode.InvalidArgument },
        { "no inputs", r => r.Inputs.Clear(), StatusCode.InvalidArgument },
        { "unknown output", r => { Fill(r, 8); r.Outputs.Add(new ModelInferRequest.Types.InferRequestedOutputTensor { Name = "nope" }); }, StatusCode.InvalidArgument },
        { "unknown model", r => { r.ModelName = "nope"; Fill(r, 8); }, StatusCode.NotFound },
        { "unknown version", r => { r.ModelVersion = "9"; Fill(r, 8); }, StatusCode.NotFound },
        { "no model name", r => { r.ModelName = ""; Fill(r, 8); }, StatusCode.InvalidArgument },
        { "absurd shape", r => { r.Inputs[0].Shape[0] = 1_000_000_000; r.Inputs[0].Shape[1] = 1_000_000_000; Fill(r, 8); }, StatusCode.ResourceExhausted },
        { "negative dimension", r => { r.Inputs[0].Shape[0] = -1; Fill(r, 8); }, StatusCode.InvalidArgument },
        { "bad timeout", r => { Fill(r, 8); r.Parameters["timeout"] = new InferParameter { StringParam = "soon" }; }, StatusCode.InvalidArgument },
    };

    [Theory]
    [MemberData(nameof(BadRequests))]
    public async Task ModelInfer_BadRequest_StatusAndMessage_ThenStillServes(string what, Action<ModelInferRequest> spoil, StatusCode expected)
    {
        var request = Request(1);
        spoil(request);

        var error = await Assert.ThrowsAsync<RpcException>(async () => await Grpc.ModelInferAsync(request));

        Assert.True(error.StatusCode == expected, $"{what}: got {error.StatusCode} ({error.Status.Detail})");
        Assert.False(string.IsNullOrEmpty(error.Status.Detail));
        await AssertStillServesAsync();
    }

    [Fact]
    public async Task ModelInfer_MessageOverLimit_ResourceExhausted()
    {
        var request = Request(1);
        request.RawInputContents.Add(ByteString.CopyFrom(new byte[OipFixture.MaxRequestBytes + 1]));

        var error = await Assert.ThrowsAsync<RpcException>(async () => await Grpc.ModelInferAsync(request));

        Assert.Equal(StatusCode.ResourceExhausted, error.StatusCode);
        await AssertStillServesAsync();
    }

    private static ModelInferRequest Request(int rows)
    {
        var request = new ModelInferRequest { ModelName = OipFixture.Model };
        var input = new ModelInferRequest.Types.InferInputTensor { Name = "input", Datatype = "FP32" };
        input.Shape.Add(rows);
        input.Shape.Add(OipFixture.Features);
        request.Inputs.Add(input);
        return request;
    }

    private static void Fill(ModelInferRequest request, int values)
    {
        request.Inputs[0].Contents = new InferTensorContents();
        request.Inputs[0].Contents.Fp32Contents.AddRange(new float[values]);
    }

    private async Task AssertStillServesAsync()
    {
        var input = OipFixture.Input(1, seed: 99);
        var request = Request(1);
        request.Inputs[0].Contents = new InferTensorContents();
        request.Inputs[0].Contents.Fp32Contents.AddRange(input);
        var response = await Grpc.ModelInferAsync(request);
        Assert.Equal(fixture.Expected(input), Assert.Single(response.Outputs).Contents.Fp32Contents.ToArray());
    }
}
