using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Emc.Coordinator.Accounts;

/// <summary>
/// The operator's credential, made at first start. With a key from configuration
/// (<see cref="AccessOptions.OperatorKey"/>) that key is registered for the operator and nothing is
/// written. Otherwise the key lives in <see cref="AccessOptions.OperatorKeyFile"/> (mode 0600): a valid
/// key there is reused; a key there that this database does not know yet (a fresh database) is adopted;
/// and when there is no file, or its key was revoked, a new key is made and written there. The key
/// itself is never logged, only where it is.
/// </summary>
public sealed partial class OperatorCredential(AccountStore accounts, IOptions<AccessOptions> options, ILogger<OperatorCredential> logger)
{
    private const string KeyName = "operator";

    /// <summary>Makes or checks the operator account and key; throws <see cref="OperatorKeyException"/> when a configured key cannot be used.</summary>
    public async Task EnsureAsync(CancellationToken cancellationToken)
    {
        await accounts.EnsureOperatorAccountAsync(cancellationToken);
        var settings = options.Value;
        if (!string.IsNullOrWhiteSpace(settings.OperatorKey))
        {
            var problem = await accounts.RegisterKeyAsync(AccountIds.Operator, settings.OperatorKey.Trim(), KeyName, cancellationToken);
            if (problem is not null)
            {
                throw new OperatorKeyException($"the operator key from configuration (EMC_OPERATOR_KEY) cannot be used: {problem}");
            }

            Log.Configured(logger);
            return;
        }

        var path = settings.OperatorKeyFile ?? throw new InvalidOperationException("No operator key file is configured.");
        if (File.Exists(path))
        {
            var key = (await File.ReadAllTextAsync(path, cancellationToken)).Trim();
            if (await accounts.IsValidKeyOfAsync(AccountIds.Operator, key, cancellationToken)
                || (ApiKeys.TryParse(key, out _) && await accounts.RegisterKeyAsync(AccountIds.Operator, key, KeyName, cancellationToken) is null))
            {
                if (!OperatingSystem.IsWindows())
                {
                    File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite);
                }

                Log.Reused(logger, path);
                return;
            }

            Log.Replacing(logger, path);
        }

        var created = await accounts.CreateKeyAsync(AccountIds.Operator, KeyName, cancellationToken)
            ?? throw new InvalidOperationException("The operator account vanished while its key was made.");
        await WriteKeyFileAsync(path, created.Key, cancellationToken);
        Log.Written(logger, path);
    }

    /// <summary>Writes <paramref name="key"/> to <paramref name="path"/> readable by its owner only, replacing the file whole.</summary>
    internal static async Task WriteKeyFileAsync(string path, string key, CancellationToken cancellationToken)
    {
        var directory = Path.GetDirectoryName(Path.GetFullPath(path))!;
        Directory.CreateDirectory(directory);
        var temp = Path.Combine(directory, $".{Path.GetFileName(path)}.{Guid.NewGuid():N}.tmp");
        try
        {
            var create = new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write };
            if (!OperatingSystem.IsWindows())
            {
                create.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
            }

            await using (var stream = new FileStream(temp, create))
            {
                await stream.WriteAsync(System.Text.Encoding.ASCII.GetBytes(key + "\n"), cancellationToken);
                await stream.FlushAsync(cancellationToken);
            }

            File.Move(temp, path, overwrite: true);
        }
        finally
        {
            File.Delete(temp);
        }
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 2600, Level = LogLevel.Information, Message = "Operator key written to {Path} (mode 0600); clients on this machine read it from there, others need it as EMC_API_KEY")]
        public static partial void Written(ILogger logger, string path);

        [LoggerMessage(EventId = 2601, Level = LogLevel.Information, Message = "Operator key: {Path}")]
        public static partial void Reused(ILogger logger, string path);

        [LoggerMessage(EventId = 2602, Level = LogLevel.Warning, Message = "The operator key in {Path} is revoked or not a key; a new one replaces it")]
        public static partial void Replacing(ILogger logger, string path);

        [LoggerMessage(EventId = 2603, Level = LogLevel.Information, Message = "Operator key taken from configuration (EMC_OPERATOR_KEY); no key file is written")]
        public static partial void Configured(ILogger logger);
    }
}

/// <summary>An operator key given by configuration that cannot be used (malformed, revoked, another account's).</summary>
public sealed class OperatorKeyException(string message) : InvalidOperationException(message);
