using Emc.Contracts.Node.V1;
using Emc.Coordinator.Scheduling;
using Emc.Core.Scheduling;

namespace Emc.Coordinator.Gateway;

/// <summary>Delivers the scheduler's messages down the nodes' streams.</summary>
public sealed class StreamCommandSink(NodeSessions sessions) : INodeCommandSink
{
    public void Deliver(NodeCommand command) => sessions.TrySend(command.NodeId, ToMessage(command));

    internal static CoordinatorMessage ToMessage(NodeCommand command) => command switch
    {
        OfferLease offer => new CoordinatorMessage
        {
            LeaseOffer = new LeaseOffer
            {
                LeaseId = offer.Lease.LeaseId,
                TaskId = offer.Lease.TaskId,
                JobId = offer.Lease.JobId,
                Kind = offer.Lease.Kind,
                Input = offer.Lease.Input,
                Device = offer.Lease.Device,
                ExpiresUnixMs = offer.Lease.ExpiresAt.ToUnixTimeMilliseconds(),
                GangId = offer.Lease.GangId ?? "",
                GangSize = offer.Lease.GangSize,
            },
        },
        RevokeLease revoke => new CoordinatorMessage { LeaseRevoke = new LeaseRevoke { LeaseId = revoke.LeaseId, Reason = revoke.Reason } },
        StartGang start => new CoordinatorMessage { GangStart = new GangStart { GangId = start.GangId, LeaseId = start.LeaseId } },
        AckResult ack => new CoordinatorMessage
        {
            ResultAck = new ResultAck
            {
                LeaseId = ack.LeaseId,
                Message = ack.Message,
                Disposition = ack.Disposition switch
                {
                    Core.Scheduling.ResultDisposition.Accepted => Contracts.Node.V1.ResultDisposition.Accepted,
                    Core.Scheduling.ResultDisposition.Superseded => Contracts.Node.V1.ResultDisposition.Superseded,
                    Core.Scheduling.ResultDisposition.Duplicate => Contracts.Node.V1.ResultDisposition.Duplicate,
                    _ => Contracts.Node.V1.ResultDisposition.Rejected,
                },
            },
        },
        _ => throw new ArgumentException($"Unknown node command {command.GetType().Name}.", nameof(command)),
    };
}
