using Emc.Contracts.Node.V1;
using Emc.Node.Connection;

namespace Emc.Node.Tests.Connection;

public sealed class NodeOutboxTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(10);

    [Fact]
    public async Task SendAsync_ManySenders_WritesOneAtATimeKeepingEachSendersOrder()
    {
        var written = new List<NodeMessage>();
        var writing = 0;
        var overlapped = false;
        await using var outbox = new NodeOutbox(
            async (message, _) =>
            {
                overlapped |= Interlocked.Increment(ref writing) > 1;
                await Task.Yield();
                written.Add(message);
                Interlocked.Decrement(ref writing);
            },
            capacity: 4);

        await Task.WhenAll(Enumerable.Range(0, 4).Select(sender => Task.Run(async () =>
        {
            for (var i = 0; i < 50; i++)
            {
                await outbox.SendAsync(new NodeMessage { LeaseAccept = new LeaseAccept { LeaseId = $"{sender}#{i}" } }, CancellationToken.None);
            }
        })));
        await outbox.CloseAsync(CancellationToken.None).WaitAsync(Timeout);

        Assert.False(overlapped);
        Assert.Equal(200, written.Count);
        for (var sender = 0; sender < 4; sender++)
        {
            var order = written.Select(m => m.LeaseAccept.LeaseId).Where(id => id.StartsWith($"{sender}#", StringComparison.Ordinal)).ToList();
            Assert.Equal(Enumerable.Range(0, 50).Select(i => $"{sender}#{i}"), order);
        }
    }

    [Fact]
    public async Task SendAsync_AfterClose_IsDroppedQuietly()
    {
        var written = 0;
        await using var outbox = new NodeOutbox((_, _) => { Interlocked.Increment(ref written); return Task.CompletedTask; });
        await outbox.CloseAsync(CancellationToken.None).WaitAsync(Timeout);

        await outbox.SendAsync(new NodeMessage { Goodbye = new Goodbye() }, CancellationToken.None);

        Assert.False(outbox.TrySend(new NodeMessage { Goodbye = new Goodbye() }));
        Assert.Equal(0, written);
    }

    [Fact]
    public async Task WriteFailure_FaultsCompletion_AndReleasesWaitingSenders()
    {
        var firstWrite = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var failWrite = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var outbox = new NodeOutbox(
            async (_, _) =>
            {
                firstWrite.TrySetResult();
                await failWrite.Task;
                throw new IOException("stream reset");
            },
            capacity: 1);
        await outbox.SendAsync(new NodeMessage { Drain = new Drain() }, CancellationToken.None);
        await firstWrite.Task.WaitAsync(Timeout);
        await outbox.SendAsync(new NodeMessage { Drain = new Drain() }, CancellationToken.None); // fills the queue
        var waiting = outbox.SendAsync(new NodeMessage { Drain = new Drain() }, CancellationToken.None).AsTask();
        Assert.False(waiting.IsCompleted);

        failWrite.SetResult();

        var failure = await Assert.ThrowsAsync<IOException>(() => outbox.Completion.WaitAsync(Timeout));
        Assert.Equal("stream reset", failure.Message);
        await waiting.WaitAsync(Timeout);
    }
}
