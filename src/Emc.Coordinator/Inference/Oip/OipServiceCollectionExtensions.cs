using Grpc.AspNetCore.Server;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Emc.Coordinator.Inference.Oip;

/// <summary>Registration of the Open Inference Protocol front ends.</summary>
public static class OipServiceCollectionExtensions
{
    /// <summary>
    /// Adds <see cref="OipOptions"/> and the gRPC message size of <see cref="OipGrpcService"/> (the
    /// request limit rather than the node gateway's 1 MiB). Costs nothing when no
    /// <see cref="IInferenceBackend"/> is registered: then <see cref="MapOpenInferenceProtocol"/> maps nothing.
    /// </summary>
    public static IServiceCollection AddOpenInferenceProtocol(this IServiceCollection services)
    {
        services.AddOptions<OipOptions>().ValidateDataAnnotations().Validate(
            o =>
            {
                o.Validate();
                return true;
            }).ValidateOnStart();
        services.AddSingleton<IConfigureOptions<GrpcServiceOptions<OipGrpcService>>, ConfigureGrpcMessageSize>();
        return services;
    }

    /// <summary>
    /// Maps the protocol's REST endpoints under <c>/v2</c> and <see cref="OipGrpcService"/> on
    /// <paramref name="grpcHosts"/> (the node gateway's HTTP/2 ports), when an <see cref="IInferenceBackend"/>
    /// is registered; does nothing otherwise.
    /// </summary>
    public static IEndpointRouteBuilder MapOpenInferenceProtocol(this IEndpointRouteBuilder app, params string[] grpcHosts)
    {
        ArgumentNullException.ThrowIfNull(app);
        var services = app.ServiceProvider;
        if (services.GetService<IServiceProviderIsService>()?.IsService(typeof(IInferenceBackend)) != true)
        {
            return app;
        }

        app.MapOipRestApi();
        var grpc = app.MapGrpcService<OipGrpcService>();
        if (grpcHosts is { Length: > 0 })
        {
            grpc.RequireHost(grpcHosts);
        }

        OipLog.Mapped(services.GetRequiredService<ILoggerFactory>().CreateLogger(typeof(OipServiceCollectionExtensions)), string.Join(", ", grpcHosts ?? []));
        return app;
    }

    private sealed class ConfigureGrpcMessageSize(IOptions<OipOptions> options) : IConfigureOptions<GrpcServiceOptions<OipGrpcService>>
    {
        public void Configure(GrpcServiceOptions<OipGrpcService> grpc) => grpc.MaxReceiveMessageSize = (int)options.Value.EffectiveMaxRequestBytes;
    }
}
