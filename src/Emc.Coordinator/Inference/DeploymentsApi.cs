using Emc.Coordinator.Accounts;
using Emc.Core.Inference;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;

namespace Emc.Coordinator.Inference;

/// <summary>
/// Deployments: POST /api/v1/deployments {DeploymentSpec}, GET /api/v1/deployments[/{id}],
/// DELETE /api/v1/deployments/{id} (an id, or a model name with one deployment). A deployment belongs to
/// its model's owner (an engine's to who deployed it): a user's key lists, sees and undeploys only its
/// own, and deploys only its own models; the operator's key all of them.
/// </summary>
internal static class DeploymentsApi
{
    public static RouteGroupBuilder MapDeploymentsApi(this RouteGroupBuilder api)
    {
        api.MapPost("/deployments", DeployAsync);
        api.MapGet("/deployments", async (DeploymentService service, Caller caller, CancellationToken cancellationToken) =>
            Results.Ok(await service.ListAsync(caller.IsOperator ? null : caller.AccountId, cancellationToken)));
        api.MapGet("/deployments/{id}", GetAsync);
        api.MapDelete("/deployments/{id}", UndeployAsync);
        return api;
    }

    private static async Task<IResult> DeployAsync(DeploymentService service, Caller caller, HttpContext context, CancellationToken cancellationToken)
    {
        DeploymentSpec? spec;
        try
        {
            spec = await context.Request.ReadFromJsonAsync<DeploymentSpec>(cancellationToken);
        }
        catch (Exception ex) when (ex is System.Text.Json.JsonException or InvalidOperationException or BadHttpRequestException)
        {
            return Results.Problem(title: "Not a deployment", detail: ex.Message, statusCode: 400);
        }

        if (spec is null)
        {
            return Results.Problem(title: "Not a deployment", detail: "Send a JSON deployment spec: {\"model\": NAME, \"minReplicas\": 1, ...}.", statusCode: 400);
        }

        try
        {
            var view = await service.DeployAsync(spec, caller, cancellationToken);
            return Results.Created($"/api/v1/deployments/{view.Id}", view);
        }
        catch (DeploymentException ex)
        {
            return Problem(ex);
        }
    }

    private static async Task<IResult> GetAsync(DeploymentService service, Caller caller, string id, CancellationToken cancellationToken) =>
        await service.GetAsync(id, cancellationToken) is not { } view
            ? Results.Problem(title: "Deployment not found", detail: $"No deployment '{id}'.", statusCode: 404)
            : !caller.MayAccess(view.Owner) ? AccessProblems.Forbidden(caller, $"the deployment '{id}'")
            : Results.Ok(view);

    private static async Task<IResult> UndeployAsync(DeploymentService service, Caller caller, string id, CancellationToken cancellationToken)
    {
        try
        {
            return Results.Ok(new { id = await service.UndeployAsync(id, caller, cancellationToken) });
        }
        catch (DeploymentException ex)
        {
            return Problem(ex);
        }
    }

    private static IResult Problem(DeploymentException ex) => Results.Problem(
        title: ex.StatusCode switch
        {
            402 => "Payment required",
            403 => "Forbidden",
            404 => "Not found",
            409 => "Conflict",
            _ => "Bad deployment",
        },
        detail: ex.Message,
        statusCode: ex.StatusCode);
}
