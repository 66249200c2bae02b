using System.Threading.Channels;
using Google.Protobuf;

namespace Emc.Contracts.Node.V1;

/// <summary>
/// Merges inference calls (coordinator → node) or replies (node → coordinator) queued back to back on
/// a node stream into one message (<see cref="InferCalls"/>, <see cref="InferReplies"/>), in order, so a
/// busy stream carries one message per burst instead of one per request.
/// </summary>
public static class StreamMerging
{
    /// <summary>The most bytes of items merged into one message.</summary>
    public const int MaxMergedBytes = 1024 * 1024;

    /// <summary>The most items merged into one message.</summary>
    public const int MaxMergedItems = 256;

    /// <summary>
    /// <paramref name="first"/>, or, when it holds an item and more messages holding items are queued
    /// right behind it, one message wrapping them all (up to <see cref="MaxMergedItems"/> items and
    /// <see cref="MaxMergedBytes"/>); the merged messages are taken from <paramref name="queue"/>.
    /// </summary>
    /// <param name="itemOf">The message's item (an InferCall or InferReply), or null for any other message.</param>
    /// <param name="wrap">Builds the merged message from the items.</param>
    public static TMessage Merge<TMessage, TItem>(TMessage first, ChannelReader<TMessage> queue, Func<TMessage, TItem?> itemOf, Func<List<TItem>, TMessage> wrap)
        where TItem : class, IMessage
    {
        ArgumentNullException.ThrowIfNull(queue);
        ArgumentNullException.ThrowIfNull(itemOf);
        ArgumentNullException.ThrowIfNull(wrap);
        if (itemOf(first) is not { } head || !queue.TryPeek(out var next) || itemOf(next) is null)
        {
            return first;
        }

        var items = new List<TItem> { head };
        var bytes = head.CalculateSize();
        while (items.Count < MaxMergedItems
            && queue.TryPeek(out next)
            && itemOf(next) is { } item
            && bytes + item.CalculateSize() is var total && total <= MaxMergedBytes
            && queue.TryRead(out _))
        {
            items.Add(item);
            bytes = total;
        }

        return items.Count == 1 ? first : wrap(items);
    }
}
