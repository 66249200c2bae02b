using System.Buffers;
using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using Emc.Core.Inference;

namespace Emc.Coordinator.Tests.Inference.Oip;

[Collection(OipCollection.Name)]
public sealed class OipRestTests(OipFixture fixture)
{
    private const string InferPath = "v2/models/mlp/infer";

    private HttpClient Http => fixture.Http;

    [Fact]
    public async Task ServerMetadataAndHealth_SpecBodies()
    {
        using var metadata = JsonDocument.Parse(await Http.GetStringAsync("v2"));
        Assert.Equal("emc", metadata.RootElement.GetProperty("name").GetString());
        Assert.False(string.IsNullOrEmpty(metadata.RootElement.GetProperty("version").GetString()));
        Assert.Contains(
            metadata.RootElement.GetProperty("extensions").EnumerateArray(),
            e => e.GetString() == OipCodec.BinaryTensorDataExtension);

        using var live = await Http.GetAsync("v2/health/live");
        Assert.Equal(HttpStatusCode.OK, live.StatusCode);
        Assert.True(JsonDocument.Parse(await live.Content.ReadAsStringAsync()).RootElement.GetProperty("live").GetBoolean());
        using var ready = await Http.GetAsync("v2/health/ready");
        Assert.Equal(HttpStatusCode.OK, ready.StatusCode);
        Assert.True(JsonDocument.Parse(await ready.Content.ReadAsStringAsync()).RootElement.GetProperty("ready").GetBoolean());
    }

    [Theory]
    [InlineData("v2/models/mlp")]
    [InlineData("v2/models/mlp/versions/1")]
    public async Task ModelMetadata_DescribesTheGraph(string path)
    {
        using var response = await Http.GetAsync(path);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var metadata = OipCodec.ReadModelMetadata(await response.Content.ReadAsByteArrayAsync());
        Assert.Equal("mlp", metadata.Name);
        Assert.Equal("onnx_onnxv1", metadata.Platform);
        var input = Assert.Single(metadata.Inputs);
        Assert.Equal(("input", TensorDatatype.Fp32), (input.Name, input.Datatype));
        Assert.Equal([-1L, OipFixture.Features], input.Shape);
        var output = Assert.Single(metadata.Outputs);
        Assert.Equal(("logits", TensorDatatype.Fp32), (output.Name, output.Datatype));
    }

    [Theory]
    [InlineData("v2/models/nope")]
    [InlineData("v2/models/mlp/versions/2")]
    [InlineData("v2/models/nope/ready")]
    [InlineData("v2/models/mlp/versions/7/ready")]
    public async Task UnknownModel_404WithErrorBody(string path)
    {
        using var response = await Http.GetAsync(path);
        Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
        Assert.Contains("unknown model", await ErrorOf(response), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("v2/models/mlp/ready")]
    [InlineData("v2/models/mlp/versions/1/ready")]
    public async Task ModelReady_200WithNameAndReady(string path)
    {
        using var response = await Http.GetAsync(path);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        using var body = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        Assert.Equal("mlp", body.RootElement.GetProperty("name").GetString());
        Assert.True(body.RootElement.GetProperty("ready").GetBoolean());
    }

    [Theory]
    [InlineData(InferPath)]
    [InlineData("v2/models/mlp/versions/1/infer")]
    public async Task Infer_Json_SameAsOnnxRuntime(string path)
    {
        var input = OipFixture.Input(3);
        var body = $$"""{"id":"req-42","inputs":[{"name":"input","shape":[3,8],"datatype":"FP32","data":[{{Numbers(input)}}]}]}""";

        using var response = await Http.PostAsync(path, Json(body));

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("application/json", response.Content.Headers.ContentType?.MediaType);
        Assert.False(response.Headers.Contains(OipCodec.HeaderLengthName));
        var answer = OipCodec.ReadResponse(await response.Content.ReadAsByteArrayAsync());
        Assert.Equal("req-42", answer.Id);
        Assert.Equal("mlp", answer.ModelName);
        Assert.Equal("1", answer.ModelVersion);
        var logits = Assert.Single(answer.Outputs);
        Assert.Equal([3L, OipFixture.Classes], logits.Shape);
        AssertClose(fixture.Expected(input), logits.ToArray<float>());
    }

    [Fact]
    public async Task Infer_NestedJsonAndRequestedOutput_SameAsOnnxRuntime()
    {
        var input = OipFixture.Input(2, seed: 5);
        var body = $$"""
            {"inputs":[{"name":"input","shape":[2,8],"datatype":"FP32",
              "data":[[{{Numbers(input.AsSpan(0, 8).ToArray())}}],[{{Numbers(input.AsSpan(8).ToArray())}}]]}],
             "outputs":[{"name":"logits"}]}
            """;

        using var response = await Http.PostAsync(InferPath, Json(body));

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var answer = OipCodec.ReadResponse(await response.Content.ReadAsByteArrayAsync());
        Assert.Null(answer.Id);
        AssertClose(fixture.Expected(input), Assert.Single(answer.Outputs).ToArray<float>());
    }

    [Fact]
    public async Task Infer_BinaryInputsAndOutputs_BitwiseSameAsOnnxRuntime()
    {
        var input = OipFixture.Input(4, seed: 9);
        var request = new InferRequest
        {
            Id = "bin",
            Parameters = new Dictionary<string, InferParameter> { [InferParameters.BinaryDataOutput] = true },
            Inputs = [InferTensor.Create<float>("input", [4, OipFixture.Features], input)],
        };

        using var response = await PostBinaryAsync(request);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("application/octet-stream", response.Content.Headers.ContentType?.MediaType);
        var headerLength = OipCodec.ParseHeaderLength(Assert.Single(response.Headers.GetValues(OipCodec.HeaderLengthName)));
        var bytes = await response.Content.ReadAsByteArrayAsync();
        Assert.True(headerLength < bytes.Length);
        var answer = OipCodec.ReadResponse(bytes, headerLength);
        Assert.Equal("bin", answer.Id);
        Assert.Equal(fixture.Expected(input), Assert.Single(answer.Outputs).ToArray<float>());
    }

    [Fact]
    public async Task Infer_BinaryInputsJsonOutputs_SameAsOnnxRuntime()
    {
        var input = OipFixture.Input(1, seed: 11);
        var request = new InferRequest { Inputs = [InferTensor.Create<float>("input", [1, OipFixture.Features], input)] };

        using var response = await PostBinaryAsync(request);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("application/json", response.Content.Headers.ContentType?.MediaType);
        var answer = OipCodec.ReadResponse(await response.Content.ReadAsByteArrayAsync());
        AssertClose(fixture.Expected(input), Assert.Single(answer.Outputs).ToArray<float>());
    }

    [Fact]
    public async Task Infer_ChunkedBody_IsReadWhole()
    {
        var input = OipFixture.Input(2, seed: 3);
        var body = $$"""{"inputs":[{"name":"input","shape":[2,8],"datatype":"FP32","data":[{{Numbers(input)}}]}]}""";
        using var content = new StreamContent(new MemoryStream(Encoding.UTF8.GetBytes(body)));
        content.Headers.ContentType = new MediaTypeHeaderValue("application/json");

        using var response = await Http.PostAsync(InferPath, content);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        AssertClose(fixture.Expected(input), Assert.Single(OipCodec.ReadResponse(await response.Content.ReadAsByteArrayAsync()).Outputs).ToArray<float>());
    }

    public static TheoryData<string, string, int, string> BadJsonBodies => new()
    {
        { "wrong shape", """{"inputs":[{"name":"input","shape":[2,4],"datatype":"FP32","data":[1,2,3,4,5,6,7,8]}]}""", 400, "expects" },
        { "wrong rank", """{"inputs":[{"name":"input","shape":[8],"datatype":"FP32","data":[1,2,3,4,5,6,7,8]}]}""", 400, "rank" },
        { "wrong datatype", """{"inputs":[{"name":"input","shape":[1,8],"datatype":"INT32","data":[1,2,3,4,5,6,7,8]}]}""", 400, "INT32" },
        { "unknown datatype", """{"inputs":[{"name":"input","shape":[1,8],"datatype":"fp32","data":[1,2,3,4,5,6,7,8]}]}""", 400, "datatype" },
        { "data does not fit shape", """{"inputs":[{"name":"input","shape":[1,8],"datatype":"FP32","data":[1,2,3]}]}""", 400, "input" },
        { "missing input", """{"inputs":[{"name":"other","shape":[1,8],"datatype":"FP32","data":[1,2,3,4,5,6,7,8]}]}""", 400, "missing" },
        { "no inputs", """{"inputs":[]}""", 400, "missing" },
        { "no inputs field", """{"id":"x"}""", 400, "no inputs" },
        { "unknown output", """{"inputs":[{"name":"input","shape":[1,8],"datatype":"FP32","data":[1,2,3,4,5,6,7,8]}],"outputs":[{"name":"nope"}]}""", 400, "nope" },
        { "bad json", """{"inputs":[{"name":"input",""", 400, "" },
        { "not json", "hello", 400, "" },
        { "empty body", "", 400, "" },
        { "json array", "[1,2,3]", 400, "" },
        { "string where number", """{"inputs":[{"name":"input","shape":[1,8],"datatype":"FP32","data":["a",2,3,4,5,6,7,8]}]}""", 400, "" },
        { "absurd shape", """{"inputs":[{"name":"input","shape":[1000000000,1000000000],"datatype":"FP32","data":[1]}]}""", 413, "" },
        { "negative dimension", """{"inputs":[{"name":"input","shape":[-1,8],"datatype":"FP32","data":[1,2,3,4,5,6,7,8]}]}""", 400, "negative" },
        { "bad timeout", """{"parameters":{"timeout":"soon"},"inputs":[{"name":"input","shape":[1,8],"datatype":"FP32","data":[1,2,3,4,5,6,7,8]}]}""", 400, "timeout" },
    };

    [Theory]
    [MemberData(nameof(BadJsonBodies))]
    public async Task Infer_BadJson_4xxErrorBody_ThenStillServes(string what, string body, int status, string mentions)
    {
        using var response = await Http.PostAsync(InferPath, Json(body));

        Assert.True((int)response.StatusCode == status, $"{what}: got {(int)response.StatusCode}");
        Assert.Contains(mentions, await ErrorOf(response), StringComparison.Ordinal);
        await AssertStillServesAsync();
    }

    [Fact]
    public async Task Infer_UnknownModel_404()
    {
        using var response = await Http.PostAsync("v2/models/nope/infer", Json("""{"inputs":[{"name":"input","shape":[1,8],"datatype":"FP32","data":[1,2,3,4,5,6,7,8]}]}"""));
        Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
        Assert.Contains("unknown model 'nope'", await ErrorOf(response), StringComparison.Ordinal);
        await AssertStillServesAsync();
    }

    [Fact]
    public async Task Infer_TruncatedBinaryData_400()
    {
        var request = new InferRequest { Inputs = [InferTensor.Create<float>("input", [2, OipFixture.Features], OipFixture.Input(2))] };
        var buffer = new ArrayBufferWriter<byte>();
        var headerLength = OipCodec.WriteRequest(request, buffer, binaryInputs: true)!.Value;
        using var content = new ByteArrayContent(buffer.WrittenSpan[..^5].ToArray());
        content.Headers.Add(OipCodec.HeaderLengthName, headerLength.ToString(CultureInfo.InvariantCulture));

        using var response = await Http.PostAsync(InferPath, content);

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.NotEmpty(await ErrorOf(response));
        await AssertStillServesAsync();
    }

    [Theory]
    [InlineData("abc")]
    [InlineData("-1")]
    [InlineData("99999999999999")]
    [InlineData("99999999999999999999999999")]
    [InlineData("12 34")]
    public async Task Infer_AbsurdHeaderLength_400(string header)
    {
        using var content = Json("""{"inputs":[{"name":"input","shape":[1,8],"datatype":"FP32","data":[1,2,3,4,5,6,7,8]}]}""");
        content.Headers.TryAddWithoutValidation(OipCodec.HeaderLengthName, header);

        using var response = await Http.PostAsync(InferPath, content);

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Contains(OipCodec.HeaderLengthName, await ErrorOf(response), StringComparison.Ordinal);
        await AssertStillServesAsync();
    }

    [Fact]
    public async Task Infer_DeclaredLengthOverLimit_413BeforeReading()
    {
        using var content = new ByteArrayContent(new byte[OipFixture.MaxRequestBytes + 1]);

        using var response = await Http.PostAsync(InferPath, content);

        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, response.StatusCode);
        Assert.Contains("larger than", await ErrorOf(response), StringComparison.Ordinal);
        await AssertStillServesAsync();
    }

    [Fact]
    public async Task Infer_ChunkedBodyOverLimit_413()
    {
        using var content = new StreamContent(new MemoryStream(new byte[(OipFixture.MaxRequestBytes * 2) + 10]));

        using var response = await Http.PostAsync(InferPath, content);

        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, response.StatusCode);
        Assert.NotEmpty(await ErrorOf(response));
        await AssertStillServesAsync();
    }

    [Fact]
    public async Task Infer_TimeoutParameter_IsAccepted()
    {
        var input = OipFixture.Input(1, seed: 21);
        var body = $$"""{"parameters":{"timeout":5000000},"inputs":[{"name":"input","shape":[1,8],"datatype":"FP32","data":[{{Numbers(input)}}]}]}""";

        using var response = await Http.PostAsync(InferPath, Json(body));

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        AssertClose(fixture.Expected(input), Assert.Single(OipCodec.ReadResponse(await response.Content.ReadAsByteArrayAsync()).Outputs).ToArray<float>());
    }

    internal static void AssertClose(float[] expected, float[] actual)
    {
        Assert.Equal(expected.Length, actual.Length);
        for (var i = 0; i < expected.Length; i++)
        {
            Assert.True(Math.Abs(expected[i] - actual[i]) <= 1e-6f, $"element {i}: expected {expected[i]:R}, got {actual[i]:R}");
        }
    }

    private async Task AssertStillServesAsync()
    {
        var input = OipFixture.Input(1, seed: 77);
        var body = $$"""{"inputs":[{"name":"input","shape":[1,8],"datatype":"FP32","data":[{{Numbers(input)}}]}]}""";
        using var response = await Http.PostAsync(InferPath, Json(body));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        AssertClose(fixture.Expected(input), Assert.Single(OipCodec.ReadResponse(await response.Content.ReadAsByteArrayAsync()).Outputs).ToArray<float>());
    }

    private async Task<HttpResponseMessage> PostBinaryAsync(InferRequest request)
    {
        var buffer = new ArrayBufferWriter<byte>();
        var headerLength = OipCodec.WriteRequest(request, buffer, binaryInputs: true);
        using var content = new ByteArrayContent(buffer.WrittenSpan.ToArray());
        content.Headers.ContentType = new MediaTypeHeaderValue("application/octet-stream");
        content.Headers.Add(OipCodec.HeaderLengthName, headerLength!.Value.ToString(CultureInfo.InvariantCulture));
        return await Http.PostAsync(InferPath, content);
    }

    private static async Task<string> ErrorOf(HttpResponseMessage response)
    {
        Assert.Equal("application/json", response.Content.Headers.ContentType?.MediaType);
        using var body = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        Assert.Equal(JsonValueKind.Object, body.RootElement.ValueKind);
        return body.RootElement.GetProperty("error").GetString()!;
    }

    internal static StringContent Json(string body) => new(body, Encoding.UTF8, "application/json");

    internal static string Numbers(float[] values) => string.Join(",", values.Select(v => v.ToString("R", CultureInfo.InvariantCulture)));
}
