using System.Security.Cryptography;
using Emc.Coordinator.Accounts;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Routing;

namespace Emc.Coordinator.Api;

/// <summary>
/// Endpoints nodes use to measure their link to the coordinator: round trip, download and upload.
/// Sizes are capped so that they cannot be used to exhaust the coordinator.
/// </summary>
internal static class LinkApi
{
    /// <summary>Largest transfer one call may ask for.</summary>
    public const int MaxBytes = 64 << 20;

    // Random rather than zeros, so a compressing proxy on the path cannot flatter the figure.
    private static readonly byte[] Block = RandomNumberGenerator.GetBytes(64 << 10);

    public static RouteGroupBuilder MapLinkApi(this RouteGroupBuilder api)
    {
        // A node measures its link before it registers; users have no need of these.
        api.MapGet("/link/ping", () => TypedResults.NoContent()).RequireAuthorization(AccessPolicies.NodeOrOperator).AllowFirstNodeContact();
        api.MapGet("/link/download", DownloadAsync).RequireAuthorization(AccessPolicies.NodeOrOperator).AllowFirstNodeContact();
        api.MapPost("/link/upload", UploadAsync).RequireAuthorization(AccessPolicies.NodeOrOperator).AllowFirstNodeContact();
        return api;
    }

    private static async Task<Results<EmptyHttpResult, ProblemHttpResult>> DownloadAsync(HttpContext context, int bytes, CancellationToken cancellationToken)
    {
        if (bytes is < 1 or > MaxBytes)
        {
            return TypedResults.Problem(detail: $"bytes must be between 1 and {MaxBytes}.", statusCode: StatusCodes.Status400BadRequest);
        }

        context.Response.ContentType = "application/octet-stream";
        context.Response.ContentLength = bytes;
        var left = bytes;
        while (left > 0)
        {
            var chunk = Math.Min(left, Block.Length);
            await context.Response.Body.WriteAsync(Block.AsMemory(0, chunk), cancellationToken);
            left -= chunk;
        }

        return TypedResults.Empty;
    }

    private static async Task<Results<Ok<UploadResult>, ProblemHttpResult>> UploadAsync(HttpContext context, CancellationToken cancellationToken)
    {
        var limit = context.Features.Get<IHttpMaxRequestBodySizeFeature>();
        if (limit is { IsReadOnly: false })
        {
            limit.MaxRequestBodySize = MaxBytes;
        }

        var buffer = new byte[64 << 10];
        long total = 0;
        try
        {
            int read;
            while ((read = await context.Request.Body.ReadAsync(buffer, cancellationToken)) > 0)
            {
                total += read;
            }
        }
        catch (BadHttpRequestException ex)
        {
            return TypedResults.Problem(detail: ex.Message, statusCode: ex.StatusCode);
        }

        return TypedResults.Ok(new UploadResult(total));
    }

    internal sealed record UploadResult(long Bytes);
}
