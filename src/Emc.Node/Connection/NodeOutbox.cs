using System.Threading.Channels;
using Emc.Contracts.Node.V1;

namespace Emc.Node.Connection;

/// <summary>
/// The only writer of one session's request stream. A gRPC request stream takes one write at a
/// time, while messages come from the session loop (heartbeats, drain), the reader (lease accepts
/// and rejects) and finishing executions (results): they all queue here, in a bounded channel that
/// makes senders wait when it is full, and one loop writes them in order.
/// </summary>
public sealed class NodeOutbox : INodeOutbox, IAsyncDisposable
{
    /// <summary>Messages that may wait to be written. Default 1,024: far more than a healthy stream holds.</summary>
    public const int DefaultCapacity = 1024;

    private readonly Channel<NodeMessage> _queue;
    private readonly Func<NodeMessage, CancellationToken, Task> _write;
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _pump;

    /// <summary>Starts the writing loop; <paramref name="write"/> puts one message on the stream.</summary>
    public NodeOutbox(Func<NodeMessage, CancellationToken, Task> write, int capacity = DefaultCapacity)
    {
        ArgumentNullException.ThrowIfNull(write);
        ArgumentOutOfRangeException.ThrowIfLessThan(capacity, 1);
        _write = write;
        _queue = Channel.CreateBounded<NodeMessage>(new BoundedChannelOptions(capacity)
        {
            FullMode = BoundedChannelFullMode.Wait,
            SingleReader = true,
        });
        _pump = Task.Run(PumpAsync, CancellationToken.None);
    }

    /// <summary>
    /// Completes when the writing loop ends: after <see cref="CloseAsync"/> once everything queued is
    /// written, or with the write's exception when the stream breaks.
    /// </summary>
    public Task Completion => _pump;

    /// <inheritdoc />
    public async ValueTask SendAsync(NodeMessage message, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(message);
        try
        {
            await _queue.Writer.WriteAsync(message, cancellationToken);
        }
        catch (ChannelClosedException)
        {
            // The session is over; see INodeOutbox.SendAsync.
        }
    }

    /// <summary>Queues <paramref name="message"/> unless the queue is full or closed; for messages that may be lost, such as heartbeats.</summary>
    public bool TrySend(NodeMessage message) => _queue.Writer.TryWrite(message);

    /// <summary>Takes no more messages and waits until those queued are written.</summary>
    public async Task CloseAsync(CancellationToken cancellationToken)
    {
        _queue.Writer.TryComplete();
        await _pump.WaitAsync(cancellationToken);
    }

    /// <summary>Stops writing at once; queued messages are dropped.</summary>
    public async ValueTask DisposeAsync()
    {
        _queue.Writer.TryComplete();
        await _stop.CancelAsync();
        try
        {
            await _pump;
        }
        catch (Exception)
        {
            // The loop's failure was observed through Completion by whoever cared; disposal only ends it.
        }

        _stop.Dispose();
    }

    /// <summary>The most bytes of replies merged into one message.</summary>
    public const int MaxMergedBytes = StreamMerging.MaxMergedBytes;

    /// <summary>
    /// An inference reply with more queued right behind it leaves as one <see cref="InferReplies"/>
    /// message (see <see cref="StreamMerging"/>); anything else leaves as it is.
    /// </summary>
    internal static NodeMessage Merge(NodeMessage message, ChannelReader<NodeMessage> reader) =>
        StreamMerging.Merge(
            message,
            reader,
            static m => m.BodyCase == NodeMessage.BodyOneofCase.InferReply ? m.InferReply : null,
            static replies => new NodeMessage { InferReplies = new InferReplies { Replies = { replies } } });

    private async Task PumpAsync()
    {
        try
        {
            var reader = _queue.Reader;
            while (await reader.WaitToReadAsync(_stop.Token))
            {
                while (reader.TryRead(out var message))
                {
                    await _write(Merge(message, reader), _stop.Token);
                }
            }
        }
        catch (Exception ex)
        {
            // Wake senders waiting on a full queue: nothing more will be written.
            _queue.Writer.TryComplete(ex);
            throw;
        }
    }
}
