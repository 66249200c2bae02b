using System.Text.Json;
using Emc.Coordinator.Accounts;
using Emc.Coordinator.Api;
using Emc.Coordinator.Blobs;
using Emc.Coordinator.Gateway;
using Emc.Coordinator.Inference.Oip;
using Emc.Coordinator.Inference.OpenAi;
using Emc.Coordinator.Models;
using Emc.Coordinator.Inference;
using Emc.Coordinator.Ledger;
using Emc.Coordinator.Observability;
using Emc.Coordinator.Persistence;
using Emc.Coordinator.Registry;
using Emc.Coordinator.Scheduling;
using Emc.Coordinator.Training;
using Emc.Core.Pricing;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Orleans.Configuration;
using Prometheus;

namespace Emc.Coordinator.Hosting;

/// <summary>
/// The coordinator process: ASP.NET Core (REST API and node gateway) with a co-hosted Orleans silo
/// and EF Core on SQLite in the data folder.
/// </summary>
public sealed class CoordinatorHost : IAsyncDisposable
{
    private readonly WebApplication _app;
    private readonly CoordinatorOptions _options;

    private CoordinatorHost(WebApplication app, CoordinatorOptions options, CoordinatorEndpoints endpoints)
    {
        _app = app;
        _options = options;
        Endpoints = endpoints;
    }

    public CoordinatorEndpoints Endpoints { get; }

    public IServiceProvider Services => _app.Services;

    /// <summary>Builds a coordinator. <paramref name="configure"/> may replace services (tests use it for the clock and options).</summary>
    public static CoordinatorHost Create(
        CoordinatorOptions options,
        Action<IServiceCollection>? configure = null,
        Action<ILoggingBuilder>? logging = null,
        string[]? args = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        Directory.CreateDirectory(options.DataDirectory);
        var endpoints = new CoordinatorEndpoints(
            CoordinatorEndpoints.Resolve(options.Urls, "API"),
            CoordinatorEndpoints.Resolve(options.GrpcUrls, "gRPC"),
            options.AdvertisedGrpcUrl);

        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { Args = args ?? [], ContentRootPath = AppContext.BaseDirectory });
        builder.Logging.ClearProviders();
        builder.Logging.AddSimpleConsole(o =>
        {
            o.SingleLine = true;
            o.TimestampFormat = "HH:mm:ss ";
        });
        builder.Logging.SetMinimumLevel(LogLevel.Information);
        builder.Logging.AddFilter("Orleans", LogLevel.Warning);
        // The silo warns about workstation GC and a watchdog tick at start; neither applies to one embedded silo.
        builder.Logging.AddFilter("Orleans.Runtime.Silo", LogLevel.Error);
        builder.Logging.AddFilter("Orleans.Runtime.Watchdog", LogLevel.Error);
        builder.Logging.AddFilter("Microsoft", LogLevel.Warning);
        builder.Logging.AddFilter("Grpc", LogLevel.Warning);
        logging?.Invoke(builder.Logging);

        builder.WebHost.ConfigureKestrel(kestrel =>
        {
            foreach (var uri in endpoints.Api)
            {
                kestrel.Listen(CoordinatorEndpoints.ToEndPoint(uri), o => o.Protocols = HttpProtocols.Http1);
            }

            foreach (var uri in endpoints.Grpc)
            {
                kestrel.Listen(CoordinatorEndpoints.ToEndPoint(uri), o => o.Protocols = HttpProtocols.Http2);
            }

            // A node's stream lives for days; keep-alive pings find dead peers behind NAT.
            kestrel.Limits.Http2.KeepAlivePingDelay = TimeSpan.FromSeconds(20);
            kestrel.Limits.Http2.KeepAlivePingTimeout = TimeSpan.FromSeconds(20);
            kestrel.Limits.MaxConcurrentConnections = null;
        });

        if (!PlacementPolicies.Names.Contains(options.PlacementPolicy))
        {
            throw new ArgumentException($"'{options.PlacementPolicy}' is not a placement policy; use {string.Join(" or ", PlacementPolicies.Names)}.", nameof(options));
        }

        var siloPort = options.SiloPort == 0 ? CoordinatorEndpoints.FreeLoopbackPort() : options.SiloPort;
        builder.Host.UseOrleans(silo =>
        {
            silo.UseLocalhostClustering(siloPort: siloPort, gatewayPort: CoordinatorEndpoints.FreeLoopbackPort(), serviceId: "emc", clusterId: "emc-local");
            silo.Configure<GrainCollectionOptions>(o => o.CollectionAge = TimeSpan.FromMinutes(10));
        });

        // Prices and payment timing: {data}/coordinator.json, then environment variables such as Prices__UnitsPerRequest.
        var file = new Microsoft.Extensions.Configuration.Json.JsonConfigurationSource
        {
            Path = Path.Combine(Path.GetFullPath(options.DataDirectory), "coordinator.json"),
            Optional = true,
            ReloadOnChange = false,
        };
        file.ResolveFileProvider();
        try
        {
            builder.Configuration.Sources.Insert(0, file);
        }
        catch (Exception ex) when (ex is InvalidDataException or FormatException or System.Text.Json.JsonException)
        {
            throw new ArgumentException($"{file.Path} is not usable: {ex.Message}", ex);
        }
        var prices = ReadSection<PriceTable>(builder.Configuration, "Prices") ?? new PriceTable();
        var payments = ReadSection<PaymentOptions>(builder.Configuration, "Payments") ?? new PaymentOptions();
        var problems = prices.Validate().Concat(payments.Validate()).ToList();
        if (problems.Count > 0)
        {
            throw new ArgumentException($"the coordinator's configuration is not usable: {string.Join("; ", problems)}");
        }

        var services = builder.Services;
        services.AddSingleton(prices);
        services.AddSingleton(payments);
        services.AddSingleton(options);
        services.AddSingleton(endpoints);
        services.TryAddTimeProvider();
        services.AddOptions<RegistryOptions>().ValidateDataAnnotations().ValidateOnStart();
        services.AddEmcPersistence(options.DataDirectory);
        services.AddEmcAccess(options.DataDirectory, options.OperatorKeyFile, options.OperatorKey);
        services.AddSingleton<CoordinatorIdentity>();
        services.AddSingleton<ChallengeIssuer>();
        services.AddSingleton<RegistrationVerifier>();
        services.AddSingleton<NodeSessions>();
        services.AddSingleton<NodeStateWriter>();
        services.AddHostedService(sp => sp.GetRequiredService<NodeStateWriter>());
        services.AddSingleton<ReadinessState>();
        services.AddEmcLedger(options.DataDirectory);
        services.AddEmcScheduling(options.PlacementPolicy);
        services.AddEmcTraining(options.DataDirectory);
        services.AddOpenInferenceProtocol();
        services.AddEmcModels();
        services.AddEmcDeployments();
        services.AddOpenAiApi();
        services.AddGrpc(o =>
        {
            // Inference replies carry tensors (64 MiB at most, refused above that with a clear error).
            o.MaxReceiveMessageSize = Core.Inference.ServingLimits.MaxMessageBytes;
            o.MaxSendMessageSize = Core.Inference.ServingLimits.MaxMessageBytes;
            o.EnableDetailedErrors = false;
        });
        services.AddProblemDetails();
        services.ConfigureHttpJsonOptions(o => Core.EmcJson.Apply(o.SerializerOptions));
        services.Configure<HostOptions>(o => o.ShutdownTimeout = TimeSpan.FromSeconds(15));
        configure?.Invoke(services);

        var app = builder.Build();
        app.UseExceptionHandler();
        app.UseStatusCodePages();

        // Open Inference Protocol infer calls with a valid key skip the rest of the pipeline (same checks, same handler).
        app.UseOipInferFastPath();
        app.UseHttpMetrics();

        // Every endpoint needs an API key unless it says otherwise (AccessPolicies); see docs/accounts.md.
        app.UseAuthentication();
        app.UseAuthorization();

        // Nodes prove who they are on the stream itself (signed challenge-response registration).
        app.MapGrpcService<NodeGatewayService>().RequireHost(endpoints.Grpc.Select(u => $"*:{u.Port}").ToArray()).AllowAnonymous();
        var api = app.MapGroup("/api/v1");
        api.MapAccountsApi();
        api.MapInfoApi();
        api.MapNodesApi();
        api.MapLinkApi();
        api.MapJobsApi();
        api.MapBlobsApi();
        api.MapTrainingApi();
        // Only when an IInferenceBackend is registered; gRPC on the gateway's ports, which already speak HTTP/2.
        app.MapOpenInferenceProtocol(endpoints.Grpc.Select(u => $"*:{u.Port}").ToArray());
        api.MapModelsApi();
        api.MapDeploymentsApi();
        api.MapLedgerApi();
        app.MapOpenAiApi();
        app.MapGet("/healthz", () => TypedResults.Text("ok")).AllowAnonymous();
        app.MapGet("/readyz", async (ReadinessState ready, DatabaseInitializer db, CancellationToken cancellationToken) =>
            ready.IsReady && await db.IsReachableAsync(cancellationToken)
                ? Results.Text("ready")
                : Results.Problem(title: "Not ready", detail: ready.IsReady ? "The database is unreachable." : "The coordinator is starting or stopping.", statusCode: StatusCodes.Status503ServiceUnavailable))
            .AllowAnonymous();
        app.MapMetrics("/metrics").RequireOperator();

        return new CoordinatorHost(app, options, endpoints);
    }

    /// <summary>Migrates the database, starts the silo and the listeners, and writes the endpoints file.</summary>
    public async Task StartAsync(CancellationToken cancellationToken)
    {
        var services = _app.Services;
        await services.GetRequiredService<DatabaseInitializer>().InitializeAsync(cancellationToken);
        await services.GetRequiredService<OperatorCredential>().EnsureAsync(cancellationToken);
        var store = services.GetRequiredService<NodeStore>();
        await store.MarkLiveNodesLostAsync(cancellationToken);
        services.GetRequiredService<CoordinatorIdentity>().Id = await store.GetOrCreateCoordinatorIdAsync(cancellationToken);

        var lifetime = services.GetRequiredService<IHostApplicationLifetime>();
        var sessions = services.GetRequiredService<NodeSessions>();
        var readiness = services.GetRequiredService<ReadinessState>();
        lifetime.ApplicationStopping.Register(() =>
        {
            // Long-lived node streams would hold shutdown until its timeout: end them now; nodes reconnect.
            readiness.IsReady = false;
            sessions.StopAll();
        });

        Prometheus.Metrics.DefaultRegistry.AddBeforeCollectCallback(async ct =>
        {
            var counts = await store.CountByStatusAsync(ct);
            foreach (var status in Enum.GetValues<Core.Registry.NodeStatus>().Select(NodeStore.StatusText))
            {
                EmcMetrics.Nodes.WithLabels(status).Set(counts.GetValueOrDefault(status));
            }
        });

        await _app.StartAsync(cancellationToken);
        Endpoints.StartedAt = services.GetRequiredService<TimeProvider>().GetUtcNow();
        readiness.IsReady = true;

        var endpointsFile = Path.Combine(_options.DataDirectory, "endpoints.json");
        await File.WriteAllTextAsync(
            endpointsFile,
            JsonSerializer.Serialize(new { api = Endpoints.ApiUrl.ToString(), grpc = Endpoints.GrpcUrl.ToString(), pid = Environment.ProcessId }),
            cancellationToken);
    }

    /// <summary>Runs until the process is asked to stop (Ctrl-C, SIGTERM) or <paramref name="cancellationToken"/> fires.</summary>
    public Task WaitForShutdownAsync(CancellationToken cancellationToken) => _app.WaitForShutdownAsync(cancellationToken);

    public Task StopAsync(CancellationToken cancellationToken) => _app.StopAsync(cancellationToken);

    public async ValueTask DisposeAsync() => await _app.DisposeAsync();

    /// <summary>A configuration section bound to <typeparamref name="T"/>; null when absent. Unknown keys and unreadable values are errors.</summary>
    private static T? ReadSection<T>(ConfigurationManager configuration, string name)
        where T : class
    {
        var section = configuration.GetSection(name);
        if (!section.Exists())
        {
            return null;
        }

        try
        {
            return section.Get<T>(o => o.ErrorOnUnknownConfiguration = true);
        }
        catch (InvalidOperationException ex)
        {
            throw new ArgumentException($"the coordinator's configuration section '{name}' is not usable: {ex.Message}", ex);
        }
    }
}

/// <summary>Whether the coordinator has finished starting and is not stopping.</summary>
public sealed class ReadinessState
{
    private volatile bool _isReady;

    public bool IsReady
    {
        get => _isReady;
        set => _isReady = value;
    }
}

internal static class TimeProviderServiceCollectionExtensions
{
    public static void TryAddTimeProvider(this IServiceCollection services)
    {
        if (!services.Any(d => d.ServiceType == typeof(TimeProvider)))
        {
            services.AddSingleton(TimeProvider.System);
        }
    }
}
