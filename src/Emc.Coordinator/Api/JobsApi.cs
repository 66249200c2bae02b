using System.Text.Json;
using Emc.Coordinator.Accounts;
using Emc.Coordinator.Scheduling;
using Emc.Core.Scheduling;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Routing;

namespace Emc.Coordinator.Api;

/// <summary>
/// Jobs, tasks, account weights and scheduler figures:
/// POST/GET /api/v1/jobs, GET /api/v1/jobs/{id}, POST /api/v1/jobs/{id}/cancel,
/// GET /api/v1/tasks, GET /api/v1/tasks/{id}, GET/PUT /api/v1/accounts/{account}/weight,
/// GET /api/v1/scheduler.
/// </summary>
/// <remarks>
/// A job belongs to the account it names (its fair-share account): a user's key submits jobs for its own
/// account only, and sees, lists and cancels only those; the operator's key does all of it for any
/// account. Weights and scheduler figures are the operator's.
/// </remarks>
internal static class JobsApi
{
    /// <summary>The most items one list request returns.</summary>
    public const int MaxLimit = 10_000;

    public static RouteGroupBuilder MapJobsApi(this RouteGroupBuilder api)
    {
        api.MapPost("/jobs", SubmitAsync);
        api.MapGet("/jobs", ListJobsAsync);
        api.MapGet("/jobs/{id}", GetJobAsync);
        api.MapPost("/jobs/{id}/cancel", CancelAsync);
        api.MapGet("/tasks", ListTasksAsync);
        api.MapGet("/tasks/{id}", GetTaskAsync);
        api.MapGet("/accounts/{account}/weight", GetWeightAsync).RequireOperator();
        api.MapPut("/accounts/{account}/weight", SetWeightAsync).RequireOperator();
        api.MapGet("/scheduler", StatsAsync).RequireOperator();
        return api;
    }

    private static async Task<Results<Created<JobView>, ProblemHttpResult>> SubmitAsync(
        SchedulerService scheduler, Caller caller, HttpRequest request, CancellationToken cancellationToken)
    {
        JobSpec? spec;
        try
        {
            spec = await request.ReadFromJsonAsync<JobSpec>(Core.EmcJson.Options, cancellationToken);
        }
        catch (Exception ex) when (ex is JsonException or InvalidOperationException or BadHttpRequestException)
        {
            return BadRequest("Malformed job", $"The body is not a job document: {ex.Message}");
        }

        if (spec is not null)
        {
            // A job names its account; one that names none is the caller's.
            if (string.IsNullOrEmpty(spec.Account))
            {
                spec = spec with { Account = caller.AccountId };
            }
            else if (!caller.MayAccess(spec.Account))
            {
                return TypedResults.Problem(
                    title: "Forbidden",
                    detail: $"a user's key submits jobs only for its own account ('{caller.AccountId}'), not for '{spec.Account}'; leave account out",
                    statusCode: StatusCodes.Status403Forbidden);
            }
        }

        try
        {
            var job = await scheduler.SubmitAsync(spec!, cancellationToken);
            if (job.Account != spec!.Account)
            {
                // The idempotency key is another account's job: say so rather than show it.
                return TypedResults.Problem(
                    title: "Idempotency key in use",
                    detail: "another account's job has this idempotency key; choose another",
                    statusCode: StatusCodes.Status409Conflict);
            }

            return TypedResults.Created($"/api/v1/jobs/{job.Id}", job);
        }
        catch (SchedulingException ex)
        {
            return BadRequest("Invalid job", ex.Message);
        }
    }

    private static async Task<Results<Ok<IReadOnlyList<JobView>>, ProblemHttpResult>> ListJobsAsync(
        SchedulerService scheduler, Caller caller, string? state, string? account, int? limit, CancellationToken cancellationToken)
    {
        if (account is not null && !caller.MayAccess(account))
        {
            return TypedResults.Problem(
                title: "Forbidden",
                detail: $"a user's key lists only its own account's jobs ('{caller.AccountId}'), not '{account}''s",
                statusCode: StatusCodes.Status403Forbidden);
        }

        if (!Core.EmcJson.TryParseEnum<JobState>(state, out var filter))
        {
            return BadRequest("Unknown job state", $"'{state}' is not a job state; use queued, running, completed, failed or cancelled.");
        }

        if (limit is < 1 or > MaxLimit)
        {
            return BadRequest("Bad limit", $"limit must be between 1 and {MaxLimit}.");
        }

        return TypedResults.Ok(await scheduler.ListJobsAsync(filter, caller.IsOperator ? account : caller.AccountId, limit ?? 100, cancellationToken));
    }

    private static async Task<Results<Ok<JobView>, ProblemHttpResult>> GetJobAsync(
        SchedulerService scheduler, Caller caller, string id, CancellationToken cancellationToken)
    {
        var job = await scheduler.GetJobAsync(id, cancellationToken);
        return job is null ? NotFound("Job not found", $"No job {id} exists.")
            : !caller.MayAccess(job.Account) ? Forbidden(caller, $"job {id}")
            : TypedResults.Ok(job);
    }

    private static async Task<Results<Ok<JobView>, ProblemHttpResult>> CancelAsync(
        SchedulerService scheduler, Caller caller, string id, CancellationToken cancellationToken)
    {
        if (await scheduler.GetJobAsync(id, cancellationToken) is { } job && !caller.MayAccess(job.Account))
        {
            return Forbidden(caller, $"job {id}");
        }

        if (!await scheduler.CancelAsync(id, "cancelled by request", cancellationToken))
        {
            return await scheduler.GetJobAsync(id, cancellationToken) is { } finished
                ? TypedResults.Ok(finished)
                : NotFound("Job not found", $"No job {id} exists.");
        }

        return TypedResults.Ok((await scheduler.GetJobAsync(id, cancellationToken))!);
    }

    private static async Task<Results<Ok<IReadOnlyList<TaskView>>, ProblemHttpResult>> ListTasksAsync(
        SchedulerService scheduler, Caller caller, string? job, string? state, string? after, int? limit, CancellationToken cancellationToken)
    {
        if (!Core.EmcJson.TryParseEnum<TaskState>(state, out var filter))
        {
            return BadRequest("Unknown task state", $"'{state}' is not a task state; use queued, leased, running, completed, failed or cancelled.");
        }

        if (limit is < 1 or > MaxLimit)
        {
            return BadRequest("Bad limit", $"limit must be between 1 and {MaxLimit}.");
        }

        if (job is not null)
        {
            var found = await scheduler.GetJobAsync(job, cancellationToken);
            if (found is null)
            {
                return NotFound("Job not found", $"No job {job} exists.");
            }

            if (!caller.MayAccess(found.Account))
            {
                return Forbidden(caller, $"job {job}");
            }
        }

        return TypedResults.Ok(await scheduler.ListTasksAsync(job, filter, after, limit ?? 100, caller.IsOperator ? null : caller.AccountId, cancellationToken));
    }

    private static async Task<Results<Ok<TaskView>, ProblemHttpResult>> GetTaskAsync(
        SchedulerService scheduler, Caller caller, string id, CancellationToken cancellationToken)
    {
        var task = await scheduler.GetTaskAsync(id, cancellationToken);
        return task is null ? NotFound("Task not found", $"No task {id} exists.")
            : !caller.MayAccess(task.Account) ? Forbidden(caller, $"task {id}")
            : TypedResults.Ok(task);
    }

    private static async Task<Results<Ok<AccountWeight>, ProblemHttpResult>> GetWeightAsync(
        SchedulerService scheduler, string account, CancellationToken cancellationToken)
    {
        if (!JobSpecValidator.IsIdentifier(account))
        {
            return BadRequest("Bad account", $"'{account}' is not an account name.");
        }

        return TypedResults.Ok(new AccountWeight(account, await scheduler.GetAccountWeightAsync(account, cancellationToken)));
    }

    private static async Task<Results<Ok<AccountWeight>, ProblemHttpResult>> SetWeightAsync(
        SchedulerService scheduler, string account, HttpRequest request, CancellationToken cancellationToken)
    {
        AccountWeight? body;
        try
        {
            body = await request.ReadFromJsonAsync<AccountWeight>(Core.EmcJson.Options, cancellationToken);
        }
        catch (Exception ex) when (ex is JsonException or InvalidOperationException or BadHttpRequestException)
        {
            return BadRequest("Malformed weight", $"The body must be {{\"weight\": number}}: {ex.Message}");
        }

        try
        {
            var weight = await scheduler.SetAccountWeightAsync(account, body?.Weight ?? 0, cancellationToken);
            return TypedResults.Ok(new AccountWeight(account, weight));
        }
        catch (SchedulingException ex)
        {
            return BadRequest("Invalid weight", ex.Message);
        }
    }

    private static async Task<Ok<SchedulerStats>> StatsAsync(SchedulerService scheduler, CancellationToken cancellationToken) =>
        TypedResults.Ok(await scheduler.StatsAsync(cancellationToken));

    private static ProblemHttpResult BadRequest(string title, string detail) =>
        TypedResults.Problem(title: title, detail: detail, statusCode: StatusCodes.Status400BadRequest);

    private static ProblemHttpResult Forbidden(Caller caller, string what) => AccessProblems.Forbidden(caller, what);

    private static ProblemHttpResult NotFound(string title, string detail) =>
        TypedResults.Problem(title: title, detail: detail, statusCode: StatusCodes.Status404NotFound);
}

/// <summary>An account's fair-share weight.</summary>
public sealed record AccountWeight(string Account, double Weight);
