using System.Globalization;
using Emc.Coordinator.Accounts;
using Emc.Core.Inference;
using Emc.Core.Training;
using Emc.Coordinator.Blobs;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.Routing;
using Microsoft.Net.Http.Headers;

namespace Emc.Coordinator.Models;

/// <summary>
/// The model registry:
/// GET /api/v1/models, GET /api/v1/models/{name}?version=V,
/// POST /api/v1/models (multipart: name, version?, format?, file, input*, output*),
/// DELETE /api/v1/models/{name}?version=V (every version without one),
/// GET /api/v1/models/{name}/export?version=V&amp;format=onnx,
/// GET /api/v1/models/{name}/files/{sha256}?version=V (a file of the model: what <c>emc model pull</c> downloads).
/// </summary>
/// <remarks>
/// A model name belongs to the account that first pushed (or trained) it; a user's key lists only its own
/// models, gets 403 for another account's by name, and cannot push to a name another account holds (409).
/// The operator's key sees and changes every model.
/// </remarks>
internal static class ModelsApi
{
    public static RouteGroupBuilder MapModelsApi(this RouteGroupBuilder api)
    {
        api.MapGet("/models", ListAsync);
        api.MapGet("/models/{name}", GetAsync);
        api.MapPost("/models", PushAsync);
        api.MapDelete("/models/{name}", RemoveAsync);
        api.MapGet("/models/{name}/export", ExportAsync);
        api.MapMethods("/models/{name}/files/{hash}", [HttpMethods.Get, HttpMethods.Head], FileAsync);
        return api;
    }

    private static async Task<IResult> ListAsync(ModelRegistry registry, Caller caller, CancellationToken cancellationToken) =>
        Results.Ok(await registry.ListAsync(caller.IsOperator ? null : caller.AccountId, cancellationToken));

    private static async Task<IResult> GetAsync(ModelRegistry registry, Caller caller, string name, int? version, CancellationToken cancellationToken)
    {
        if (version is < 1)
        {
            return Problem(400, "Bad version", "version must be a positive integer.");
        }

        return await registry.GetAsync(name, version, cancellationToken) is not { } model
            ? Problem(404, "Model not found", version is null ? $"No model named '{name}'." : $"Model '{name}' has no version {version}.")
            : !caller.MayAccess(model.Owner) ? AccessProblems.Forbidden(caller, $"the model '{name}'")
            : Results.Ok(model);
    }

    /// <summary>
    /// Refuses (403) a caller who may not touch the model named <paramref name="name"/>; null when it may,
    /// or when no such model exists (the operation itself then answers 404).
    /// </summary>
    private static async Task<IResult?> RefuseAsync(ModelRegistry registry, Caller caller, string name, CancellationToken cancellationToken) =>
        await registry.NameHolderAsync(name, cancellationToken) is { } holder && !caller.MayAccess(holder)
            ? AccessProblems.Forbidden(caller, $"the model '{name}'")
            : null;

    private static async Task<IResult> FileAsync(ModelRegistry registry, BlobStore blobs, Caller caller, string name, string hash, int? version, CancellationToken cancellationToken)
    {
        if (version is < 1)
        {
            return Problem(400, "Bad version", "version must be a positive integer.");
        }

        if (await RefuseAsync(registry, caller, name, cancellationToken) is { } refused)
        {
            return refused;
        }

        if (!BlobStore.IsHash(hash) || !await registry.IsFileOfAsync(name, version, hash, cancellationToken))
        {
            return Problem(404, "File not found", $"{(version is null ? $"No version of model '{name}'" : $"Model '{name}' version {version}")} has a file {hash}.");
        }

        return blobs.Exists(hash)
            ? Results.File(blobs.PathOf(hash), "application/octet-stream", enableRangeProcessing: true, entityTag: new EntityTagHeaderValue($"\"{hash}\""))
            : Problem(404, "File not found", $"The file {hash} of model '{name}' is not stored.");
    }

    private static async Task<IResult> PushAsync(ModelRegistry registry, Caller caller, HttpContext context, CancellationToken cancellationToken)
    {
        if (!context.Request.HasFormContentType)
        {
            return Problem(400, "Not a model upload", "Send multipart/form-data with the fields name, file and optionally version, format, input and output.");
        }

        if (context.Features.Get<IHttpMaxRequestBodySizeFeature>() is { IsReadOnly: false } limit)
        {
            limit.MaxRequestBodySize = ModelRegistry.MaxFileBytes + (1 << 20);
        }

        context.Features.Set<IFormFeature>(new FormFeature(context.Request, new FormOptions
        {
            MultipartBodyLengthLimit = ModelRegistry.MaxFileBytes,
            ValueLengthLimit = 1 << 16,
            ValueCountLimit = 256,
        }));
        IFormCollection form;
        try
        {
            form = await context.Request.ReadFormAsync(cancellationToken);
        }
        catch (Exception ex) when (ex is InvalidDataException or BadHttpRequestException or IOException)
        {
            return Problem(400, "Malformed upload", ex.Message);
        }

        if (form.Files.Count != 1)
        {
            return Problem(400, "Invalid model", $"send exactly one file (the model), not {form.Files.Count}");
        }

        int? version = null;
        if (form.TryGetValue("version", out var versionText) && !string.IsNullOrEmpty(versionText))
        {
            if (!int.TryParse(versionText, NumberStyles.None, CultureInfo.InvariantCulture, out var parsed) || parsed < 1)
            {
                return Problem(400, "Invalid model", $"version must be a positive integer, not '{versionText}'");
            }

            version = parsed;
        }

        var inputs = new List<TensorMetadata>();
        var outputs = new List<TensorMetadata>();
        foreach (var (field, list) in new[] { ("input", inputs), ("output", outputs) })
        {
            foreach (var text in form[field])
            {
                if (!ModelSignature.TryParse(text, out var tensor, out var error))
                {
                    return Problem(400, "Invalid model", $"{field}: {error}");
                }

                list.Add(tensor);
            }
        }

        var file = form.Files[0];
        var content = new byte[file.Length];
        await using (var stream = file.OpenReadStream())
        {
            await stream.ReadExactlyAsync(content, cancellationToken);
        }

        var format = form["format"].ToString();
        var result = await registry.PushAsync(
            new ModelPush(form["name"].ToString(), version, format.Length == 0 ? null : format, content, inputs, outputs),
            caller,
            cancellationToken);
        return result.Value is { } model
            ? Results.Created($"/api/v1/models/{model.Name}?version={model.Version}", model)
            : Problem(result.Status, result.Title!, result.Error!);
    }

    private static async Task<IResult> RemoveAsync(ModelRegistry registry, Caller caller, string name, int? version, CancellationToken cancellationToken)
    {
        if (await RefuseAsync(registry, caller, name, cancellationToken) is { } refused)
        {
            return refused;
        }

        var result = await registry.RemoveAsync(name, version, cancellationToken);
        return result.Value is { } removed ? Results.Ok(removed) : Problem(result.Status, result.Title!, result.Error!);
    }

    private static async Task<IResult> ExportAsync(ModelRegistry registry, BlobStore blobs, Caller caller, string name, int? version, string? format, CancellationToken cancellationToken)
    {
        if (await RefuseAsync(registry, caller, name, cancellationToken) is { } refused)
        {
            return refused;
        }

        var result = await registry.ExportAsync(name, version, format, cancellationToken);
        if (result.Error is not null)
        {
            return Problem(result.Status, result.Title!, result.Error);
        }

        var (hash, model) = result.Value;
        return Results.File(
            blobs.PathOf(hash),
            "application/octet-stream",
            $"{model.Name}-v{model.Version}.onnx",
            entityTag: new EntityTagHeaderValue($"\"{hash}\""),
            enableRangeProcessing: true);
    }

    private static IResult Problem(int status, string title, string detail) =>
        Results.Problem(title: title, detail: detail, statusCode: status);
}
