using System.CommandLine;

namespace Emc.Cli.Infrastructure;

/// <summary>Options shared by several commands.</summary>
internal static class CommonOptions
{
    /// <summary>The default coordinator address for client commands.</summary>
    public static string DefaultCoordinator =>
        Environment.GetEnvironmentVariable("EMC_COORDINATOR") is { Length: > 0 } fromEnvironment ? fromEnvironment : "http://127.0.0.1:7070";

    public static Option<Uri> Coordinator() => new("--coordinator")
    {
        Description = "Coordinator API address (default: EMC_COORDINATOR or http://127.0.0.1:7070).",
        DefaultValueFactory = _ => new Uri(DefaultCoordinator),
        CustomParser = result =>
        {
            var text = result.Tokens.Count > 0 ? result.Tokens[0].Value : DefaultCoordinator;
            if (Uri.TryCreate(text, UriKind.Absolute, out var uri) && (uri.Scheme == Uri.UriSchemeHttp || uri.Scheme == Uri.UriSchemeHttps))
            {
                return new Uri(uri.GetLeftPart(UriPartial.Authority) + "/");
            }

            result.AddError($"'{text}' is not an http:// or https:// address.");
            return null;
        },
    };

    /// <summary>The API key of client commands; one option for every command (see <see cref="ApiKeyLookup"/>).</summary>
    public static readonly Option<string?> ApiKey = new("--api-key")
    {
        Description = "API key for the coordinator (default: EMC_API_KEY, or for a local coordinator the operator key file of its default data folder).",
        Recursive = true,
    };

    public static Option<bool> Json() => new("--json") { Description = "Print JSON instead of a table." };

    public static string Home(params string[] parts) =>
        Path.Combine([Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".emc", .. parts]);
}
