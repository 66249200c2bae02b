namespace Emc.Core.Inference;

/// <summary>What kind of failure an <see cref="OipException"/> is; the value is the HTTP status to answer with.</summary>
public enum OipErrorKind
{
    /// <summary>400: the request is malformed or does not fit the model.</summary>
    BadRequest = 400,

    /// <summary>402: the deployment's budget cannot pay for the request.</summary>
    PaymentRequired = 402,

    /// <summary>403: the model is another account's.</summary>
    Forbidden = 403,

    /// <summary>404: no such model (or version).</summary>
    NotFound = 404,

    /// <summary>413: the request's tensors exceed the configured limits.</summary>
    PayloadTooLarge = 413,

    /// <summary>503: the server or model is not ready, or is overloaded.</summary>
    Unavailable = 503,
}

/// <summary>
/// A failure to report to an Open Inference Protocol client as <c>{"error": Message}</c> with the
/// HTTP status <see cref="StatusCode"/> (or the matching gRPC status). Messages are written for the
/// client: they name the tensor and the problem, such as "input 'x': value 300 at index 2 is out of range for UINT8".
/// </summary>
public sealed class OipException : Exception
{
    public OipException()
    {
    }

    public OipException(string message)
        : base(message)
    {
    }

    public OipException(string message, Exception innerException)
        : base(message, innerException)
    {
    }

    public OipException(OipErrorKind kind, string message)
        : base(message)
    {
        Kind = kind;
    }

    public OipException(OipErrorKind kind, string message, Exception innerException)
        : base(message, innerException)
    {
        Kind = kind;
    }

    /// <summary>The kind of failure; <see cref="OipErrorKind.BadRequest"/> unless a constructor said otherwise.</summary>
    public OipErrorKind Kind { get; } = OipErrorKind.BadRequest;

    /// <summary>The HTTP status code to answer with.</summary>
    public int StatusCode => (int)Kind;

    /// <summary>A 404 for a model the server does not serve; <paramref name="version"/> null or empty means "any version".</summary>
    public static OipException UnknownModel(string name, string? version = null) =>
        new(OipErrorKind.NotFound, string.IsNullOrEmpty(version) ? $"unknown model '{name}'" : $"unknown model '{name}' version '{version}'");

    /// <summary>A 503 for a model (or server) that cannot take the request now.</summary>
    public static OipException Unavailable(string message) => new(OipErrorKind.Unavailable, message);

    internal static OipException Bad(string message) => new(OipErrorKind.BadRequest, message);

    internal static OipException TooLarge(string message) => new(OipErrorKind.PayloadTooLarge, message);
}
