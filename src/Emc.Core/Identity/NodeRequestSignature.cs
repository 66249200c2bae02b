using System.Globalization;
using System.Text;

namespace Emc.Core.Identity;

/// <summary>
/// How a node signs its HTTP requests to the coordinator (blob downloads and uploads, link tests): the
/// request carries the node's address, a timestamp, the SHA-256 of its body and an EIP-191 signature
/// over <see cref="Message"/>. The coordinator recovers the signer, checks it is the address named, that
/// the timestamp is recent, that the signature was not seen before, and that the body hashes as signed.
/// </summary>
public static class NodeRequestSignature
{
    /// <summary>The node's address (0x + 40 hex digits).</summary>
    public const string NodeHeader = "X-Emc-Node";

    /// <summary>When the node signed, in Unix milliseconds.</summary>
    public const string TimestampHeader = "X-Emc-Timestamp";

    /// <summary>SHA-256 of the request body as 64 lowercase hex digits (of nothing for a request without one).</summary>
    public const string ContentHashHeader = "X-Emc-Content-Sha256";

    /// <summary>The 65-byte signature (r, s, v) as 0x + 130 hex digits.</summary>
    public const string SignatureHeader = "X-Emc-Signature";

    /// <summary>SHA-256 of no bytes: the content hash of a request without a body.</summary>
    public const string EmptyContentHash = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    /// <summary>
    /// The signed text: a fixed first line (so the signature means nothing else), then the method, the
    /// path and query as sent, the timestamp and the body hash, one per line.
    /// </summary>
    public static byte[] Message(string method, string pathAndQuery, long timestampUnixMs, string contentHash) =>
        Encoding.UTF8.GetBytes(string.Create(
            CultureInfo.InvariantCulture,
            $"emc-node-request\n{method.ToUpperInvariant()}\n{pathAndQuery}\n{timestampUnixMs}\n{contentHash}"));

    /// <summary>Signs a request with <paramref name="key"/>; returns the signature as 0x-hex.</summary>
    public static string Sign(NodeKey key, string method, string pathAndQuery, long timestampUnixMs, string contentHash)
    {
        ArgumentNullException.ThrowIfNull(key);
        return "0x" + Convert.ToHexStringLower(key.SignMessage(Message(method, pathAndQuery, timestampUnixMs, contentHash)));
    }
}
