using System.Globalization;
using System.Net;
using System.Text;
using System.Text.RegularExpressions;
using Emc.Coordinator.Accounts;
using Emc.Coordinator.Inference.Oip;
using Emc.Core.Inference;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;

namespace Emc.Coordinator.Tests.Inference.Oip;

/// <summary>
/// Infer calls with a valid key are served ahead of the general pipeline (<see cref="OipInferFastPath"/>):
/// they must get what the mapped endpoints give, and everything else must still reach those endpoints.
/// </summary>
[Collection(OipCollection.Name)]
public sealed partial class OipInferFastPathTests(OipFixture fixture)
{
    [Theory]
    [InlineData("/v2/models/mlp/infer", "mlp", null)]
    [InlineData("/v2/models/mlp/versions/3/infer", "mlp", "3")]
    [InlineData("/V2/Models/mlp/INFER", "mlp", null)]
    [InlineData("/v2/models/a.b-c_d/Versions/12/Infer", "a.b-c_d", "12")]
    public void TryMatch_TheTwoInferRoutes(string path, string name, string? version)
    {
        Assert.True(OipInferFastPath.TryMatch(new PathString(path), out var matchedName, out var matchedVersion));
        Assert.Equal((name, version), (matchedName, matchedVersion));
    }

    [Theory]
    [InlineData("/v2/models/mlp")]
    [InlineData("/v2/models/mlp/infer/")]
    [InlineData("/v2/models//infer")]
    [InlineData("/v2/models/mlp/versions//infer")]
    [InlineData("/v2/models/mlp/versions/1/ready")]
    [InlineData("/v2/models/mlp/ready")]
    [InlineData("/v2/models/mlp/x/1/infer")]
    [InlineData("/v2/models/mlp/versions/1/infer/more")]
    [InlineData("/v1/models/mlp/infer")]
    [InlineData("/api/v1/models")]
    [InlineData("")]
    public void TryMatch_AnythingElseFallsThrough(string path)
    {
        Assert.False(OipInferFastPath.TryMatch(new PathString(path.Length == 0 ? null : path), out _, out _));
    }

    [Fact]
    public async Task ValidKey_AnsweredAsTheEndpointWould_AndCounted()
    {
        var before = await CountAsync("200");
        var input = OipFixture.Input(2, seed: 9);

        foreach (var path in new[] { "v2/models/mlp/infer", "V2/MODELS/mlp/versions/1/Infer" })
        {
            using var response = await fixture.Http.PostAsync(path, Body(input));
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            var answer = OipCodec.ReadResponse(await response.Content.ReadAsByteArrayAsync());
            Assert.Equal("mlp", answer.ModelName);
            OipRestTests.AssertClose(fixture.Expected(input), Assert.Single(answer.Outputs).ToArray<float>());
        }

        // The registry is the process's: tests running beside this one may count too.
        Assert.True(await CountAsync("200") >= before + 2);
    }

    [Fact]
    public async Task ErrorsOfTheHandler_AreCountedWithTheirStatus()
    {
        var before = await CountAsync("404");
        using var response = await fixture.Http.PostAsync("v2/models/nope/infer", Body(OipFixture.Input(1)));
        Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
        Assert.Contains("unknown model", await response.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        Assert.True(await CountAsync("404") >= before + 1);
    }

    [Theory]
    [InlineData(null, "")]
    [InlineData("Bearer emc_000000000000_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "not valid")]
    [InlineData("Bearer nonsense", "malformed")]
    [InlineData("Basic dXNlcjpwYXNz", "Bearer")]
    public async Task NoOrBadKey_FallsThroughToTheSame401(string? authorization, string reason)
    {
        using var http = new HttpClient { BaseAddress = fixture.Http.BaseAddress };
        using var request = new HttpRequestMessage(HttpMethod.Post, "v2/models/mlp/infer") { Content = Body(OipFixture.Input(1)) };
        if (authorization is not null)
        {
            request.Headers.TryAddWithoutValidation("Authorization", authorization);
        }

        using var response = await http.SendAsync(request);

        Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
        Assert.Contains(reason, await response.Content.ReadAsStringAsync(), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("POST", "/v2/models/mlp/infer", true, false)]
    [InlineData("POST", "/v2/models/mlp/versions/1/infer", true, false)]
    [InlineData("POST", "/v2/models/mlp/infer", false, true)]
    [InlineData("GET", "/v2/models/mlp/infer", true, true)]
    [InlineData("POST", "/v2/models/mlp/infer/", true, true)]
    [InlineData("POST", "/api/v1/models", true, true)]
    public async Task Middleware_ServesOnlyValidKeysOnTheInferRoutes(string method, string path, bool validKey, bool passedOn)
    {
        var next = false;
        var middleware = new OipInferFastPath(_ => { next = true; return Task.CompletedTask; }, fixture.Host.Services.GetRequiredService<AccountStore>());
        var context = new DefaultHttpContext { RequestServices = fixture.Host.Services };
        context.Request.Method = method;
        context.Request.Path = path;
        context.Request.Headers.Authorization = "Bearer " + (validKey ? fixture.OperatorKey : "emc_000000000000_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
        var body = Encoding.UTF8.GetBytes(await Body(OipFixture.Input(1)).ReadAsStringAsync());
        context.Request.Body = new MemoryStream(body);
        context.Request.ContentLength = body.Length;
        context.Request.ContentType = "application/json";
        context.Response.Body = new MemoryStream();

        await middleware.InvokeAsync(context);

        Assert.Equal(passedOn, next);
        if (!passedOn)
        {
            Assert.Equal(StatusCodes.Status200OK, context.Response.StatusCode);
            Assert.Equal("mlp", OipCodec.ReadResponse(((MemoryStream)context.Response.Body).ToArray()).ModelName);
        }
    }

    [Fact]
    public async Task TrailingSlash_StillServedByTheEndpoint()
    {
        var input = OipFixture.Input(1, seed: 3);
        using var response = await fixture.Http.PostAsync("v2/models/mlp/infer/", Body(input));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        OipRestTests.AssertClose(fixture.Expected(input), Assert.Single(OipCodec.ReadResponse(await response.Content.ReadAsByteArrayAsync()).Outputs).ToArray<float>());
    }

    private async Task<double> CountAsync(string code)
    {
        var text = await fixture.Http.GetStringAsync("metrics");
        var match = CountLine().Matches(text).FirstOrDefault(m => m.Groups["code"].Value == code);
        return match is null ? 0 : double.Parse(match.Groups["value"].Value, CultureInfo.InvariantCulture);
    }

    private static StringContent Body(float[] input) =>
        OipRestTests.Json($$"""{"inputs":[{"name":"input","shape":[{{input.Length / OipFixture.Features}},{{OipFixture.Features}}],"datatype":"FP32","data":[{{OipRestTests.Numbers(input)}}]}]}""");

    [GeneratedRegex("""^emc_inference_requests_total\{code="(?<code>\d+)"\} (?<value>[0-9.e+]+)$""", RegexOptions.Multiline)]
    private static partial Regex CountLine();
}
