using System.Runtime.InteropServices;

namespace Emc.Cli.Infrastructure;

/// <summary>Turns SIGINT and SIGTERM into a cancellation, and sends SIGTERM to child processes.</summary>
internal static partial class Signals
{
    /// <summary>A token cancelled at the first SIGINT or SIGTERM; the process keeps running to clean up.</summary>
    public static (CancellationTokenSource Source, IDisposable Registrations) OnTermination()
    {
        var source = new CancellationTokenSource();
        var registrations = new[] { PosixSignal.SIGINT, PosixSignal.SIGTERM }
            .Select(signal => PosixSignalRegistration.Create(signal, context =>
            {
                context.Cancel = true;
                source.Cancel();
            }))
            .ToList();
        return (source, new Registrations(registrations));
    }

    /// <summary>Asks a process to stop cleanly (SIGTERM); .NET's Process.Kill only sends SIGKILL.</summary>
    public static void Terminate(int pid)
    {
        if (OperatingSystem.IsWindows())
        {
            return;
        }

        _ = Kill(pid, 15);
    }

    [LibraryImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static partial int Kill(int pid, int signal);

    private sealed class Registrations(List<PosixSignalRegistration> items) : IDisposable
    {
        public void Dispose()
        {
            foreach (var item in items)
            {
                item.Dispose();
            }
        }
    }
}
