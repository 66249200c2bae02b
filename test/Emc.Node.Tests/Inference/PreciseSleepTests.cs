using System.Diagnostics;
using Emc.Node.Inference;

namespace Emc.Node.Tests.Inference;

public sealed class PreciseSleepTests
{
    [Fact]
    public void Sleep_SubMillisecond_SleepsAtLeastTheTimeAsked()
    {
        Assert.True(PreciseSleep.IsSupported);
        var started = Stopwatch.GetTimestamp();
        PreciseSleep.Sleep(TimeSpan.FromMicroseconds(300));
        Assert.True(Stopwatch.GetElapsedTime(started) >= TimeSpan.FromMicroseconds(300));
    }

    [Fact]
    public async Task Batcher_SubMillisecondDelayOnTheSystemClock_PartialBatchWaitsItsDelayThenGoesOut()
    {
        var batches = new List<int[]>();
        await using var batcher = new DynamicBatcher<int, int>(
            (items, _) =>
            {
                lock (batches)
                {
                    batches.Add([.. items]);
                }

                return ValueTask.FromResult<IReadOnlyList<int>>(items.Select(i => -i).ToArray());
            },
            new BatchingOptions { MaxBatchSize = 8, MaxQueueDelay = TimeSpan.FromMicroseconds(400) });

        // A lone item waits out the delay (slept, not a timer) and then leaves as a batch of one.
        for (var i = 1; i <= 3; i++)
        {
            var started = Stopwatch.GetTimestamp();
            Assert.Equal(-i, await batcher.EnqueueAsync(i, CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(10)));
            Assert.True(Stopwatch.GetElapsedTime(started) >= TimeSpan.FromMicroseconds(400));
        }

        Assert.Equal([[1], [2], [3]], batches);
    }
}
