namespace Emc.Coordinator.Hosting;

/// <summary>Where the coordinator keeps its state and listens.</summary>
public sealed class CoordinatorOptions
{
    /// <summary>The API address (REST, health, metrics). Default http://127.0.0.1:7070.</summary>
    public const string DefaultUrls = "http://127.0.0.1:7070";

    /// <summary>The node gateway (gRPC over cleartext HTTP/2). Default http://127.0.0.1:7071.</summary>
    public const string DefaultGrpcUrls = "http://127.0.0.1:7071";

    /// <summary>Folder of the SQLite database and the endpoints file. Default ~/.emc/coordinator.</summary>
    public string DataDirectory { get; set; } = Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".emc", "coordinator");

    /// <summary>
    /// Semicolon-separated http:// addresses of the API. Port 0 picks a free port. Cleartext HTTP/1.1
    /// and HTTP/2 cannot share a port without TLS, which is why the gateway has its own.
    /// </summary>
    public string Urls { get; set; } = DefaultUrls;

    /// <summary>Semicolon-separated http:// addresses of the node gateway; port 0 picks a free port.</summary>
    public string GrpcUrls { get; set; } = DefaultGrpcUrls;

    /// <summary>
    /// The gateway address nodes are told to use, when it differs from <see cref="GrpcUrls"/> (behind a
    /// proxy or NAT). Default: the first gateway address as bound, with a wildcard host replaced by the
    /// host the node used to reach the API.
    /// </summary>
    public string? AdvertisedGrpcUrl { get; set; }

    /// <summary>How the scheduler ranks nodes that fit a task: "spread" (default) or "pack".</summary>
    public string PlacementPolicy { get; set; } = "spread";

    /// <summary>
    /// Where the operator's API key is kept: written (mode 0600) at first start, read at later ones.
    /// Default <c>{DataDirectory}/operator.key</c>.
    /// </summary>
    public string? OperatorKeyFile { get; set; }

    /// <summary>
    /// The operator's API key, from configuration (<c>EMC_OPERATOR_KEY</c>), for deployments that keep it
    /// in a secret store; then no key file is written. Default none.
    /// </summary>
    public string? OperatorKey { get; set; }

    /// <summary>Orleans silo-to-silo port. Default 0: a free port (one silo on loopback).</summary>
    public int SiloPort { get; set; }
}
