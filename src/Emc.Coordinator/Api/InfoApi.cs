using Emc.Coordinator.Accounts;
using Emc.Coordinator.Hosting;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;

namespace Emc.Coordinator.Api;

/// <summary>
/// GET /api/v1/info: who this coordinator is and where nodes connect. Any account's key, or a node's
/// signature (also before it registered: a node asks this first).
/// </summary>
internal static class InfoApi
{
    public static RouteGroupBuilder MapInfoApi(this RouteGroupBuilder api)
    {
        api.MapGet("/info", (HttpContext context, CoordinatorIdentity identity, CoordinatorEndpoints endpoints) =>
            TypedResults.Ok(new CoordinatorInfo(
                identity.Id,
                typeof(InfoApi).Assembly.GetName().Version?.ToString() ?? "0.0.0",
                endpoints.ApiUrl.ToString(),
                endpoints.AdvertisedGrpcUrl(context.Request.Host.Host).ToString(),
                endpoints.StartedAt)))
            .RequireAuthorization(AccessPolicies.NodeOrAccount)
            .AllowFirstNodeContact();
        return api;
    }

    internal sealed record CoordinatorInfo(string CoordinatorId, string Version, string ApiUrl, string GrpcUrl, DateTimeOffset StartedAt);
}
