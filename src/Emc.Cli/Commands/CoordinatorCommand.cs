using System.CommandLine;
using Emc.Cli.Infrastructure;
using Emc.Coordinator.Hosting;

namespace Emc.Cli.Commands;

/// <summary>`emc coordinator`: runs the protocol — registry, gateway, API — until stopped.</summary>
internal static class CoordinatorCommand
{
    public static Command Create()
    {
        var data = new Option<string>("--data") { Description = "Data folder (SQLite database). Default ~/.emc/coordinator.", DefaultValueFactory = _ => CommonOptions.Home("coordinator") };
        var urls = new Option<string>("--urls") { Description = $"API addresses, ';'-separated (REST, /healthz, /readyz, /metrics). Default {CoordinatorOptions.DefaultUrls}.", DefaultValueFactory = _ => CoordinatorOptions.DefaultUrls };
        var grpcUrls = new Option<string>("--grpc-urls") { Description = $"Node gateway addresses (gRPC, cleartext HTTP/2). Default {CoordinatorOptions.DefaultGrpcUrls}.", DefaultValueFactory = _ => CoordinatorOptions.DefaultGrpcUrls };
        var advertise = new Option<string?>("--advertise-grpc") { Description = "Gateway address to give nodes when it differs from --grpc-urls (behind NAT or a proxy)." };
        var policy = new Option<string>("--placement-policy") { Description = "How the scheduler ranks fitting nodes: spread (default) or pack.", DefaultValueFactory = _ => "spread" };
        var keyFile = new Option<string?>("--operator-key-file")
        {
            Description = "Where the operator's API key is kept: written (mode 0600) at first start, read later. Default DATA/operator.key. "
                + "EMC_OPERATOR_KEY instead gives the key itself (from a secret store) and no file is written.",
        };
        var command = new Command("coordinator", "Run a coordinator: node registry and gateway, scheduler, REST API, metrics.") { data, urls, grpcUrls, advertise, policy, keyFile };
        command.SetAction(async (result, cancellationToken) =>
        {
            var options = new CoordinatorOptions
            {
                DataDirectory = Path.GetFullPath(result.GetValue(data)!),
                Urls = result.GetValue(urls)!,
                GrpcUrls = result.GetValue(grpcUrls)!,
                AdvertisedGrpcUrl = result.GetValue(advertise),
                PlacementPolicy = result.GetValue(policy)!,
                OperatorKeyFile = result.GetValue(keyFile) is { Length: > 0 } file ? Path.GetFullPath(file) : null,
                OperatorKey = Environment.GetEnvironmentVariable("EMC_OPERATOR_KEY") is { Length: > 0 } key ? key : null,
            };

            CoordinatorHost host;
            try
            {
                host = CoordinatorHost.Create(options);
            }
            catch (ArgumentException ex)
            {
                await Console.Error.WriteLineAsync($"emc coordinator: {ex.Message}");
                return 2;
            }

            await using (host)
            {
                try
                {
                    await host.StartAsync(cancellationToken);
                }
                catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
                {
                    await Console.Error.WriteLineAsync($"emc coordinator: could not start: {ex.Message}");
                    return 1;
                }
                catch (Emc.Coordinator.Accounts.OperatorKeyException ex)
                {
                    await Console.Error.WriteLineAsync($"emc coordinator: {ex.Message}");
                    return 2;
                }

                Console.WriteLine($"EMC coordinator ready: api={host.Endpoints.ApiUrl} grpc={host.Endpoints.GrpcUrl} data={options.DataDirectory}");
                await host.WaitForShutdownAsync(CancellationToken.None);
                Console.WriteLine("EMC coordinator stopped.");
            }

            return 0;
        });
        return command;
    }
}
