using Emc.Coordinator.Accounts;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.Routing;

namespace Emc.Coordinator.Blobs;

/// <summary>
/// GET/HEAD /api/v1/blobs/{sha256} with HTTP range requests (resumable downloads of shards and
/// weights), and PUT /api/v1/blobs/{sha256} (pseudo-gradients and initial weights from nodes),
/// accepted only when the body hashes to the name. Reads are for registered nodes (signed requests) and
/// the operator; users reach the blobs they own through their resources (a model's files). Uploads take
/// a node's signature or any account's key: a blob is only kept when it hashes to its name, so an upload
/// can add bytes but never change or shadow what is stored.
/// </summary>
internal static class BlobsApi
{
    public static RouteGroupBuilder MapBlobsApi(this RouteGroupBuilder api)
    {
        api.MapMethods("/blobs/{hash}", [HttpMethods.Get, HttpMethods.Head], Get).RequireAuthorization(AccessPolicies.NodeOrOperator);
        api.MapPut("/blobs/{hash}", PutAsync).RequireAuthorization(AccessPolicies.NodeOrAccount);
        return api;
    }

    private static IResult Get(BlobStore blobs, string hash)
    {
        if (!BlobStore.IsHash(hash))
        {
            return BadHash(hash);
        }

        return blobs.Exists(hash)
            ? Results.File(blobs.PathOf(hash), "application/octet-stream", enableRangeProcessing: true, entityTag: new Microsoft.Net.Http.Headers.EntityTagHeaderValue($"\"{hash}\""))
            : Results.Problem(title: "Blob not found", detail: $"No blob {hash} is stored.", statusCode: StatusCodes.Status404NotFound);
    }

    private static async Task<IResult> PutAsync(BlobStore blobs, HttpContext context, string hash, CancellationToken cancellationToken)
    {
        if (!BlobStore.IsHash(hash))
        {
            return BadHash(hash);
        }

        if (context.Request.ContentLength is { } declared && declared > blobs.MaxBlobBytes)
        {
            return Results.Problem(title: "Blob too large", detail: $"At most {blobs.MaxBlobBytes} bytes.", statusCode: StatusCodes.Status413PayloadTooLarge);
        }

        if (blobs.Exists(hash))
        {
            return Results.Ok(new { hash, stored = false });
        }

        if (context.Features.Get<IHttpMaxRequestBodySizeFeature>() is { IsReadOnly: false } limit)
        {
            limit.MaxRequestBodySize = blobs.MaxBlobBytes;
        }

        try
        {
            var length = await blobs.PutAsync(context.Request.Body, hash, cancellationToken);
            return Results.Ok(new { hash, stored = true, bytes = length });
        }
        catch (InvalidDataException ex)
        {
            return Results.Problem(title: "Blob rejected", detail: ex.Message, statusCode: StatusCodes.Status400BadRequest);
        }
        catch (BadHttpRequestException ex)
        {
            return Results.Problem(title: "Blob rejected", detail: ex.Message, statusCode: ex.StatusCode);
        }
    }

    private static IResult BadHash(string hash) => Results.Problem(
        title: "Bad blob name",
        detail: $"'{hash}' is not a blob name: expected a sha256 as 64 lowercase hex digits.",
        statusCode: StatusCodes.Status400BadRequest);
}
