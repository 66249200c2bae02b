using Emc.Coordinator.Persistence;
using Emc.Core.Identity;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Routing;

namespace Emc.Coordinator.Api;

/// <summary>GET /api/v1/nodes and /api/v1/nodes/{id}.</summary>
internal static class NodesApi
{
    public static RouteGroupBuilder MapNodesApi(this RouteGroupBuilder api)
    {
        api.MapGet("/nodes", ListAsync);
        api.MapGet("/nodes/{id}", GetAsync);
        return api;
    }

    private static async Task<Results<Ok<IReadOnlyList<Core.Registry.NodeView>>, ProblemHttpResult>> ListAsync(
        NodeStore store, string? status, CancellationToken cancellationToken)
    {
        Core.Registry.NodeStatus? filter = null;
        if (status is not null)
        {
            if (!NodeStore.TryParseStatus(status, out var parsed))
            {
                return TypedResults.Problem(
                    title: "Unknown node status",
                    detail: $"'{status}' is not a status; use connected, busy, draining, lost or disconnected.",
                    statusCode: StatusCodes.Status400BadRequest);
            }

            filter = parsed;
        }

        return TypedResults.Ok(await store.ListAsync(filter, cancellationToken));
    }

    private static async Task<Results<Ok<Core.Registry.NodeView>, ProblemHttpResult>> GetAsync(
        NodeStore store, string id, CancellationToken cancellationToken)
    {
        if (!EthAddress.TryParse(id, out var address))
        {
            return TypedResults.Problem(
                title: "Bad node id",
                detail: $"'{id}' is not a node id: expected 0x followed by 40 hex digits.",
                statusCode: StatusCodes.Status400BadRequest);
        }

        var node = await store.GetAsync(address.Value.ToString(), cancellationToken);
        return node is null
            ? TypedResults.Problem(title: "Node not found", detail: $"No node {address} is registered.", statusCode: StatusCodes.Status404NotFound)
            : TypedResults.Ok(node);
    }
}
