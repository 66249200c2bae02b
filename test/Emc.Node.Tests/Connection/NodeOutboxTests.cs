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
    public async Task Pump_RepliesQueuedBehindEachOther_LeaveAsOneMessageInOrder_OthersAlone()
    {
        var written = new List<NodeMessage>();
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var outbox = new NodeOutbox(
            async (message, _) =>
            {
                written.Add(message);
                await release.Task;
            },
            capacity: 1024);

        // The first message holds the writer while the rest queue up behind it.
        Assert.True(outbox.TrySend(new NodeMessage { Heartbeat = new Heartbeat { Seq = 1 } }));
        for (ulong id = 1; id <= 300; id++)
        {
            Assert.True(outbox.TrySend(new NodeMessage { InferReply = new InferReply { CallId = id, Ok = true } }));
            if (id == 5)
            {
                Assert.True(outbox.TrySend(new NodeMessage { Heartbeat = new Heartbeat { Seq = 2 } }));
            }
        }

        Assert.True(outbox.TrySend(new NodeMessage { InferReply = new InferReply { CallId = 1000, Error = new string('x', NodeOutbox.MaxMergedBytes) } }));
        release.SetResult();
        await outbox.CloseAsync(CancellationToken.None).WaitAsync(Timeout);

        // heartbeat, replies 1-5 together, heartbeat, 6-261 (256), 262-300, then the oversized one alone.
        Assert.Equal(
            ["Heartbeat", "InferReplies:5", "Heartbeat", "InferReplies:256", "InferReplies:39", "InferReply"],
            written.Select(m => m.BodyCase == NodeMessage.BodyOneofCase.InferReplies ? $"InferReplies:{m.InferReplies.Replies.Count}" : m.BodyCase.ToString()));
        var ids = written.SelectMany(m => m.BodyCase switch
        {
            NodeMessage.BodyOneofCase.InferReplies => m.InferReplies.Replies.Select(r => r.CallId),
            NodeMessage.BodyOneofCase.InferReply => [m.InferReply.CallId],
            _ => [],
        });
        Assert.Equal([.. Enumerable.Range(1, 300).Select(i => (ulong)i), 1000UL], ids);
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
