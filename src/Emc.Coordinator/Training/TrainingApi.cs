using System.Text.Json;
using Emc.Coordinator.Accounts;
using Emc.Core;
using Emc.Core.Training;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.Routing;

namespace Emc.Coordinator.Training;

/// <summary>
/// Datasets and training jobs (the models they produce are served by Models/ModelsApi):
/// POST/GET /api/v1/datasets, GET/DELETE /api/v1/datasets/{name};
/// POST/GET /api/v1/training, GET /api/v1/training/{id}, GET /api/v1/training/{id}/rounds, POST /api/v1/training/{id}/cancel.
/// </summary>
/// <remarks>
/// A dataset belongs to the account that uploaded it and a training job to the account it runs for: a
/// user's key lists only its own, gets 403 for another account's by name or id, and trains only on its
/// own datasets. Dataset names are one namespace for the network, so a name another account holds is a
/// 409. The operator's key sees and changes everything.
/// </remarks>
internal static class TrainingApi
{
    private const int MaxLimit = 10_000;

    public static RouteGroupBuilder MapTrainingApi(this RouteGroupBuilder api)
    {
        api.MapPost("/datasets", UploadAsync);
        api.MapGet("/datasets", ListDatasetsAsync);
        api.MapGet("/datasets/{name}", GetDatasetAsync);
        api.MapDelete("/datasets/{name}", RemoveDatasetAsync);
        api.MapPost("/training", SubmitAsync);
        api.MapGet("/training", ListAsync);
        api.MapGet("/training/{id}", GetAsync);
        api.MapGet("/training/{id}/rounds", RoundsAsync);
        api.MapPost("/training/{id}/cancel", CancelAsync);
        return api;
    }

    private static async Task<IResult> UploadAsync(DatasetService datasets, Caller caller, HttpContext context, CancellationToken cancellationToken)
    {
        if (!context.Request.HasFormContentType)
        {
            return Problem(400, "Not a dataset upload", "Send multipart/form-data with the fields name, format and one or more files.");
        }

        if (context.Features.Get<IHttpMaxRequestBodySizeFeature>() is { IsReadOnly: false } limit)
        {
            limit.MaxRequestBodySize = DatasetService.MaxUploadBytes;
        }

        context.Features.Set<IFormFeature>(new FormFeature(context.Request, new FormOptions
        {
            MultipartBodyLengthLimit = DatasetService.MaxUploadBytes,
            ValueLengthLimit = 1 << 16,
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

        var files = new List<(string Name, byte[] Content)>();
        foreach (var file in form.Files)
        {
            using var buffer = new MemoryStream((int)Math.Min(file.Length, int.MaxValue));
            await file.CopyToAsync(buffer, cancellationToken);
            files.Add((file.FileName, buffer.ToArray()));
        }

        int? classes = null;
        if (form.TryGetValue("classes", out var classesText) && !string.IsNullOrEmpty(classesText))
        {
            if (!int.TryParse(classesText, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var parsed) || parsed < 1)
            {
                return Problem(400, "Invalid dataset", "classes must be a positive integer");
            }

            classes = parsed;
        }

        var result = await datasets.UploadAsync(form["name"].ToString(), form["format"].ToString(), form["labelColumn"].ToString(), classes, files, caller.AccountId, cancellationToken);
        return result.Error is { } error
            ? Problem(result.Conflict ? 409 : 400, result.Conflict ? "Dataset exists" : "Invalid dataset", error)
            : Results.Created($"/api/v1/datasets/{result.Dataset!.Name}", result.Dataset);
    }

    private static async Task<IResult> ListDatasetsAsync(DatasetService datasets, Caller caller, CancellationToken cancellationToken) =>
        Results.Ok(await datasets.ListAsync(caller.IsOperator ? null : caller.AccountId, cancellationToken));

    private static async Task<IResult> GetDatasetAsync(DatasetService datasets, Caller caller, string name, CancellationToken cancellationToken) =>
        await datasets.GetAsync(name, cancellationToken) is not { } dataset ? Problem(404, "Dataset not found", $"No dataset named '{name}'.")
            : !caller.MayAccess(dataset.Owner) ? AccessProblems.Forbidden(caller, $"the dataset '{name}'")
            : Results.Ok(dataset);

    private static async Task<IResult> RemoveDatasetAsync(DatasetService datasets, Caller caller, string name, CancellationToken cancellationToken)
    {
        if (await datasets.GetAsync(name, cancellationToken) is { } dataset && !caller.MayAccess(dataset.Owner))
        {
            return AccessProblems.Forbidden(caller, $"the dataset '{name}'");
        }

        var (removed, error) = await datasets.RemoveAsync(name, cancellationToken);
        return error is not null ? Problem(409, "Dataset in use", error)
            : removed ? Results.NoContent()
            : Problem(404, "Dataset not found", $"No dataset named '{name}'.");
    }

    private static async Task<IResult> SubmitAsync(TrainingSubmission submission, Caller caller, HttpRequest request, CancellationToken cancellationToken)
    {
        TrainingJobSpec? spec;
        try
        {
            spec = await request.ReadFromJsonAsync<TrainingJobSpec>(EmcJson.Options, cancellationToken);
        }
        catch (Exception ex) when (ex is JsonException or InvalidOperationException or BadHttpRequestException)
        {
            return Problem(400, "Malformed training job", $"The body is not a training job document: {ex.Message}");
        }

        var (job, errors, existing, status) = await submission.SubmitAsync(spec, caller, cancellationToken);
        if (job is null)
        {
            return Problem(
                status,
                status switch
                {
                    402 => "Budget not covered",
                    403 => "Forbidden",
                    409 => "Name in use",
                    _ => "Invalid training job",
                },
                string.Join("; ", errors));
        }

        return existing ? Results.Ok(job) : Results.Created($"/api/v1/training/{job.Id}", job);
    }

    private static async Task<IResult> ListAsync(TrainingStore store, TrainingSubmission submission, Caller caller, string? state, int? limit, CancellationToken cancellationToken)
    {
        if (state is not null && !EmcJson.TryParseEnum<TrainingJobState>(state, out _))
        {
            return Problem(400, "Unknown state", $"'{state}' is not a training state; use waiting, running, completed, failed or cancelled.");
        }

        if (limit is < 1 or > MaxLimit)
        {
            return Problem(400, "Bad limit", $"limit must be 1 to {MaxLimit}.");
        }

        var rows = await store.ListJobsAsync(state, caller.IsOperator ? null : caller.AccountId, limit ?? 100, cancellationToken);
        var views = new List<TrainingJobView>(rows.Count);
        foreach (var row in rows)
        {
            views.Add(await submission.ViewAsync(row, cancellationToken));
        }

        return Results.Ok(views);
    }

    private static async Task<IResult> GetAsync(TrainingStore store, TrainingSubmission submission, Caller caller, string id, CancellationToken cancellationToken) =>
        await store.GetJobAsync(id, cancellationToken) is not { } row ? Problem(404, "Training job not found", $"No training job {id}.")
            : !caller.MayAccess(row.Account) ? AccessProblems.Forbidden(caller, $"training job {id}")
            : Results.Ok(await submission.ViewAsync(row, cancellationToken));

    private static async Task<IResult> RoundsAsync(TrainingStore store, Caller caller, string id, long? after, int? limit, CancellationToken cancellationToken)
    {
        if (limit is < 1 or > MaxLimit || after is < 0)
        {
            return Problem(400, "Bad paging", $"limit must be 1 to {MaxLimit} and after must not be negative.");
        }

        if (await store.GetJobAsync(id, cancellationToken) is not { } job)
        {
            return Problem(404, "Training job not found", $"No training job {id}.");
        }

        if (!caller.MayAccess(job.Account))
        {
            return AccessProblems.Forbidden(caller, $"training job {id}");
        }

        var rounds = await store.ListRoundsAsync(id, after ?? 0, limit ?? 1000, cancellationToken);
        return Results.Ok(rounds.Select(r => TrainingJson.ReadRound(r.SummaryJson)).ToList());
    }

    private static async Task<IResult> CancelAsync(TrainingStore store, TrainingService service, TrainingSubmission submission, Caller caller, string id, CancellationToken cancellationToken)
    {
        if (await store.GetJobAsync(id, cancellationToken) is not { } job)
        {
            return Problem(404, "Training job not found", $"No training job {id}.");
        }

        if (!caller.MayAccess(job.Account))
        {
            return AccessProblems.Forbidden(caller, $"training job {id}");
        }

        if (!await service.CancelAsync(id, cancellationToken))
        {
            return Problem(409, "Training job finished", $"Training job {id} has already finished.");
        }

        return Results.Ok(await submission.ViewAsync((await store.GetJobAsync(id, cancellationToken))!, cancellationToken));
    }

    private static IResult Problem(int status, string title, string detail) =>
        Results.Problem(title: title, detail: detail, statusCode: status);
}
