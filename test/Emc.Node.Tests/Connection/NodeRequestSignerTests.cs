using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using Emc.Core.Identity;
using Emc.Node.Connection;
using Microsoft.Extensions.Time.Testing;

namespace Emc.Node.Tests.Connection;

public sealed class NodeRequestSignerTests
{
    private static readonly Uri Base = new("http://coordinator.test:7070/");

    [Fact]
    public async Task SignAsync_HeadersCarryAddressTimeBodyHashAndARecoverableSignature()
    {
        using var key = NodeKey.Create();
        var clock = new FakeTimeProvider(DateTimeOffset.FromUnixTimeMilliseconds(1_800_000_000_000));
        var signer = new NodeRequestSigner(key, clock);
        var body = Encoding.UTF8.GetBytes("an update");
        using var request = new HttpRequestMessage(HttpMethod.Put, new Uri(Base, "api/v1/blobs/abc?x=1")) { Content = new ByteArrayContent(body) };
        await signer.SignAsync(request, CancellationToken.None);

        Assert.Equal(key.Address.ToString(), Header(request, NodeRequestSignature.NodeHeader));
        Assert.Equal("1800000000000", Header(request, NodeRequestSignature.TimestampHeader));
        var hash = Convert.ToHexStringLower(SHA256.HashData(body));
        Assert.Equal(hash, Header(request, NodeRequestSignature.ContentHashHeader));
        var signature = Convert.FromHexString(Header(request, NodeRequestSignature.SignatureHeader)[2..]);
        var digest = Signatures.PersonalMessageDigest(NodeRequestSignature.Message("PUT", "/api/v1/blobs/abc?x=1", 1_800_000_000_000, hash));
        Assert.True(Signatures.TryRecoverAddress(digest, signature, out var signer2, out _));
        Assert.Equal(key.Address, signer2!.Value);

        // The body is still sent whole after it was hashed.
        Assert.Equal(body, await request.Content!.ReadAsByteArrayAsync());
    }

    [Fact]
    public async Task SignAsync_SameMillisecond_TimestampsStillDiffer()
    {
        using var key = NodeKey.Create();
        var signer = new NodeRequestSigner(key, new FakeTimeProvider(DateTimeOffset.UnixEpoch + TimeSpan.FromDays(20_000)));
        var stamps = new List<long>();
        for (var i = 0; i < 5; i++)
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, new Uri(Base, "api/v1/link/ping"));
            await signer.SignAsync(request, CancellationToken.None);
            stamps.Add(long.Parse(Header(request, NodeRequestSignature.TimestampHeader), CultureInfo.InvariantCulture));
        }

        Assert.Equal(5, stamps.Distinct().Count());
        Assert.Equal(stamps.Order(), stamps);
    }

    [Fact]
    public async Task SignAsync_KnownBodyHashOrNoBody_UsedAsIs()
    {
        using var key = NodeKey.Create();
        var signer = new NodeRequestSigner(key, TimeProvider.System);
        using var get = new HttpRequestMessage(HttpMethod.Get, new Uri(Base, "api/v1/blobs/abc"));
        await signer.SignAsync(get, CancellationToken.None);
        Assert.Equal(NodeRequestSignature.EmptyContentHash, Header(get, NodeRequestSignature.ContentHashHeader));

        using var put = new HttpRequestMessage(HttpMethod.Put, new Uri(Base, "api/v1/blobs/abc")) { Content = new StreamContent(new UnreadableStream()) };
        put.Options.Set(NodeRequestSigner.BodySha256, new string('f', 64));
        await signer.SignAsync(put, CancellationToken.None);
        Assert.Equal(new string('f', 64), Header(put, NodeRequestSignature.ContentHashHeader));
    }

    private static string Header(HttpRequestMessage request, string name) => request.Headers.GetValues(name).Single();

    /// <summary>A body that fails if read: the signer must not read a body whose hash it was given.</summary>
    private sealed class UnreadableStream : MemoryStream
    {
        public override int Read(byte[] buffer, int offset, int count) => throw new InvalidOperationException("read");

        public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) => throw new InvalidOperationException("read");

        public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) => throw new InvalidOperationException("read");
    }
}
