using System.Runtime.InteropServices;

namespace Emc.Node.Inference;

/// <summary>
/// Sleeps for less than a millisecond. .NET's timers and waits count whole milliseconds, and a timer's
/// callback then waits for a thread-pool thread, so a 500 µs batching delay used to cost about 3 ms on
/// a busy machine. On Linux <c>nanosleep</c> wakes within tens of microseconds of the asked time.
/// </summary>
internal static partial class PreciseSleep
{
    /// <summary>Delays shorter than this are slept on a thread; longer ones use a timer.</summary>
    public static readonly TimeSpan Threshold = TimeSpan.FromMilliseconds(2);

    /// <summary>Whether this platform can sleep precisely.</summary>
    public static bool IsSupported { get; } = OperatingSystem.IsLinux();

    /// <summary>Blocks the calling thread for <paramref name="duration"/> (at most <see cref="Threshold"/>).</summary>
    public static void Sleep(TimeSpan duration)
    {
        if (duration <= TimeSpan.Zero)
        {
            return;
        }

        var nanoseconds = Math.Min(duration.Ticks, Threshold.Ticks) * 100;
        var request = new TimeSpec { Seconds = nanoseconds / 1_000_000_000, Nanoseconds = nanoseconds % 1_000_000_000 };
        _ = NanoSleep(ref request, IntPtr.Zero);
    }

    [LibraryImport("libc", EntryPoint = "nanosleep", SetLastError = true)]
    private static partial int NanoSleep(ref TimeSpec request, IntPtr remaining);

    [StructLayout(LayoutKind.Sequential)]
    private struct TimeSpec
    {
        public long Seconds;
        public long Nanoseconds;
    }
}
