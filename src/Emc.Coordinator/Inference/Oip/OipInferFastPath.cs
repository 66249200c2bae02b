using System.Security.Claims;
using Emc.Coordinator.Accounts;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;

namespace Emc.Coordinator.Inference.Oip;

/// <summary>
/// Serves <c>POST /v2/models/{name}[/versions/{version}]/infer</c> from an account with a valid API key
/// ahead of the general pipeline (HTTP metrics, the authentication and authorization middleware, endpoint
/// routing), which cost the coordinator about 13 µs of CPU per request (bench/README.md, run 7). The request
/// gets exactly what the mapped endpoint gives it: the same key check (<see cref="AccountStore"/>, which
/// caches keys), the same caller, the same model access check and the same handler. Everything else falls
/// through to the general pipeline unchanged: another path or method, no key, a key that is not valid (so
/// the 401 and its reason come from the one place that writes them), a node's signature, and a path that
/// is not plainly one of the two routes. The handler counts its answers in <c>emc_inference_requests_total</c>.
/// </summary>
internal sealed class OipInferFastPath(RequestDelegate next, AccountStore accounts)
{
    private const string Bearer = "Bearer ";

    public Task InvokeAsync(HttpContext context)
    {
        var request = context.Request;
        if (!HttpMethods.IsPost(request.Method) || !TryMatch(request.Path, out var name, out var version) || NodeRequestVerifier.IsSigned(request))
        {
            return next(context);
        }

        var header = request.Headers.Authorization;
        if (header.Count != 1 || header[0] is not { } text || !text.StartsWith(Bearer, StringComparison.OrdinalIgnoreCase))
        {
            return next(context);
        }

        return ServeAsync(context, text[Bearer.Length..].Trim(), name, version);
    }

    /// <summary>
    /// The model name and version of an infer path: <c>/v2/models/{name}/infer</c> or
    /// <c>/v2/models/{name}/versions/{version}/infer</c>, literals in any case (as endpoint routing matches
    /// them), no empty segment and no trailing slash. False for anything else.
    /// </summary>
    internal static bool TryMatch(PathString path, out string name, out string? version)
    {
        name = string.Empty;
        version = null;
        var text = path.Value;
        if (text is null || !text.StartsWith("/v2/models/", StringComparison.OrdinalIgnoreCase))
        {
            return false;
        }

        Span<Range> parts = stackalloc Range[6];
        var rest = text.AsSpan("/v2/models/".Length);
        var count = rest.Split(parts, '/');
        if (count == 2 && rest[parts[1]].Equals("infer", StringComparison.OrdinalIgnoreCase) && rest[parts[0]].Length > 0)
        {
            name = rest[parts[0]].ToString();
            return true;
        }

        if (count == 4
            && rest[parts[1]].Equals("versions", StringComparison.OrdinalIgnoreCase)
            && rest[parts[3]].Equals("infer", StringComparison.OrdinalIgnoreCase)
            && rest[parts[0]].Length > 0
            && rest[parts[2]].Length > 0)
        {
            name = rest[parts[0]].ToString();
            version = rest[parts[2]].ToString();
            return true;
        }

        return false;
    }

    private async Task ServeAsync(HttpContext context, string key, string name, string? version)
    {
        var (caller, refusal) = await accounts.AuthenticateAsync(key, context.RequestAborted);
        if (refusal != KeyRefusal.None || caller is null)
        {
            await next(context);
            return;
        }

        context.User = new ClaimsPrincipal(caller.ToIdentity(EmcAuthenticationHandler.SchemeName));
        var route = context.Request.RouteValues;
        route["name"] = name;
        if (version is not null)
        {
            route["version"] = version;
        }

        await OipRestApi.InferAsync(context);
    }
}

/// <summary>Adds <see cref="OipInferFastPath"/> to a coordinator's pipeline.</summary>
internal static class OipInferFastPathExtensions
{
    /// <summary>
    /// Adds the fast path where it is placed in the pipeline, when the Open Inference Protocol is served
    /// (an <see cref="IInferenceBackend"/> is registered); does nothing otherwise.
    /// </summary>
    public static IApplicationBuilder UseOipInferFastPath(this IApplicationBuilder app)
    {
        ArgumentNullException.ThrowIfNull(app);
        return app.ApplicationServices.GetService<IServiceProviderIsService>()?.IsService(typeof(IInferenceBackend)) == true
            ? app.UseMiddleware<OipInferFastPath>()
            : app;
    }
}
