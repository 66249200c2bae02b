using Emc.Client;
using Emc.Coordinator.Hosting;
using Emc.Coordinator.Registry;
using Emc.Core.Registry;
using Grpc.Net.Client;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Emc.Coordinator.Tests.Infrastructure;

/// <summary>
/// A real coordinator in this process on free loopback ports, with its own data folder. <see cref="Api"/>
/// and <see cref="Http"/> carry the operator key it made at start; <see cref="CreateUserAsync"/> makes
/// user accounts with keys of their own.
/// </summary>
public sealed class TestCoordinator : IAsyncDisposable
{
    private readonly bool _ownsDirectory;

    private TestCoordinator(CoordinatorHost host, string dataDirectory, bool ownsDirectory)
    {
        Host = host;
        DataDirectory = dataDirectory;
        _ownsDirectory = ownsDirectory;
        OperatorKey = File.ReadAllText(Path.Combine(dataDirectory, "operator.key")).Trim();
        Api = EmcApiClient.Create(host.Endpoints.ApiUrl, apiKey: OperatorKey);
        Http = Bearer.Client(host.Endpoints.ApiUrl, OperatorKey);
        Channel = GrpcChannel.ForAddress(host.Endpoints.GrpcUrl);
    }

    public CoordinatorHost Host { get; }

    public string DataDirectory { get; }

    /// <summary>The operator's API key, from the key file the coordinator wrote at start.</summary>
    public string OperatorKey { get; }

    /// <summary>The typed client, with the operator key.</summary>
    public EmcApiClient Api { get; }

    /// <summary>A plain HTTP client of the API port, with the operator key.</summary>
    public HttpClient Http { get; }

    /// <summary>The node gateway (no key: nodes prove themselves on the stream).</summary>
    public GrpcChannel Channel { get; }

    /// <summary>Makes a user account through the API; its clients carry its first key.</summary>
    public async Task<TestUser> CreateUserAsync(string name, long funds = TestUser.Funds)
    {
        var created = await Api.CreateAccountAsync(name, CancellationToken.None);
        if (funds > 0)
        {
            await Api.FundAsync(created.Account.Id, funds, $"test-funds-{created.Account.Id}", CancellationToken.None);
        }

        return new TestUser(created.Account.Id, created.Key.Key, created.Key.Id, EmcApiClient.Create(Host.Endpoints.ApiUrl, apiKey: created.Key.Key), Bearer.Client(Host.Endpoints.ApiUrl, created.Key.Key));
    }

    /// <summary>Liveness settings fast enough for tests.</summary>
    public static void FastLiveness(RegistryOptions options)
    {
        options.HeartbeatInterval = TimeSpan.FromMilliseconds(200);
        // Long enough that a loaded CI machine does not miss beats, short enough to test quickly.
        options.HeartbeatTimeout = TimeSpan.FromSeconds(2);
        options.LivenessCheckPeriod = TimeSpan.FromMilliseconds(100);
        options.FlushInterval = TimeSpan.FromMilliseconds(20);
    }

    public static async Task<TestCoordinator> StartAsync(string? dataDirectory = null, Action<RegistryOptions>? registry = null, Action<IServiceCollection>? services = null)
    {
        var owns = dataDirectory is null;
        dataDirectory ??= Directory.CreateTempSubdirectory("emc-coord-test-").FullName;
        var host = CoordinatorHost.Create(
            new CoordinatorOptions { DataDirectory = dataDirectory, Urls = "http://127.0.0.1:0", GrpcUrls = "http://127.0.0.1:0" },
            collection =>
            {
                collection.Configure(registry ?? FastLiveness);
                services?.Invoke(collection);
            },
            logging => logging.SetMinimumLevel(LogLevel.Warning));
        await host.StartAsync(CancellationToken.None);
        return new TestCoordinator(host, dataDirectory, owns);
    }

    /// <summary>Polls the API until <paramref name="condition"/> holds for the node, or fails after <paramref name="timeout"/>.</summary>
    public async Task<NodeView> WaitForNodeAsync(string id, Func<NodeView, bool> condition, TimeSpan timeout)
    {
        using var deadline = new CancellationTokenSource(timeout);
        NodeView? last = null;
        while (!deadline.IsCancellationRequested)
        {
            try
            {
                last = await Api.GetNodeAsync(id, deadline.Token);
                if (condition(last))
                {
                    return last;
                }
            }
            catch (EmcApiException ex) when (ex.Status == System.Net.HttpStatusCode.NotFound)
            {
                // Not written yet.
            }
            catch (OperationCanceledException)
            {
                break;
            }

            await Task.Delay(20, CancellationToken.None);
        }

        throw new TimeoutException($"Node {id} did not reach the expected state within {timeout}; last seen as {last?.Status.ToString() ?? "absent"}.");
    }

    public async ValueTask DisposeAsync()
    {
        Channel.Dispose();
        Http.Dispose();
        await Host.StopAsync(CancellationToken.None);
        await Host.DisposeAsync();
        if (_ownsDirectory)
        {
            Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
            Directory.Delete(DataDirectory, recursive: true);
        }
    }
}

/// <summary>One coordinator shared by the tests of a collection; each test uses its own node keys.</summary>
public sealed class CoordinatorFixture : IAsyncLifetime
{
    public TestCoordinator Coordinator { get; private set; } = null!;

    public async Task InitializeAsync() => Coordinator = await TestCoordinator.StartAsync();

    public async Task DisposeAsync() => await Coordinator.DisposeAsync();
}

[CollectionDefinition(Name)]
public sealed class CoordinatorCollection : ICollectionFixture<CoordinatorFixture>
{
    public const string Name = "coordinator";
}
