using System.Globalization;
using System.Security.Cryptography;
using System.Text;

namespace Emc.Ledger;

/// <summary>
/// A digest of a request — the operation and every argument that shapes it — stored with the
/// transaction it posts. A later request under the same key is a repeat exactly when its digest is
/// the same. Digests cover requests, not the entries they produced: "refund everything left" or a
/// payment capped by a short escrow posts amounts that depend on the moment, and a repeat must still
/// match.
/// </summary>
internal sealed class RequestFingerprint
{
    private readonly StringBuilder _text = new();

    public RequestFingerprint(string operation) => Add(operation);

    // Length-prefixed fields, so no value can be read as two (a memo holding the separator).
    public RequestFingerprint Add(string? value)
    {
        if (value is null)
        {
            _text.Append("~;");
        }
        else
        {
            _text.Append(CultureInfo.InvariantCulture, $"{value.Length}:{value};");
        }

        return this;
    }

    public RequestFingerprint Add(long value) => Add(value.ToString(CultureInfo.InvariantCulture));

    public RequestFingerprint Add(object value) => Add(value.ToString());

    public RequestFingerprint Add(TransactionReferences references) =>
        Add(references.JobId)
            .Add(references.Round?.ToString(CultureInfo.InvariantCulture))
            .Add(references.RequestId)
            .Add(references.Memo);

    /// <summary>Lower-case hex SHA-256 of the fields.</summary>
    public string Digest() => Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(_text.ToString())));
}
