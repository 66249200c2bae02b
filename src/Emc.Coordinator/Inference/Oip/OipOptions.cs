using System.ComponentModel.DataAnnotations;
using Emc.Core.Inference;
using Microsoft.Extensions.Options;

namespace Emc.Coordinator.Inference.Oip;

/// <summary>How the Open Inference Protocol front ends (REST and gRPC) accept requests.</summary>
public sealed class OipOptions
{
    /// <summary>Bytes allowed in one body on top of <see cref="OipLimits.MaxTotalBytes"/>, for the JSON around the tensor data.</summary>
    public const long JsonAllowance = 1L << 20;

    /// <summary>
    /// Bounds on the tensors of one request (parsed bodies and gRPC messages alike). Default
    /// <see cref="OipLimits.Default"/>: 64 MiB of tensor data, 16 Mi elements, 1024 tensors, rank 32.
    /// </summary>
    [Required]
    public OipLimits Limits { get; set; } = OipLimits.Default;

    /// <summary>
    /// The largest request body (REST) or message (gRPC) read at all; larger ones get 413 /
    /// ResourceExhausted before they are read. Default 0: <see cref="OipLimits.MaxTotalBytes"/> of
    /// <see cref="Limits"/> plus <see cref="JsonAllowance"/> (65 MiB), which fits a binary-extension body
    /// at the tensor limit; JSON text is bounded by the same number.
    /// </summary>
    [Range(0, int.MaxValue)]
    public long MaxRequestBytes { get; set; }

    /// <summary>How long a request may run when it does not say. Default 30 s.</summary>
    public TimeSpan DefaultTimeout { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>
    /// The longest a request may ask for with Triton's <c>timeout</c> parameter (microseconds) or a gRPC
    /// deadline; longer ones are cut to this. Default 5 min.
    /// </summary>
    public TimeSpan MaxTimeout { get; set; } = TimeSpan.FromMinutes(5);

    /// <summary>The name <c>GET /v2</c> reports. Default "emc".</summary>
    [Required]
    public string ServerName { get; set; } = "emc";

    /// <summary>The request size limit in effect: <see cref="MaxRequestBytes"/>, or its default when 0.</summary>
    public long EffectiveMaxRequestBytes =>
        MaxRequestBytes > 0 ? MaxRequestBytes : Math.Min(Limits.MaxTotalBytes + JsonAllowance, Array.MaxLength);

    /// <summary>
    /// The deadline of a request that arrived at <paramref name="now"/>: <see cref="DefaultTimeout"/>, or
    /// the request's <c>timeout</c> parameter in microseconds (Triton's schedule policy; 0 means the
    /// default), at most <see cref="MaxTimeout"/>. A <c>timeout</c> that is not a non-negative integer is a 400.
    /// </summary>
    public DateTimeOffset DeadlineFor(InferRequest request, DateTimeOffset now)
    {
        ArgumentNullException.ThrowIfNull(request);
        var timeout = DefaultTimeout;
        if (request.Parameters.TryGetValue("timeout", out var parameter))
        {
            if (!parameter.TryGetInt64(out var micros) || micros < 0)
            {
                throw new OipException(OipErrorKind.BadRequest, $"parameter 'timeout' must be a non-negative integer of microseconds, not {parameter}");
            }

            if (micros > 0)
            {
                timeout = micros >= MaxTimeout.Ticks / TimeSpan.TicksPerMicrosecond ? MaxTimeout : TimeSpan.FromMicroseconds(micros);
            }
        }

        return now + (timeout < MaxTimeout ? timeout : MaxTimeout);
    }

    internal void Validate()
    {
        if (DefaultTimeout <= TimeSpan.Zero || MaxTimeout <= TimeSpan.Zero)
        {
            throw new OptionsValidationException(nameof(OipOptions), typeof(OipOptions), ["DefaultTimeout and MaxTimeout must be positive."]);
        }
    }
}
