using System.Collections.Concurrent;
using System.Net;
using Emc.Client;
using Emc.Coordinator.Accounts;
using Emc.Coordinator.Hosting;
using Emc.Coordinator.Tests.Infrastructure;
using Microsoft.Extensions.Logging;

namespace Emc.Coordinator.Tests.Accounts;

/// <summary>The operator credential made at first start: a key file of mode 0600, reused, or a key from configuration.</summary>
[System.Runtime.Versioning.SupportedOSPlatform("linux")]
public sealed class OperatorKeyTests
{
    private static readonly CancellationToken None = CancellationToken.None;

    [Fact]
    public async Task FirstStart_WritesTheKeyFileOnce_RestartsReuseIt_LogsSayWhereNotWhat()
    {
        var data = Directory.CreateTempSubdirectory("emc-opkey-").FullName;
        try
        {
            var logs = new LogLines();
            string key;
            await using (var first = await StartAsync(data, logs))
            {
                var file = Path.Combine(data, "operator.key");
                Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(file));
                key = (await File.ReadAllTextAsync(file)).Trim();
                Assert.True(ApiKeys.TryParse(key, out _));
                Assert.Equal("operator", (await Client(first, key).GetAccountAsync("me", None)).Role);
                Assert.Contains(logs.Lines, l => l.Contains(file, StringComparison.Ordinal) && l.Contains("written", StringComparison.Ordinal));
            }

            await using (var again = await StartAsync(data, logs))
            {
                Assert.Equal(key, (await File.ReadAllTextAsync(Path.Combine(data, "operator.key"))).Trim());
                Assert.Single(await Client(again, key).GetKeysAsync("me", None));
            }

            Assert.DoesNotContain(logs.Lines, l => l.Contains(key[(4 + ApiKeys.IdLength + 1)..], StringComparison.Ordinal));
        }
        finally
        {
            Delete(data);
        }
    }

    [Fact]
    public async Task KeyFileRevokedOrDeleted_RestartMakesANewOne()
    {
        var data = Directory.CreateTempSubdirectory("emc-opkey-").FullName;
        var file = Path.Combine(data, "operator.key");
        try
        {
            string first;
            await using (var coordinator = await StartAsync(data))
            {
                first = (await File.ReadAllTextAsync(file)).Trim();
                Assert.True(ApiKeys.TryParse(first, out var id));
                await Client(coordinator, first).RevokeKeyAsync("me", id!, None);
            }

            string second;
            await using (var coordinator = await StartAsync(data))
            {
                second = (await File.ReadAllTextAsync(file)).Trim();
                Assert.NotEqual(first, second);
                Assert.Equal("operator", (await Client(coordinator, second).GetAccountAsync("me", None)).Id);
                var refused = await Assert.ThrowsAsync<EmcApiException>(() => Client(coordinator, first).GetAccountAsync("me", None));
                Assert.Equal(HttpStatusCode.Unauthorized, refused.Status);
            }

            File.Delete(file);
            await using (var coordinator = await StartAsync(data))
            {
                var third = (await File.ReadAllTextAsync(file)).Trim();
                Assert.NotEqual(second, third);
                Assert.Equal("operator", (await Client(coordinator, third).GetAccountAsync("me", None)).Id);
                Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(file));
            }
        }
        finally
        {
            Delete(data);
        }
    }

    [Fact]
    public async Task ConfiguredKeyOrFile_UsedAsGiven_ABadOneStopsTheStart()
    {
        var data = Directory.CreateTempSubdirectory("emc-opkey-").FullName;
        try
        {
            var (_, key) = ApiKeys.Create();
            await using (var coordinator = await StartAsync(data, options: o => o.OperatorKey = key))
            {
                Assert.Equal("operator", (await Client(coordinator, key).GetAccountAsync("me", None)).Id);
                Assert.False(File.Exists(Path.Combine(data, "operator.key")));
            }

            var elsewhere = Path.Combine(data, "secrets", "op.key");
            await using (var coordinator = await StartAsync(data, options: o => o.OperatorKeyFile = elsewhere))
            {
                var written = (await File.ReadAllTextAsync(elsewhere)).Trim();
                Assert.Equal("operator", (await Client(coordinator, written).GetAccountAsync("me", None)).Id);
            }

            var host = CoordinatorHost.Create(Options(data, o => o.OperatorKey = "not-a-key"), logging: l => l.SetMinimumLevel(LogLevel.Warning));
            await using (host)
            {
                var error = await Assert.ThrowsAsync<OperatorKeyException>(() => host.StartAsync(None));
                Assert.Contains("EMC_OPERATOR_KEY", error.Message, StringComparison.Ordinal);
            }
        }
        finally
        {
            Delete(data);
        }
    }

    private static EmcApiClient Client(Started coordinator, string key) => EmcApiClient.Create(coordinator.Host.Endpoints.ApiUrl, apiKey: key);

    private static CoordinatorOptions Options(string data, Action<CoordinatorOptions>? options)
    {
        var result = new CoordinatorOptions { DataDirectory = data, Urls = "http://127.0.0.1:0", GrpcUrls = "http://127.0.0.1:0" };
        options?.Invoke(result);
        return result;
    }

    private static async Task<Started> StartAsync(string data, LogLines? logs = null, Action<CoordinatorOptions>? options = null)
    {
        var host = CoordinatorHost.Create(Options(data, options), logging: l =>
        {
            l.SetMinimumLevel(LogLevel.Information);
            if (logs is not null)
            {
                l.AddProvider(logs);
            }
        });
        await host.StartAsync(None);
        return new Started(host);
    }

    private static void Delete(string data)
    {
        Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
        Directory.Delete(data, recursive: true);
    }

    private sealed class Started(CoordinatorHost host) : IAsyncDisposable
    {
        public CoordinatorHost Host { get; } = host;

        public async ValueTask DisposeAsync()
        {
            await Host.StopAsync(None);
            await Host.DisposeAsync();
        }
    }

    /// <summary>Every line logged, to check what the coordinator says and does not say.</summary>
    private sealed class LogLines : ILoggerProvider
    {
        private readonly ConcurrentQueue<string> _lines = new();

        public IReadOnlyCollection<string> Lines => _lines;

        public ILogger CreateLogger(string categoryName) => new Logger(_lines);

        public void Dispose()
        {
        }

        private sealed class Logger(ConcurrentQueue<string> lines) : ILogger
        {
            public IDisposable? BeginScope<TState>(TState state)
                where TState : notnull => null;

            public bool IsEnabled(LogLevel logLevel) => true;

            public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
                lines.Enqueue(formatter(state, exception));
        }
    }
}
