namespace Emc.Coordinator.Tests.Infrastructure;

/// <summary>Waiting in tests for something another thread or process brings about.</summary>
internal static class Polling
{
    /// <summary>Checks <paramref name="condition"/> every 50 ms until it holds; throws <see cref="TimeoutException"/> naming <paramref name="what"/> after <paramref name="timeout"/>.</summary>
    public static async Task UntilAsync(Func<bool> condition, TimeSpan timeout, string what)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (!condition())
        {
            if (DateTime.UtcNow > deadline)
            {
                throw new TimeoutException($"timed out waiting for {what}");
            }

            await Task.Delay(50);
        }
    }
}
