using System.Collections.Concurrent;
using System.Diagnostics;
using System.Reflection;
using System.Runtime.InteropServices;

namespace Emc.IntegrationTests.Infrastructure;

/// <summary>A real `emc` process, as a user would start it, with its output captured line by line.</summary>
public sealed partial class EmcProcess : IAsyncDisposable
{
    private static readonly string CliPath = typeof(EmcProcess).Assembly
        .GetCustomAttributes<AssemblyMetadataAttribute>()
        .Single(a => a.Key == "EmcCliPath").Value!;

    private readonly ConcurrentQueue<string> _lines = new();
    private readonly List<(Func<string, bool> Match, TaskCompletionSource<string> Found)> _waiters = [];

    private EmcProcess(Process process, string description)
    {
        Process = process;
        Description = description;
    }

    public Process Process { get; }

    public string Description { get; }

    public string Output => string.Join('\n', _lines);

    /// <summary>
    /// The operator key of every coordinator these tests start (given as EMC_OPERATOR_KEY), and the key
    /// every client command sends (EMC_API_KEY), unless a test says otherwise.
    /// </summary>
    public static readonly string OperatorKey = NewKey();

    /// <summary>A fresh key in EMC's form (emc_ID_SECRET), as a deployment's secret store would hold.</summary>
    public static string NewKey() =>
        $"emc_{Convert.ToHexStringLower(System.Security.Cryptography.RandomNumberGenerator.GetBytes(6))}_"
        + Convert.ToBase64String(System.Security.Cryptography.RandomNumberGenerator.GetBytes(32)).TrimEnd('=').Replace('+', '-').Replace('/', '_');

    public static EmcProcess Start(params string[] arguments) => Start(null, arguments);

    /// <summary>
    /// Starts `emc` with <paramref name="arguments"/>; <paramref name="environment"/> sets (or, with a null
    /// value, removes) variables on top of the defaults (the test operator key as EMC_OPERATOR_KEY and EMC_API_KEY).
    /// </summary>
    public static EmcProcess Start(IReadOnlyDictionary<string, string?>? environment, params string[] arguments)
    {
        if (!File.Exists(CliPath))
        {
            throw new FileNotFoundException($"The emc program is not built at {CliPath}.");
        }

        var info = new ProcessStartInfo("dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
        };
        info.Environment["EMC_OPERATOR_KEY"] = OperatorKey;
        info.Environment["EMC_API_KEY"] = OperatorKey;
        foreach (var (name, value) in environment ?? new Dictionary<string, string?>())
        {
            if (value is null)
            {
                info.Environment.Remove(name);
            }
            else
            {
                info.Environment[name] = value;
            }
        }

        info.ArgumentList.Add(CliPath);
        foreach (var argument in arguments)
        {
            info.ArgumentList.Add(argument);
        }

        var process = new Process { StartInfo = info, EnableRaisingEvents = true };
        var result = new EmcProcess(process, "emc " + string.Join(' ', arguments));
        process.OutputDataReceived += (_, e) => result.OnLine(e.Data);
        process.ErrorDataReceived += (_, e) => result.OnLine(e.Data);
        process.Start();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return result;
    }

    /// <summary>Runs a command to completion and returns its exit code and output.</summary>
    public static Task<(int ExitCode, string Output)> RunAsync(TimeSpan timeout, params string[] arguments) => RunAsync(null, timeout, arguments);

    /// <summary>Runs a command to completion, with <paramref name="environment"/> as in <see cref="Start(IReadOnlyDictionary{string, string?}?, string[])"/>.</summary>
    public static async Task<(int ExitCode, string Output)> RunAsync(IReadOnlyDictionary<string, string?>? environment, TimeSpan timeout, params string[] arguments)
    {
        await using var process = Start(environment, arguments);
        using var cancel = new CancellationTokenSource(timeout);
        await process.Process.WaitForExitAsync(cancel.Token);
        process.Process.WaitForExit(); // drains the output events
        return (process.Process.ExitCode, process.Output);
    }

    /// <summary>Waits for an output line that matches, and returns it.</summary>
    public async Task<string> WaitForLineAsync(Func<string, bool> match, TimeSpan timeout)
    {
        var found = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
        lock (_waiters)
        {
            var existing = _lines.FirstOrDefault(match);
            if (existing is not null)
            {
                return existing;
            }

            _waiters.Add((match, found));
        }

        var exited = Process.WaitForExitAsync();
        var winner = await Task.WhenAny(found.Task, exited, Task.Delay(timeout));
        if (winner == found.Task)
        {
            return await found.Task;
        }

        throw new TimeoutException(
            $"{Description}: {(winner == exited ? $"exited with code {Process.ExitCode}" : $"no matching line within {timeout}")}. Output:\n{Output}");
    }

    /// <summary>SIGTERM: a clean stop.</summary>
    public void Terminate() => _ = Kill(Process.Id, 15);

    /// <summary>SIGKILL: the process dies at once, with no chance to say goodbye.</summary>
    public void KillHard() => Process.Kill(entireProcessTree: false);

    /// <summary>SIGSTOP: the process freezes with its connections open, as a hung machine would.</summary>
    public void Freeze() => _ = Kill(Process.Id, 19);

    /// <summary>SIGCONT: a frozen process runs on.</summary>
    public void Thaw() => _ = Kill(Process.Id, 18);

    public async Task<int> WaitForExitAsync(TimeSpan timeout)
    {
        using var cancel = new CancellationTokenSource(timeout);
        await Process.WaitForExitAsync(cancel.Token);
        Process.WaitForExit(); // the parameterless wait also drains the redirected output events
        return Process.ExitCode;
    }

    public async ValueTask DisposeAsync()
    {
        if (!Process.HasExited)
        {
            Terminate();
            try
            {
                await WaitForExitAsync(TimeSpan.FromSeconds(20));
            }
            catch (OperationCanceledException)
            {
                Process.Kill(entireProcessTree: true);
                await Process.WaitForExitAsync();
            }
        }

        Process.Dispose();
    }

    private void OnLine(string? line)
    {
        if (line is null)
        {
            return;
        }

        lock (_waiters)
        {
            _lines.Enqueue(line);
            foreach (var waiter in _waiters.Where(w => w.Match(line)).ToList())
            {
                _waiters.Remove(waiter);
                waiter.Found.TrySetResult(line);
            }
        }
    }

    [LibraryImport("libc", EntryPoint = "kill")]
    private static partial int Kill(int pid, int signal);
}
