using System.Security.Cryptography;
using Emc.Core.Identity;

namespace Emc.Node.Connection;

/// <summary>
/// Signs every HTTP request the node makes to the coordinator (<see cref="NodeRequestSignature"/>): its
/// address, a timestamp, the SHA-256 of the body and an EIP-191 signature over method, path and query,
/// timestamp and body hash. Timestamps are unique per signer (one millisecond apart at least), so two
/// identical requests never carry the same signature, which the coordinator would refuse as a replay.
/// Share one signer between the node's clients.
/// </summary>
public sealed class NodeRequestSigner(NodeKey key, TimeProvider time)
{
    /// <summary>
    /// The body's SHA-256 when the caller knows it already (a content-addressed upload), so that a large
    /// body is not read twice.
    /// </summary>
    public static readonly HttpRequestOptionsKey<string> BodySha256 = new("emc.body-sha256");

    private long _last;

    public EthAddress Address => key.Address;

    /// <summary>Adds the signature headers to <paramref name="request"/>.</summary>
    public async Task SignAsync(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(request);
        var uri = request.RequestUri ?? throw new InvalidOperationException("A request to sign needs an absolute address.");
        string hash;
        if (request.Options.TryGetValue(BodySha256, out var known))
        {
            hash = known;
        }
        else if (request.Content is null)
        {
            hash = NodeRequestSignature.EmptyContentHash;
        }
        else
        {
            // Buffered once: the bytes hashed are the bytes then sent.
            hash = Convert.ToHexStringLower(SHA256.HashData(await request.Content.ReadAsByteArrayAsync(cancellationToken)));
        }

        var timestamp = NextTimestamp();
        var headers = request.Headers;
        headers.Remove(NodeRequestSignature.NodeHeader);
        headers.Remove(NodeRequestSignature.TimestampHeader);
        headers.Remove(NodeRequestSignature.ContentHashHeader);
        headers.Remove(NodeRequestSignature.SignatureHeader);
        headers.Add(NodeRequestSignature.NodeHeader, key.Address.ToString());
        headers.Add(NodeRequestSignature.TimestampHeader, timestamp.ToString(System.Globalization.CultureInfo.InvariantCulture));
        headers.Add(NodeRequestSignature.ContentHashHeader, hash);
        headers.Add(NodeRequestSignature.SignatureHeader, NodeRequestSignature.Sign(key, request.Method.Method, uri.PathAndQuery, timestamp, hash));
    }

    /// <summary>A handler that signs what passes through it, for an <see cref="HttpClient"/> of the node's.</summary>
    public DelegatingHandler CreateHandler(HttpMessageHandler? inner = null) =>
        new SigningHandler(this) { InnerHandler = inner ?? new SocketsHttpHandler() };

    private long NextTimestamp()
    {
        var now = time.GetUtcNow().ToUnixTimeMilliseconds();
        while (true)
        {
            var last = Interlocked.Read(ref _last);
            var next = Math.Max(now, last + 1);
            if (Interlocked.CompareExchange(ref _last, next, last) == last)
            {
                return next;
            }
        }
    }

    private sealed class SigningHandler(NodeRequestSigner signer) : DelegatingHandler
    {
        protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            await signer.SignAsync(request, cancellationToken);
            return await base.SendAsync(request, cancellationToken);
        }
    }
}
