using System.Net;
using System.Text.Json;
using Emc.Coordinator.Tests.Infrastructure;

namespace Emc.Coordinator.Tests.Api;

[Collection(CoordinatorCollection.Name)]
public sealed class RestApiTests(CoordinatorFixture fixture)
{
    private HttpClient Http => fixture.Coordinator.Http;

    [Theory]
    [InlineData("api/v1/nodes/not-an-address", HttpStatusCode.BadRequest, "not a node id")]
    [InlineData("api/v1/nodes/0x0000000000000000000000000000000000000001", HttpStatusCode.NotFound, "No node")]
    [InlineData("api/v1/nodes?status=sleeping", HttpStatusCode.BadRequest, "not a status")]
    [InlineData("api/v1/link/download?bytes=0", HttpStatusCode.BadRequest, "bytes must be")]
    [InlineData("api/v1/link/download?bytes=999999999", HttpStatusCode.BadRequest, "bytes must be")]
    [InlineData("api/v1/link/download?bytes=lots", HttpStatusCode.BadRequest, null)]
    [InlineData("api/v1/nope", HttpStatusCode.NotFound, null)]
    public async Task Get_BadInput_ProblemDetailsWith4xx(string path, HttpStatusCode expected, string? detailMentions)
    {
        using var response = await Http.GetAsync(path);

        Assert.Equal(expected, response.StatusCode);
        if (detailMentions is not null)
        {
            Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
            using var problem = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
            Assert.Contains(detailMentions, problem.RootElement.GetProperty("detail").GetString(), StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task Health_Ready_AndMetricsInPrometheusFormat()
    {
        Assert.Equal("ok", await Http.GetStringAsync("healthz"));
        Assert.Equal("ready", await Http.GetStringAsync("readyz"));
        var metrics = await Http.GetStringAsync("metrics");
        Assert.Contains("# TYPE emc_heartbeats_total counter", metrics, StringComparison.Ordinal);
        Assert.Contains("emc_nodes{status=\"connected\"}", metrics, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Info_GivesTheGatewayAddressAndCoordinatorId()
    {
        using var info = JsonDocument.Parse(await Http.GetStringAsync("api/v1/info"));
        Assert.StartsWith("emc-", info.RootElement.GetProperty("coordinatorId").GetString(), StringComparison.Ordinal);
        Assert.Equal(fixture.Coordinator.Host.Endpoints.GrpcUrl.ToString(), info.RootElement.GetProperty("grpcUrl").GetString());
    }

    [Fact]
    public async Task Link_DownloadAndUpload_MoveTheBytesAsked()
    {
        var bytes = await Http.GetByteArrayAsync("api/v1/link/download?bytes=100000");
        Assert.Equal(100_000, bytes.Length);

        using var upload = await Http.PostAsync("api/v1/link/upload", new ByteArrayContent(new byte[123_456]));
        upload.EnsureSuccessStatusCode();
        using var body = JsonDocument.Parse(await upload.Content.ReadAsStringAsync());
        Assert.Equal(123_456, body.RootElement.GetProperty("bytes").GetInt64());
    }
}
