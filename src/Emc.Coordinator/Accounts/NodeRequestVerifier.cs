using System.Collections.Concurrent;
using System.Globalization;
using System.Security.Cryptography;
using Emc.Coordinator.Persistence;
using Emc.Core.Identity;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.Options;

namespace Emc.Coordinator.Accounts;

/// <summary>
/// Checks a node's signed HTTP request (<see cref="NodeRequestSignature"/>): the headers are well formed,
/// the timestamp is within <see cref="AccessOptions.NodeSignatureWindow"/> of this clock, the signature
/// recovers to the address named, the signature was not seen before within the window, and, unless the
/// endpoint takes first contact, the registry knows the node. The body is checked against its signed hash
/// as the endpoint reads it (<see cref="SignedBodyStream"/>).
/// </summary>
public sealed class NodeRequestVerifier(NodeStore nodes, TimeProvider time, IOptions<AccessOptions> options)
{
    private static readonly System.Buffers.SearchValues<char> HexDigits = System.Buffers.SearchValues.Create("0123456789abcdefABCDEF");

    private readonly ConcurrentDictionary<string, long> _seen = new(StringComparer.Ordinal);
    private long _nextPruneUnixMs;

    /// <summary>Whether the request carries a node signature at all (then it is judged as a node's).</summary>
    public static bool IsSigned(HttpRequest request) => request.Headers.ContainsKey(NodeRequestSignature.NodeHeader);

    /// <summary>The node, or why the request is refused.</summary>
    public async Task<(NodeCaller? Node, string? Error)> VerifyAsync(HttpContext context, bool allowFirstContact, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(context);
        var headers = context.Request.Headers;
        var nodeText = headers[NodeRequestSignature.NodeHeader].ToString();
        var timestampText = headers[NodeRequestSignature.TimestampHeader].ToString();
        var contentHash = headers[NodeRequestSignature.ContentHashHeader].ToString();
        var signatureText = headers[NodeRequestSignature.SignatureHeader].ToString();
        if (nodeText.Length == 0 || timestampText.Length == 0 || contentHash.Length == 0 || signatureText.Length == 0)
        {
            return Refuse($"a signed node request needs the headers {NodeRequestSignature.NodeHeader}, {NodeRequestSignature.TimestampHeader}, {NodeRequestSignature.ContentHashHeader} and {NodeRequestSignature.SignatureHeader}");
        }

        if (!EthAddress.TryParse(nodeText, out var claimed))
        {
            return Refuse($"{NodeRequestSignature.NodeHeader} is not a node address (0x and 40 hex digits)");
        }

        if (!long.TryParse(timestampText, NumberStyles.None, CultureInfo.InvariantCulture, out var timestamp))
        {
            return Refuse($"{NodeRequestSignature.TimestampHeader} is not a time in Unix milliseconds");
        }

        if (!IsSha256(contentHash))
        {
            return Refuse($"{NodeRequestSignature.ContentHashHeader} is not a SHA-256 in lowercase hex");
        }

        if (!TryParseSignature(signatureText, out var signature))
        {
            return Refuse($"{NodeRequestSignature.SignatureHeader} is not a 65-byte signature in 0x-hex");
        }

        var now = time.GetUtcNow().ToUnixTimeMilliseconds();
        var window = (long)options.Value.NodeSignatureWindow.TotalMilliseconds;
        if (Math.Abs(now - timestamp) > window)
        {
            return Refuse($"the request was signed at {timestamp} and this coordinator's clock says {now}: more than {window / 1000} s apart (stale, or the node's clock is wrong)");
        }

        var target = context.Features.Get<IHttpRequestFeature>()?.RawTarget;
        if (string.IsNullOrEmpty(target))
        {
            target = context.Request.PathBase + context.Request.Path + context.Request.QueryString;
        }

        var message = NodeRequestSignature.Message(context.Request.Method, target, timestamp, contentHash);
        if (!Signatures.TryRecoverAddress(Signatures.PersonalMessageDigest(message), signature, out var signer, out var error))
        {
            return Refuse($"the signature is invalid: {error}");
        }

        if (signer.Value != claimed.Value)
        {
            return Refuse($"the request is signed by {signer}, not by {claimed}");
        }

        Prune(now, window);
        if (!_seen.TryAdd(signatureText.ToLowerInvariant(), timestamp + window))
        {
            return Refuse("this signature was used before: a signed request cannot be replayed");
        }

        var address = claimed.Value.ToString();
        var registered = await nodes.ExistsAsync(address, cancellationToken);
        if (!registered && !allowFirstContact)
        {
            return Refuse($"node {address} is not registered: connect it to the coordinator first");
        }

        context.Request.Body = new SignedBodyStream(context.Request.Body, contentHash);
        return (new NodeCaller(address, registered), null);
    }

    private static (NodeCaller?, string?) Refuse(string error) => (null, error);

    private void Prune(long now, long window)
    {
        var next = Interlocked.Read(ref _nextPruneUnixMs);
        if (now < next || Interlocked.CompareExchange(ref _nextPruneUnixMs, now + Math.Max(1000, window / 4), next) != next)
        {
            return;
        }

        foreach (var (signature, expires) in _seen)
        {
            if (expires < now)
            {
                _seen.TryRemove(signature, out _);
            }
        }
    }

    private static bool IsSha256(string text) =>
        text.Length == 64 && text.All(c => char.IsAsciiDigit(c) || c is >= 'a' and <= 'f');

    private static bool TryParseSignature(string text, out byte[] signature)
    {
        signature = [];
        if (text.Length != 132 || !text.StartsWith("0x", StringComparison.OrdinalIgnoreCase) || text.AsSpan(2).ContainsAnyExcept(HexDigits))
        {
            return false;
        }

        signature = Convert.FromHexString(text.AsSpan(2));
        return true;
    }
}

/// <summary>
/// A request body that hashes what the endpoint reads and, at its end, refuses it (401) unless it
/// hashed to what the node signed. Endpoints that act on a body do so only after reading all of it
/// (the blob store keeps an upload only once its own hash matches), so a forged body changes nothing.
/// </summary>
internal sealed class SignedBodyStream(Stream inner, string expectedHash) : Stream
{
    private readonly IncrementalHash _hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
    private bool _checked;

    public override bool CanRead => true;
    public override bool CanSeek => false;
    public override bool CanWrite => false;
    public override long Length => inner.Length;

    public override long Position
    {
        get => inner.Position;
        set => throw new NotSupportedException();
    }

    public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

    public override int Read(Span<byte> buffer)
    {
        var read = inner.Read(buffer);
        Observe(buffer[..read], buffer.Length);
        return read;
    }

    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        var read = await inner.ReadAsync(buffer, cancellationToken);
        Observe(buffer.Span[..read], buffer.Length);
        return read;
    }

    public override void Flush()
    {
    }

    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

    public override void SetLength(long value) => throw new NotSupportedException();

    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            _hash.Dispose();
        }

        base.Dispose(disposing);
    }

    private void Observe(ReadOnlySpan<byte> data, int requested)
    {
        if (data.Length > 0)
        {
            _hash.AppendData(data);
            return;
        }

        // Zero bytes for a read that asked for some: the end of the body.
        if (requested > 0 && !_checked)
        {
            _checked = true;
            if (Convert.ToHexStringLower(_hash.GetHashAndReset()) != expectedHash)
            {
                throw new BadHttpRequestException(
                    $"the body does not hash to the {NodeRequestSignature.ContentHashHeader} it was signed with",
                    StatusCodes.Status401Unauthorized);
            }
        }
    }
}
