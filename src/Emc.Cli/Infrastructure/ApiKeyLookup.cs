using System.CommandLine;
using System.Net;
using System.Text.Json;
using Emc.Client;

namespace Emc.Cli.Infrastructure;

/// <summary>
/// Where a client command finds its API key, in this order: <c>--api-key</c>, the <c>EMC_API_KEY</c>
/// environment variable, and, for a coordinator on this machine (loopback), the operator key file that a
/// coordinator started with the default data folder wrote (<c>emc up</c>'s or <c>emc coordinator</c>'s).
/// </summary>
internal static class ApiKeyLookup
{
    public const string EnvironmentVariable = "EMC_API_KEY";

    /// <summary>What a command that was refused for want of a key is told.</summary>
    public static string Hint(string? source) => source is null
        ? "No API key was found: pass --api-key KEY, set EMC_API_KEY, or, for a coordinator on this machine, start it with its default data folder so that its operator key file (~/.emc/up/coordinator/operator.key or ~/.emc/coordinator/operator.key) is read"
        : $"The API key from {source} was refused: check it, or pass another with --api-key KEY or EMC_API_KEY";

    /// <summary>The key and where it came from; (null, null) when none is found.</summary>
    public static (string? Key, string? Source) Find(string? option, Uri coordinator, string? home = null)
    {
        ArgumentNullException.ThrowIfNull(coordinator);
        if (!string.IsNullOrWhiteSpace(option))
        {
            return (option.Trim(), "--api-key");
        }

        if (Environment.GetEnvironmentVariable(EnvironmentVariable) is { Length: > 0 } fromEnvironment && !string.IsNullOrWhiteSpace(fromEnvironment))
        {
            return (fromEnvironment.Trim(), EnvironmentVariable);
        }

        if (!IsLoopback(coordinator))
        {
            return (null, null);
        }

        // The key file of the default data folder whose coordinator listens on this port; else any that exists.
        home ??= Environment.GetFolderPath(Environment.SpecialFolder.UserProfile);
        var folders = new[] { Path.Combine(home, ".emc", "up", "coordinator"), Path.Combine(home, ".emc", "coordinator") };
        var candidates = folders.Where(f => File.Exists(Path.Combine(f, "operator.key"))).ToList();
        var chosen = candidates.FirstOrDefault(f => ListensOn(f, coordinator.Port)) ?? candidates.FirstOrDefault();
        if (chosen is null)
        {
            return (null, null);
        }

        var file = Path.Combine(chosen, "operator.key");
        try
        {
            var key = File.ReadAllText(file).Trim();
            return key.Length == 0 ? (null, null) : (key, file);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return (null, null);
        }
    }

    /// <summary>A client of the command's coordinator (its --coordinator option) with the key found.</summary>
    public static EmcApiClient Client(ParseResult result, Option<Uri> coordinator, TimeSpan? timeout = null)
    {
        ArgumentNullException.ThrowIfNull(result);
        var uri = result.GetValue(coordinator)!;
        return Client(uri, result.GetValue(CommonOptions.ApiKey), timeout);
    }

    /// <summary>A client of <paramref name="coordinator"/> with the key found (<paramref name="option"/> first).</summary>
    public static EmcApiClient Client(Uri coordinator, string? option, TimeSpan? timeout = null)
    {
        var (key, source) = Find(option, coordinator);
        var client = EmcApiClient.Create(coordinator, timeout, key);
        client.UnauthorizedHint = Hint(source);
        return client;
    }

    private static bool IsLoopback(Uri uri) =>
        uri.IsLoopback || (IPAddress.TryParse(uri.Host.Trim('[', ']'), out var address) && IPAddress.IsLoopback(address));

    private static bool ListensOn(string folder, int port)
    {
        try
        {
            using var document = JsonDocument.Parse(File.ReadAllText(Path.Combine(folder, "endpoints.json")));
            return document.RootElement.TryGetProperty("api", out var api)
                && Uri.TryCreate(api.GetString(), UriKind.Absolute, out var bound)
                && bound.Port == port;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or JsonException)
        {
            return false;
        }
    }
}
