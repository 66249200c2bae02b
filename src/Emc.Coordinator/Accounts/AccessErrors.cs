using System.Text.Json;
using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Authorization;
using Microsoft.AspNetCore.Authorization.Policy;
using Microsoft.AspNetCore.Http;
using Microsoft.Net.Http.Headers;

namespace Emc.Coordinator.Accounts;

/// <summary>
/// Writes a refused request's 401 or 403 in the form its route family uses for every other error:
/// ProblemDetails for <c>/api/v1</c> (and anything else), the Open Inference Protocol's
/// <c>{"error": "..."}</c> for <c>/v2</c>, OpenAI's error object for <c>/v1</c>, and a gRPC status
/// (Unauthenticated, PermissionDenied) for gRPC calls.
/// </summary>
public static class AccessErrors
{
    /// <summary>What a request without credentials is told.</summary>
    public const string MissingKey = "this endpoint needs an API key: send the header Authorization: Bearer KEY (emc: --api-key or EMC_API_KEY)";

    public static Task WriteAsync(HttpContext context, int status, string message)
    {
        ArgumentNullException.ThrowIfNull(context);
        var response = context.Response;
        if (response.HasStarted)
        {
            context.Abort();
            return Task.CompletedTask;
        }

        response.Clear();
        if (status == StatusCodes.Status401Unauthorized)
        {
            response.Headers[HeaderNames.WWWAuthenticate] = context.Request.Headers.Authorization.Count > 0
                ? "Bearer error=\"invalid_token\""
                : "Bearer";
        }

        if (context.Request.ContentType?.StartsWith("application/grpc", StringComparison.OrdinalIgnoreCase) == true)
        {
            // A trailers-only response: the status travels in the headers, as gRPC servers answer a call they refuse at once.
            response.StatusCode = StatusCodes.Status200OK;
            response.ContentType = "application/grpc";
            response.Headers["grpc-status"] = status == StatusCodes.Status401Unauthorized ? "16" : "7";
            response.Headers["grpc-message"] = Uri.EscapeDataString(message);
            return Task.CompletedTask;
        }

        var path = context.Request.Path;
        if (path.StartsWithSegments("/v2"))
        {
            return WriteJsonAsync(context, status, json =>
            {
                json.WriteStartObject();
                json.WriteString("error", message);
                json.WriteEndObject();
            });
        }

        if (path.StartsWithSegments("/v1"))
        {
            return WriteJsonAsync(context, status, json =>
            {
                json.WriteStartObject();
                json.WriteStartObject("error");
                json.WriteString("message", message);
                json.WriteString("type", status == StatusCodes.Status401Unauthorized ? "invalid_request_error" : "permission_error");
                json.WriteNull("param");
                json.WriteString("code", status == StatusCodes.Status401Unauthorized ? "invalid_api_key" : "permission_denied");
                json.WriteEndObject();
                json.WriteEndObject();
            });
        }

        return Results.Problem(
            title: status == StatusCodes.Status401Unauthorized ? "Unauthorized" : "Forbidden",
            detail: message,
            statusCode: status).ExecuteAsync(context);
    }

    private static async Task WriteJsonAsync(HttpContext context, int status, Action<Utf8JsonWriter> write)
    {
        var buffer = new System.Buffers.ArrayBufferWriter<byte>(256);
        await using (var json = new Utf8JsonWriter(buffer))
        {
            write(json);
        }

        context.Response.StatusCode = status;
        context.Response.ContentType = "application/json";
        context.Response.ContentLength = buffer.WrittenCount;
        await context.Response.Body.WriteAsync(buffer.WrittenMemory, context.RequestAborted);
    }
}

/// <summary>Answers a request the authorization policies refused, with the reason, in its route family's error form.</summary>
internal sealed class AccessResultHandler : IAuthorizationMiddlewareResultHandler
{
    public async Task HandleAsync(RequestDelegate next, HttpContext context, AuthorizationPolicy policy, PolicyAuthorizationResult authorizeResult)
    {
        if (authorizeResult.Challenged)
        {
            // The scheme's handler keeps its result for the request, so this asks nothing twice (and a
            // node's signature is not judged a replay of itself).
            var failure = (await context.AuthenticateAsync()).Failure?.Message;
            await AccessErrors.WriteAsync(context, StatusCodes.Status401Unauthorized, failure ?? AccessErrors.MissingKey);
            return;
        }

        if (authorizeResult.Forbidden)
        {
            var reasons = authorizeResult.AuthorizationFailure?.FailureReasons.Select(r => r.Message).Distinct().ToList();
            await AccessErrors.WriteAsync(
                context,
                StatusCodes.Status403Forbidden,
                reasons is { Count: > 0 } ? string.Join("; ", reasons) : "this key may not do this");
            return;
        }

        await next(context);
    }
}
