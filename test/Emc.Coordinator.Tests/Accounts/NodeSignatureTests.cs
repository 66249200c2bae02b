using System.Net;
using System.Net.Http.Headers;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Emc.Coordinator.Tests.Infrastructure;
using Emc.Core.Identity;
using Emc.Node.Connection;
using Microsoft.Extensions.Time.Testing;

namespace Emc.Coordinator.Tests.Accounts;

/// <summary>
/// Node-facing HTTP calls (blobs, link tests, info) take a node's signed request instead of an API key:
/// a good one from a registered node is served; an unsigned, forged, stale, replayed one, or one from a
/// node the registry does not know, is a 401 and changes nothing.
/// </summary>
public sealed class NodeSignatureTests : IAsyncLifetime
{
    private TestCoordinator _coordinator = null!;
    private NodeKey _node = null!;
    private NodeConnection _session = null!;
    private string _blob = "";
    private byte[] _content = [];

    public async Task InitializeAsync()
    {
        _coordinator = await TestCoordinator.StartAsync();
        _node = NodeKey.Create();
        _session = await NodeConnection.OpenAsync(_coordinator.Channel, _node, Registrations.Valid("signer"), "test", CancellationToken.None);
        _content = Encoding.UTF8.GetBytes("weights of round 7, as the coordinator published them");
        var path = Path.Combine(_coordinator.DataDirectory, "published.bin");
        await File.WriteAllBytesAsync(path, _content);
        _blob = await _coordinator.Api.UploadBlobAsync(path, CancellationToken.None);
    }

    public async Task DisposeAsync()
    {
        await _session.DisposeAsync();
        _node.Dispose();
        await _coordinator.DisposeAsync();
    }

    [Fact]
    public async Task SignedByARegisteredNode_BlobsServedWithRangesAndUploadsKept()
    {
        using var http = Signed(new NodeRequestSigner(_node, TimeProvider.System));
        Assert.Equal(_content, await http.GetByteArrayAsync($"api/v1/blobs/{_blob}"));

        using var range = new HttpRequestMessage(HttpMethod.Get, $"api/v1/blobs/{_blob}") { Headers = { Range = new RangeHeaderValue(8, null) } };
        using (var partial = await http.SendAsync(range))
        {
            Assert.Equal(HttpStatusCode.PartialContent, partial.StatusCode);
            Assert.Equal(_content[8..], await partial.Content.ReadAsByteArrayAsync());
        }

        using (var head = await http.SendAsync(new HttpRequestMessage(HttpMethod.Head, $"api/v1/blobs/{_blob}")))
        {
            Assert.Equal(HttpStatusCode.OK, head.StatusCode);
        }

        var update = Encoding.UTF8.GetBytes("a pseudo-gradient");
        var hash = Hash(update);
        using (var put = await http.PutAsync($"api/v1/blobs/{hash}", new ByteArrayContent(update)))
        {
            Assert.Equal(HttpStatusCode.OK, put.StatusCode);
        }

        Assert.Equal(update, await _coordinator.Api.GetBlobAsync(hash, CancellationToken.None));

        // The link test works as well; a node's signature is no key to the users' API.
        using (var ping = await http.GetAsync("api/v1/link/ping"))
        {
            Assert.Equal(HttpStatusCode.NoContent, ping.StatusCode);
        }

        using var jobs = await http.GetAsync("api/v1/jobs");
        Assert.Equal(HttpStatusCode.Forbidden, jobs.StatusCode);
    }

    [Fact]
    public async Task Unsigned_Refused()
    {
        using var plain = new HttpClient { BaseAddress = _coordinator.Host.Endpoints.ApiUrl };
        await RefusedAsync(plain, new HttpRequestMessage(HttpMethod.Get, $"api/v1/blobs/{_blob}"), "needs an API key");
        var partial = new HttpRequestMessage(HttpMethod.Get, $"api/v1/blobs/{_blob}");
        partial.Headers.Add(NodeRequestSignature.NodeHeader, _node.Address.ToString());
        await RefusedAsync(plain, partial, "needs the headers");
    }

    [Fact]
    public async Task SignatureForAnotherRequestOrTampered_Refused()
    {
        var signer = new NodeRequestSigner(_node, TimeProvider.System);

        // Signed for one blob, sent for another.
        var moved = new HttpRequestMessage(HttpMethod.Get, new Uri(_coordinator.Host.Endpoints.ApiUrl, "api/v1/blobs/" + new string('0', 64)));
        await signer.SignAsync(moved, CancellationToken.None);
        moved.RequestUri = new Uri(_coordinator.Host.Endpoints.ApiUrl, $"api/v1/blobs/{_blob}");
        await RefusedAsync(Plain(), moved, "not by " + _node.Address);

        // One byte of the signature changed.
        var tampered = new HttpRequestMessage(HttpMethod.Get, new Uri(_coordinator.Host.Endpoints.ApiUrl, $"api/v1/blobs/{_blob}"));
        await signer.SignAsync(tampered, CancellationToken.None);
        var signature = tampered.Headers.GetValues(NodeRequestSignature.SignatureHeader).Single();
        tampered.Headers.Remove(NodeRequestSignature.SignatureHeader);
        tampered.Headers.Add(NodeRequestSignature.SignatureHeader, signature[..10] + (signature[10] == 'a' ? 'b' : 'a') + signature[11..]);
        await RefusedAsync(Plain(), tampered, null);
    }

    [Fact]
    public async Task Stale_Refused()
    {
        var past = new FakeTimeProvider(DateTimeOffset.UtcNow - TimeSpan.FromMinutes(10));
        using var http = Signed(new NodeRequestSigner(_node, past));
        await RefusedAsync(http, new HttpRequestMessage(HttpMethod.Get, $"api/v1/blobs/{_blob}"), "apart");
        var future = new FakeTimeProvider(DateTimeOffset.UtcNow + TimeSpan.FromMinutes(10));
        using var ahead = Signed(new NodeRequestSigner(_node, future));
        await RefusedAsync(ahead, new HttpRequestMessage(HttpMethod.Get, $"api/v1/blobs/{_blob}"), "apart");
    }

    [Fact]
    public async Task Replayed_Refused()
    {
        var signer = new NodeRequestSigner(_node, TimeProvider.System);
        var original = new HttpRequestMessage(HttpMethod.Get, new Uri(_coordinator.Host.Endpoints.ApiUrl, $"api/v1/blobs/{_blob}"));
        await signer.SignAsync(original, CancellationToken.None);
        var copy = new HttpRequestMessage(HttpMethod.Get, original.RequestUri);
        foreach (var header in original.Headers)
        {
            copy.Headers.Add(header.Key, header.Value);
        }

        using var plain = Plain();
        using (var first = await plain.SendAsync(original))
        {
            Assert.Equal(HttpStatusCode.OK, first.StatusCode);
        }

        await RefusedAsync(plain, copy, "cannot be replayed");
    }

    [Fact]
    public async Task UnknownNode_RefusedButMayMakeFirstContact()
    {
        using var stranger = NodeKey.Create();
        using var http = Signed(new NodeRequestSigner(stranger, TimeProvider.System));
        await RefusedAsync(http, new HttpRequestMessage(HttpMethod.Get, $"api/v1/blobs/{_blob}"), "is not registered");
        var update = Encoding.UTF8.GetBytes("not from a node we know");
        await RefusedAsync(http, new HttpRequestMessage(HttpMethod.Put, $"api/v1/blobs/{Hash(update)}") { Content = new ByteArrayContent(update) }, "is not registered");

        // What a node needs before it can register: where the gateway is, how fast the link is.
        using var info = JsonDocument.Parse(await http.GetStringAsync("api/v1/info"));
        Assert.StartsWith("http://", info.RootElement.GetProperty("grpcUrl").GetString(), StringComparison.Ordinal);
        using var ping = await http.GetAsync("api/v1/link/ping");
        Assert.Equal(HttpStatusCode.NoContent, ping.StatusCode);
    }

    [Fact]
    public async Task BodyOtherThanSigned_RefusedAndNotStored()
    {
        var signer = new NodeRequestSigner(_node, TimeProvider.System);
        var signed = Encoding.UTF8.GetBytes("the update the node signed");
        var swapped = Encoding.UTF8.GetBytes("an update someone put in its place");
        var request = new HttpRequestMessage(HttpMethod.Put, new Uri(_coordinator.Host.Endpoints.ApiUrl, $"api/v1/blobs/{Hash(swapped)}")) { Content = new ByteArrayContent(signed) };
        await signer.SignAsync(request, CancellationToken.None);
        request.Content = new ByteArrayContent(swapped);
        await RefusedAsync(Plain(), request, "does not hash");
        Assert.False(File.Exists(Path.Combine(_coordinator.DataDirectory, "blobs", Hash(swapped))));
    }

    private async Task RefusedAsync(HttpClient client, HttpRequestMessage request, string? why)
    {
        var before = Blobs();
        using (request)
        using (var response = await client.SendAsync(request))
        {
            var body = await response.Content.ReadAsStringAsync();
            Assert.True(response.StatusCode == HttpStatusCode.Unauthorized, $"expected 401, got {(int)response.StatusCode}: {body}");
            using var problem = JsonDocument.Parse(body);
            var detail = problem.RootElement.GetProperty("detail").GetString()!;
            if (why is not null)
            {
                Assert.Contains(why, detail, StringComparison.Ordinal);
            }
        }

        Assert.Equal(before, Blobs());
    }

    private HttpClient Signed(NodeRequestSigner signer) =>
        new(signer.CreateHandler()) { BaseAddress = _coordinator.Host.Endpoints.ApiUrl };

    private HttpClient Plain() => new() { BaseAddress = _coordinator.Host.Endpoints.ApiUrl };

    private string Blobs() => string.Join(",", Directory.EnumerateFiles(Path.Combine(_coordinator.DataDirectory, "blobs"), "*", SearchOption.AllDirectories).Select(Path.GetFileName).Order(StringComparer.Ordinal));

    private static string Hash(byte[] bytes) => Convert.ToHexStringLower(SHA256.HashData(bytes));
}
