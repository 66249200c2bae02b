using System.Net;
using System.Net.Sockets;

namespace Emc.Coordinator.Hosting;

/// <summary>The addresses the coordinator listens on, resolved at start (port 0 made concrete).</summary>
public sealed class CoordinatorEndpoints
{
    internal CoordinatorEndpoints(IReadOnlyList<Uri> api, IReadOnlyList<Uri> grpc, string? advertisedGrpcUrl)
    {
        Api = api;
        Grpc = grpc;
        _advertised = advertisedGrpcUrl is null ? null : new Uri(advertisedGrpcUrl);
    }

    private readonly Uri? _advertised;

    public IReadOnlyList<Uri> Api { get; }

    public IReadOnlyList<Uri> Grpc { get; }

    public Uri ApiUrl => Api[0];

    public Uri GrpcUrl => Grpc[0];

    public DateTimeOffset StartedAt { get; internal set; }

    /// <summary>The gateway address to give a node that reached the API through <paramref name="requestHost"/>.</summary>
    public Uri AdvertisedGrpcUrl(string requestHost)
    {
        if (_advertised is not null)
        {
            return _advertised;
        }

        var grpc = GrpcUrl;
        if (grpc.Host is "0.0.0.0" or "[::]" or "::" && !string.IsNullOrEmpty(requestHost))
        {
            return new UriBuilder(grpc) { Host = requestHost }.Uri;
        }

        return grpc;
    }

    /// <summary>Parses a semicolon-separated list of http:// URLs; port 0 becomes a free port now.</summary>
    internal static IReadOnlyList<Uri> Resolve(string urls, string what)
    {
        var result = new List<Uri>();
        foreach (var part in urls.Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            if (!Uri.TryCreate(part, UriKind.Absolute, out var uri) || uri.Scheme != Uri.UriSchemeHttp || uri.AbsolutePath != "/")
            {
                throw new ArgumentException($"{what} address '{part}' must be http://HOST:PORT (put TLS in front with a reverse proxy).");
            }

            result.Add(uri.Port == 0 ? new UriBuilder(uri) { Port = FreePort(uri.Host) }.Uri : uri);
        }

        return result.Count > 0 ? result : throw new ArgumentException($"No {what} address given.");
    }

    internal static IPEndPoint ToEndPoint(Uri uri)
    {
        var host = uri.Host.Trim('[', ']');
        var address = host switch
        {
            "localhost" => IPAddress.Loopback,
            "0.0.0.0" or "*" or "+" => IPAddress.Any,
            "::" => IPAddress.IPv6Any,
            _ => IPAddress.TryParse(host, out var parsed)
                ? parsed
                : throw new ArgumentException($"'{uri.Host}' is not an IP address to listen on; use an address such as 127.0.0.1 or 0.0.0.0."),
        };
        return new IPEndPoint(address, uri.Port);
    }

    /// <summary>
    /// A port that is free on <paramref name="host"/> now, for a listener that binds it a moment later. It
    /// is taken below the kernel's ephemeral range where that range is known (Linux): a port the kernel
    /// hands out may be given to an outgoing connection in that moment, which made a busy machine's
    /// listener fail now and then with "address already in use". Elsewhere, or when no port there is
    /// free, the kernel picks one.
    /// </summary>
    private static int FreePort(string host)
    {
        var address = ToEndPoint(new UriBuilder("http", host, 1).Uri).Address;
        var lowest = EphemeralRangeStart();
        if (lowest > FirstPrivatePort)
        {
            for (var attempt = 0; attempt < 64; attempt++)
            {
                var port = Random.Shared.Next(FirstPrivatePort, lowest);
                try
                {
                    using var probe = new TcpListener(address, port);
                    probe.Start();
                    return port;
                }
                catch (SocketException)
                {
                    // Taken: try another.
                }
            }
        }

        using var listener = new TcpListener(address, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    /// <summary>The lowest port chosen outside the ephemeral range.</summary>
    private const int FirstPrivatePort = 20000;

    /// <summary>The first port of the kernel's ephemeral range, or 0 where it cannot be read.</summary>
    private static int EphemeralRangeStart()
    {
        try
        {
            var text = File.ReadAllText("/proc/sys/net/ipv4/ip_local_port_range");
            var first = text.Split(['\t', ' ', '\n'], StringSplitOptions.RemoveEmptyEntries)[0];
            return int.TryParse(first, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var port) ? port : 0;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or IndexOutOfRangeException)
        {
            return 0;
        }
    }

    internal static int FreeLoopbackPort() => FreePort("127.0.0.1");
}
