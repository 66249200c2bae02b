using System.Diagnostics;
using System.Text.Json.Nodes;

namespace Emc.Tests.Shared;

/// <summary>
/// test/fixtures/openai_engine.py run as a real process on a free loopback port: the external engine
/// (an OpenAI-compatible server, as vLLM would be) that node and network tests pass requests through to.
/// Linked into each test project that needs it.
/// </summary>
public sealed class OpenAiEngineProcess : IAsyncDisposable
{
    private readonly Process _process;
    private readonly HttpClient _http;

    private OpenAiEngineProcess(Process process, int port, string? usageLog)
    {
        _process = process;
        Port = port;
        UsageLog = usageLog;
        BaseUrl = new Uri($"http://127.0.0.1:{port}/v1");
        _http = new HttpClient { Timeout = TimeSpan.FromSeconds(30) };
    }

    public int Port { get; }

    /// <summary>The engine's OpenAI base URL, http://127.0.0.1:PORT/v1.</summary>
    public Uri BaseUrl { get; }

    /// <summary>The file each answer's usage is appended to as a JSON line, when asked for.</summary>
    public string? UsageLog { get; }

    /// <summary>Starts the engine with the script's arguments (such as "--model", "tiny") and waits until it listens.</summary>
    public static async Task<OpenAiEngineProcess> StartAsync(bool logUsage = false, params string[] arguments)
    {
        var script = FindScript();
        var usageLog = logUsage ? Path.Combine(Path.GetTempPath(), $"emc-engine-usage-{Guid.NewGuid():N}.jsonl") : null;
        var start = new ProcessStartInfo(FindPython())
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        start.ArgumentList.Add("-u");
        start.ArgumentList.Add(script);
        start.ArgumentList.Add("--port");
        start.ArgumentList.Add("0");
        if (usageLog is not null)
        {
            start.ArgumentList.Add("--usage-log");
            start.ArgumentList.Add(usageLog);
        }

        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        var process = Process.Start(start) ?? throw new InvalidOperationException("python3 did not start");
        var errors = process.StandardError.ReadToEndAsync();
        var line = await process.StandardOutput.ReadLineAsync().WaitAsync(TimeSpan.FromSeconds(30));
        if (line is null || !line.StartsWith("listening on ", StringComparison.Ordinal))
        {
            process.Kill(entireProcessTree: true);
            throw new InvalidOperationException($"the engine fixture did not start: {line}\n{await errors}");
        }

        // Keep draining stdout so that the process never blocks on a full pipe.
        _ = process.StandardOutput.ReadToEndAsync();
        return new OpenAiEngineProcess(process, int.Parse(line["listening on ".Length..], System.Globalization.CultureInfo.InvariantCulture), usageLog);
    }

    /// <summary>The fixture's counters: requests, completed, disconnected, active.</summary>
    public async Task<JsonNode> StatsAsync() => JsonNode.Parse(await _http.GetStringAsync(new Uri($"http://127.0.0.1:{Port}/fixture/stats")))!;

    /// <summary>The usage of every answer so far, from the usage log.</summary>
    public async Task<IReadOnlyList<(long Prompt, long Completion)>> UsageAsync()
    {
        if (UsageLog is null || !File.Exists(UsageLog))
        {
            return [];
        }

        var lines = await File.ReadAllLinesAsync(UsageLog);
        return [.. lines.Where(l => l.Length > 0).Select(l => JsonNode.Parse(l)!).Select(n => ((long)n["prompt_tokens"]!, (long)n["completion_tokens"]!))];
    }

    /// <summary>Waits until <paramref name="condition"/> holds for the fixture's counters.</summary>
    public async Task WaitForStatsAsync(Func<JsonNode, bool> condition, TimeSpan timeout)
    {
        var watch = Stopwatch.StartNew();
        JsonNode stats;
        while (!condition(stats = await StatsAsync()))
        {
            if (watch.Elapsed > timeout)
            {
                throw new TimeoutException($"the engine's counters did not reach the expected state: {stats.ToJsonString()}");
            }

            await Task.Delay(50);
        }
    }

    public async ValueTask DisposeAsync()
    {
        _http.Dispose();
        try
        {
            _process.Kill(entireProcessTree: true);
            await _process.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(10));
        }
        catch (InvalidOperationException)
        {
            // It exited already.
        }

        _process.Dispose();
        if (UsageLog is not null)
        {
            File.Delete(UsageLog);
        }
    }

    private static string FindScript()
    {
        for (var directory = new DirectoryInfo(AppContext.BaseDirectory); directory is not null; directory = directory.Parent)
        {
            var candidate = Path.Combine(directory.FullName, "test", "fixtures", "openai_engine.py");
            if (File.Exists(candidate))
            {
                return candidate;
            }
        }

        throw new FileNotFoundException($"test/fixtures/openai_engine.py not found above {AppContext.BaseDirectory}");
    }

    /// <summary>python3 on the PATH (CI installs Debian's), or /usr/bin/python3.</summary>
    private static string FindPython()
    {
        foreach (var directory in (Environment.GetEnvironmentVariable("PATH") ?? "").Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries))
        {
            var candidate = Path.Combine(directory, "python3");
            if (File.Exists(candidate))
            {
                return candidate;
            }
        }

        return "/usr/bin/python3";
    }
}
