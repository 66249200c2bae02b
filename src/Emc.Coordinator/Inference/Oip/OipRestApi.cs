using System.Buffers;
using System.Diagnostics;
using System.Globalization;
using Emc.Coordinator.Accounts;
using Emc.Coordinator.Hosting;
using Emc.Coordinator.Observability;
using Emc.Core.Inference;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Emc.Coordinator.Inference.Oip;

/// <summary>
/// The Open Inference Protocol v2 over REST, a thin adapter over <see cref="IInferenceBackend"/>:
/// <c>GET /v2</c>, <c>/v2/health/live</c>, <c>/v2/health/ready</c>,
/// <c>GET /v2/models/{name}[/versions/{version}]</c>, <c>.../ready</c> and <c>POST .../infer</c>.
/// </summary>
/// <remarks>
/// Every failure is the protocol's <c>{"error": "..."}</c> with the status of its
/// <see cref="OipException"/>: 400 malformed or unfit input, 404 unknown model, 413 too large, 503
/// unavailable, overloaded or past its deadline. Readiness follows the specification: 200 means true and
/// a 4xx false, so a model that exists but is not ready (and a server that is starting or stopping)
/// answers 400 with <c>"ready": false</c> in the body; an unknown model is 404. Handlers are plain
/// <see cref="RequestDelegate"/>s with no reflection-based binding or JSON serialiser on the way: the
/// body is read once into a pooled array that the parsed tensors point into, and the answer is
/// serialised once into a pooled array and written with its length.
/// </remarks>
internal static class OipRestApi
{
    private const string JsonContentType = "application/json";
    private const string BinaryContentType = "application/octet-stream";

    private static readonly byte[] LiveBody = "{\"live\":true}"u8.ToArray();
    private static readonly byte[] ReadyBody = "{\"ready\":true}"u8.ToArray();
    private static readonly byte[] NotReadyBody = "{\"ready\":false}"u8.ToArray();

    public static IEndpointRouteBuilder MapOipRestApi(this IEndpointRouteBuilder app)
    {
        var options = app.ServiceProvider.GetRequiredService<IOptions<OipOptions>>().Value;
        var serverMetadata = ServerMetadataBody(options);
        var v2 = app.MapGroup("/v2");
        v2.MapGet(string.Empty, context => WriteAsync(context, StatusCodes.Status200OK, serverMetadata));
        // Health is open, as /healthz and /readyz are: probes and load balancers carry no keys.
        v2.MapGet("/health/live", context => WriteAsync(context, StatusCodes.Status200OK, LiveBody)).AllowAnonymous();
        v2.MapGet("/health/ready", context =>
            context.RequestServices.GetRequiredService<ReadinessState>().IsReady
                ? WriteAsync(context, StatusCodes.Status200OK, ReadyBody)
                : WriteAsync(context, StatusCodes.Status400BadRequest, NotReadyBody))
            .AllowAnonymous();
        v2.MapGet("/models/{name}", ModelMetadataAsync);
        v2.MapGet("/models/{name}/versions/{version}", ModelMetadataAsync);
        v2.MapGet("/models/{name}/ready", ModelReadyAsync);
        v2.MapGet("/models/{name}/versions/{version}/ready", ModelReadyAsync);
        v2.MapPost("/models/{name}/infer", InferAsync);
        v2.MapPost("/models/{name}/versions/{version}/infer", InferAsync);
        return app;
    }

    /// <summary>The server metadata body of <paramref name="options"/>.</summary>
    internal static ServerMetadata ServerMetadata(OipOptions options) => new()
    {
        Name = options.ServerName,
        Version = typeof(OipRestApi).Assembly.GetName().Version?.ToString() ?? "0.0.0",
        Extensions = [OipCodec.BinaryTensorDataExtension],
    };

    private static byte[] ServerMetadataBody(OipOptions options)
    {
        var buffer = new ArrayBufferWriter<byte>();
        OipCodec.WriteServerMetadata(ServerMetadata(options), buffer);
        return buffer.WrittenSpan.ToArray();
    }

    private static async Task ModelMetadataAsync(HttpContext context)
    {
        var (name, version) = Route(context);
        try
        {
            await EnsureAccessAsync(context, name, version);
            var metadata = await Backend(context).GetMetadataAsync(name, version, context.RequestAborted)
                ?? throw OipException.UnknownModel(name, version);
            using var buffer = new PooledBufferWriter(1024);
            OipCodec.WriteModelMetadata(metadata, buffer);
            await WriteAsync(context, StatusCodes.Status200OK, buffer.WrittenMemory);
        }
        catch (Exception ex) when (IsReportable(ex, context))
        {
            await FailAsync(context, name, ex);
        }
    }

    private static async Task ModelReadyAsync(HttpContext context)
    {
        var (name, version) = Route(context);
        try
        {
            await EnsureAccessAsync(context, name, version);
            var backend = Backend(context);
            if (await backend.GetMetadataAsync(name, version, context.RequestAborted) is null)
            {
                throw OipException.UnknownModel(name, version);
            }

            var ready = await backend.IsReadyAsync(name, version, context.RequestAborted);
            using var buffer = new PooledBufferWriter(256);
            WriteModelReady(buffer, name, ready);
            await WriteAsync(context, ready ? StatusCodes.Status200OK : StatusCodes.Status400BadRequest, buffer.WrittenMemory);
        }
        catch (Exception ex) when (IsReportable(ex, context))
        {
            await FailAsync(context, name, ex);
        }
    }

    /// <summary>The infer handler, of the mapped endpoints and of <see cref="OipInferFastPath"/>.</summary>
    internal static async Task InferAsync(HttpContext context)
    {
        var started = Stopwatch.GetTimestamp();
        var (name, version) = Route(context);
        var services = context.RequestServices;
        var options = services.GetRequiredService<IOptions<OipOptions>>().Value;
        var cancellationToken = context.RequestAborted;
        byte[]? body = null;
        var backendFailed = false;
        try
        {
            await EnsureAccessAsync(context, name, version);
            var headerLength = OipCodec.ParseHeaderLength(context.Request.Headers[OipCodec.HeaderLengthName]);
            int length;
            (body, length) = await ReadBodyAsync(context, options.EffectiveMaxRequestBytes, cancellationToken);
            var request = OipCodec.ReadRequest(body.AsMemory(0, length), headerLength, options.Limits);
            var deadline = options.DeadlineFor(request, services.GetRequiredService<TimeProvider>().GetUtcNow());

            InferResponse response;
            try
            {
                response = await Backend(context).InferAsync(name, version, request, deadline, cancellationToken);
            }
            catch
            {
                backendFailed = true;
                throw;
            }

            await WriteResponseAsync(context, request, response, cancellationToken);
        }
        catch (Exception ex) when (IsReportable(ex, context))
        {
            await FailAsync(context, name, ex);
        }
        finally
        {
            // A backend that gave up (deadline, cancellation) may still be reading the request's tensors,
            // which point into the body: only a body it is known to be done with goes back to the pool.
            if (body is not null && !backendFailed)
            {
                ArrayPool<byte>.Shared.Return(body);
            }

            InferenceMetrics.Answered(context.Response.StatusCode, Stopwatch.GetElapsedTime(started));
        }
    }

    private static async Task WriteResponseAsync(HttpContext context, InferRequest request, InferResponse response, CancellationToken cancellationToken)
    {
        if (!string.Equals(response.Id, request.Id, StringComparison.Ordinal))
        {
            response = new InferResponse
            {
                ModelName = response.ModelName,
                ModelVersion = response.ModelVersion,
                Id = request.Id,
                Parameters = response.Parameters,
                Outputs = response.Outputs,
            };
        }

        using var buffer = new PooledBufferWriter(EstimateSize(response));
        long? headerLength;
        try
        {
            headerLength = OipCodec.WriteResponse(response, buffer, request);
        }
        catch (InvalidOperationException ex)
        {
            // A BYTES output that is not UTF-8 cannot be JSON: the client has to ask for it as binary data.
            throw new OipException(OipErrorKind.BadRequest, $"{ex.Message}; request it with the parameter \"binary_data\": true", ex);
        }

        var http = context.Response;
        http.StatusCode = StatusCodes.Status200OK;
        if (headerLength is long json)
        {
            http.Headers[OipCodec.HeaderLengthName] = json.ToString(CultureInfo.InvariantCulture);
            http.ContentType = BinaryContentType;
        }
        else
        {
            http.ContentType = JsonContentType;
        }

        http.ContentLength = buffer.WrittenCount;
        await http.Body.WriteAsync(buffer.WrittenMemory, cancellationToken);
    }

    /// <summary>
    /// Reads the whole body into one array from <see cref="ArrayPool{T}.Shared"/> (the caller returns it).
    /// A declared length over <paramref name="max"/> is a 413 before anything is read; a chunked body is
    /// read until it passes <paramref name="max"/>, then 413.
    /// </summary>
    private static async Task<(byte[] Buffer, int Length)> ReadBodyAsync(HttpContext context, long max, CancellationToken cancellationToken)
    {
        var declared = context.Request.ContentLength;
        if (declared > max)
        {
            throw new OipException(OipErrorKind.PayloadTooLarge, $"the request body of {declared} bytes is larger than the {max} bytes allowed");
        }

        if (context.Features.Get<IHttpMaxRequestBodySizeFeature>() is { IsReadOnly: false } limit)
        {
            // Kestrel's default (about 28.6 MiB) would cut bodies the protocol limits allow.
            limit.MaxRequestBodySize = max;
        }

        var stream = context.Request.Body;
        var buffer = ArrayPool<byte>.Shared.Rent((int)(declared ?? 16 * 1024));
        var length = 0;
        try
        {
            while (true)
            {
                if (length == buffer.Length)
                {
                    if (declared is not null || length >= max)
                    {
                        // More than declared is Kestrel's to refuse; more than allowed is ours.
                        if (length >= max && await stream.ReadAsync(new byte[1], cancellationToken) > 0)
                        {
                            throw new OipException(OipErrorKind.PayloadTooLarge, $"the request body is larger than the {max} bytes allowed");
                        }

                        break;
                    }

                    var larger = ArrayPool<byte>.Shared.Rent((int)Math.Min((long)buffer.Length * 2, max));
                    buffer.AsSpan(0, length).CopyTo(larger);
                    ArrayPool<byte>.Shared.Return(buffer);
                    buffer = larger;
                }

                var read = await stream.ReadAsync(buffer.AsMemory(length), cancellationToken);
                if (read == 0)
                {
                    break;
                }

                length += read;
                if (declared is long expected && length >= expected)
                {
                    break;
                }
            }
        }
        catch (BadHttpRequestException ex)
        {
            ArrayPool<byte>.Shared.Return(buffer);
            throw new OipException(
                ex.StatusCode == StatusCodes.Status413PayloadTooLarge ? OipErrorKind.PayloadTooLarge : OipErrorKind.BadRequest,
                $"the request body could not be read: {ex.Message}",
                ex);
        }
        catch
        {
            ArrayPool<byte>.Shared.Return(buffer);
            throw;
        }

        return (buffer, length);
    }

    private static int EstimateSize(InferResponse response)
    {
        long size = 256;
        foreach (var output in response.Outputs)
        {
            // Binary outputs take their byte count; JSON numbers take a few characters each.
            size += 128 + (output.BinaryByteCount * 3);
        }

        return (int)Math.Min(size, 1 << 24);
    }

    private static void WriteModelReady(IBufferWriter<byte> output, string name, bool ready)
    {
        using var json = new System.Text.Json.Utf8JsonWriter(output);
        json.WriteStartObject();
        json.WriteString("name"u8, name);
        json.WriteBoolean("ready"u8, ready);
        json.WriteEndObject();
    }

    private static (string Name, string? Version) Route(HttpContext context)
    {
        var values = context.Request.RouteValues;
        var name = values["name"] as string ?? string.Empty;
        var version = values.TryGetValue("version", out var v) ? v as string : null;
        return (name, string.IsNullOrEmpty(version) ? null : version);
    }

    private static IInferenceBackend Backend(HttpContext context) => context.RequestServices.GetRequiredService<IInferenceBackend>();

    // Only the model's owner and the operator see it or call it; others learn nothing more than a 403.
    private static ValueTask EnsureAccessAsync(HttpContext context, string name, string? version) =>
        context.RequestServices.GetRequiredService<InferenceAccess>().EnsureAsync(context.GetCaller(), name, version, context.RequestAborted);

    // A request the client abandoned gets no answer; everything else is answered in the protocol's form.
    private static bool IsReportable(Exception ex, HttpContext context) =>
        !(ex is OperationCanceledException && context.RequestAborted.IsCancellationRequested);

    private static Task FailAsync(HttpContext context, string model, Exception ex)
    {
        var logger = context.RequestServices.GetRequiredService<ILoggerFactory>().CreateLogger(typeof(OipRestApi));
        var (status, message) = OipErrors.Describe(ex);
        if (status == StatusCodes.Status500InternalServerError)
        {
            OipLog.Unexpected(logger, "REST", model, ex);
        }
        else
        {
            OipLog.RequestFailed(logger, "REST", model, status, message);
        }

        if (context.Response.HasStarted)
        {
            context.Abort();
            return Task.CompletedTask;
        }

        context.Response.Headers.Remove(OipCodec.HeaderLengthName);
        return WriteAsync(context, status, OipCodec.ErrorBody(message));
    }

    private static Task WriteAsync(HttpContext context, int status, ReadOnlyMemory<byte> body)
    {
        var response = context.Response;
        response.StatusCode = status;
        response.ContentType = JsonContentType;
        response.ContentLength = body.Length;
        return response.Body.WriteAsync(body, context.RequestAborted).AsTask();
    }
}
