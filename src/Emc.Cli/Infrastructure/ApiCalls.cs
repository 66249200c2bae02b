using Emc.Client;

namespace Emc.Cli.Infrastructure;

/// <summary>Shared handling of API errors for client commands.</summary>
internal static class ApiCalls
{
    public static async Task<int> CallAsync(string name, Func<Task> call)
    {
        try
        {
            await call();
            return 0;
        }
        catch (EmcApiException ex)
        {
            await Console.Error.WriteLineAsync($"emc {name}: {ex.Message}");
            return 1;
        }
    }
}
