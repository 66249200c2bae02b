using Emc.Contracts.Node.V1;

namespace Emc.Node.Connection;

/// <summary>The way out to the coordinator for messages that do not come from the session loop itself.</summary>
public interface INodeOutbox
{
    /// <summary>
    /// Queues <paramref name="message"/> for sending. A message queued after the session ended is
    /// dropped without an error: whatever must arrive (results) is kept and sent again by its owner.
    /// </summary>
    ValueTask SendAsync(NodeMessage message, CancellationToken cancellationToken);
}
