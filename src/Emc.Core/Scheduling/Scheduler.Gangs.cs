namespace Emc.Core.Scheduling;

/// <summary>
/// Gang placement. A gang's tasks start together on distinct nodes or not at all:
/// <list type="number">
/// <item>If enough free nodes fit, all are reserved in one step and offered.</item>
/// <item>Otherwise one gang at a time — the holder — may keep partial reservations while it waits
/// for more nodes to free up. With a single holder two gangs can never each hold part of what the
/// other needs, so there is no deadlock; and since reserved nodes take no other work, a big gang is
/// not starved by a stream of small tasks.</item>
/// <item>Offers go out once all nodes are reserved; when every node has accepted, each gets
/// <see cref="StartGang"/>. A gang that is not started by its timeout releases everything
/// (nodes that never accepted are avoided next time) and queues again.</item>
/// <item>A member lost, expired or failed ends the attempt for the whole gang; members that
/// completed stay completed and the rest run again as a smaller gang, up to the retry limit.</item>
/// </list>
/// </summary>
public sealed partial class Scheduler
{
    private enum GangOutcome
    {
        Blocked,
        Holding,
        Placed,
    }

    private readonly List<(SchedulerNode Node, DeviceState Device, double Score)> _gangCandidates = [];

    private GangOutcome TryPlaceGang(GangEntry gang)
    {
        var demand = gang.Job.Demand;
        var members = gang.Remaining;
        if (members == 0)
        {
            ReleaseGangHold(gang);
            return GangOutcome.Placed;
        }

        var need = members - gang.Held.Count;
        if (need > 0)
        {
            CollectGangCandidates(gang, demand, need);
            if (_gangCandidates.Count >= need)
            {
                _gangCandidates.Sort((a, b) => b.Score.CompareTo(a.Score));
                for (var i = 0; i < need; i++)
                {
                    Hold(gang, _gangCandidates[i].Node, _gangCandidates[i].Device);
                }
            }
            else
            {
                if (_holder is not null && _holder != gang)
                {
                    return GangOutcome.Blocked;
                }

                // Hold partial reservations only when enough connected nodes could ever fit;
                // otherwise the gang would sit on nodes it can never complete.
                var fit = GetFit(gang.ShapeKey, demand, members);
                if (fit.Fitting - gang.Excluded.Count < members)
                {
                    return GangOutcome.Blocked;
                }

                foreach (var (node, device, _) in _gangCandidates)
                {
                    Hold(gang, node, device);
                }

                if (_holder is null)
                {
                    _holder = gang;
                    gang.Phase = GangPhase.Reserving;
                    gang.Deadline = _time.GetUtcNow() + gang.Job.GangTimeout;
                    _pendingGangs.Add(gang);
                    return GangOutcome.Holding;
                }

                return GangOutcome.Blocked;
            }
        }

        OfferGang(gang);
        return GangOutcome.Placed;
    }

    private void CollectGangCandidates(GangEntry gang, ResourceDemand demand, int need)
    {
        _gangCandidates.Clear();
        var count = _free.Count;
        if (count == 0)
        {
            return;
        }

        var limit = need + _options.MaxScoredCandidates;
        var start = (int)((uint)_cursor++ % (uint)count);
        for (var i = 0; i < count && _gangCandidates.Count < limit; i++)
        {
            var index = start + i;
            var node = _free[index >= count ? index - count : index];
            if (!node.HasFreeSlot || gang.Excluded.Contains(node.Id) || !NodeFits(node, demand) || IsHeldBy(gang, node))
            {
                continue;
            }

            DeviceState? best = null;
            var bestScore = double.NegativeInfinity;
            foreach (var device in node.Devices)
            {
                if (DeviceFits(device, demand))
                {
                    var score = _policy.Score(demand, node, device, Cluster);
                    if (score > bestScore)
                    {
                        bestScore = score;
                        best = device;
                    }
                }
            }

            if (best is not null)
            {
                _gangCandidates.Add((node, best, bestScore));
            }
        }
    }

    private static bool IsHeldBy(GangEntry gang, SchedulerNode node)
    {
        foreach (var (held, _) in gang.Held)
        {
            if (held.Id == node.Id)
            {
                return true;
            }
        }

        return false;
    }

    private void Hold(GangEntry gang, SchedulerNode node, DeviceState device)
    {
        Charge(node, device, gang.Job.Demand);
        gang.Held.Add((node, device));
    }

    private void OfferGang(GangEntry gang)
    {
        var members = new List<TaskEntry>();
        foreach (var task in gang.Job.Tasks)
        {
            if (task.State == TaskState.Queued)
            {
                members.Add(task);
            }
        }

        // Extra reservations (members completed by late results meanwhile) go back.
        while (gang.Held.Count > members.Count)
        {
            var (node, device) = gang.Held[^1];
            gang.Held.RemoveAt(gang.Held.Count - 1);
            Uncharge(node, device, gang.Job.Demand);
        }

        for (var i = 0; i < members.Count; i++)
        {
            var (node, device) = gang.Held[i];
            Place(members[i], node, device, charge: false);
        }

        gang.Held.Clear();
        if (_holder == gang)
        {
            _holder = null;
        }

        gang.Phase = GangPhase.Offered;
        gang.Deadline = _time.GetUtcNow() + gang.Job.GangTimeout;
        if (!_pendingGangs.Contains(gang))
        {
            _pendingGangs.Add(gang);
        }

        foreach (var task in members)
        {
            _commands.Add(new OfferLease(task.NodeId!, Grant(task, gang.Job.Id, members.Count)));
        }
    }

    private void StartGangIfAccepted(GangEntry gang)
    {
        if (gang.Phase != GangPhase.Offered)
        {
            return;
        }

        foreach (var task in gang.Job.Tasks)
        {
            if (task.State == TaskState.Leased && !task.Accepted)
            {
                return;
            }
        }

        gang.Phase = GangPhase.Running;
        _pendingGangs.Remove(gang);
        foreach (var task in gang.Job.Tasks)
        {
            if (task.State == TaskState.Leased)
            {
                SetState(task, TaskState.Running);
                _commands.Add(new StartGang(task.NodeId!, task.LeaseId, gang.Job.Id));
            }
        }
    }

    private void GangTimedOut(GangEntry gang)
    {
        var timeout = gang.Job.GangTimeout;
        if (gang.Phase == GangPhase.Reserving)
        {
            ReleaseGang(gang, $"could not reserve {gang.Remaining} nodes within {timeout.TotalSeconds:0.#} s (held {gang.Held.Count}); queued again", countsAsRetry: false, back: true);
        }
        else if (gang.Phase == GangPhase.Offered)
        {
            var silent = new List<string>();
            foreach (var task in gang.Job.Tasks)
            {
                if (task.State == TaskState.Leased && !task.Accepted && task.NodeId is { } node)
                {
                    silent.Add(node);
                    gang.Excluded.Add(node);
                }
            }

            ReleaseGang(gang, $"node{(silent.Count == 1 ? "" : "s")} {string.Join(", ", silent)} did not accept within {timeout.TotalSeconds:0.#} s; queued again", countsAsRetry: false, back: false);
        }
    }

    /// <summary>A member's lease ended without a result: the gang's attempt is over.</summary>
    private void GangAttemptEnded(GangEntry gang, TaskEntry member, string reason, bool countsAsRetry)
    {
        Unplace(member);
        ReleaseGang(gang, reason, countsAsRetry, back: false);
    }

    /// <summary>Revokes every lease and reservation of the gang and queues it again (or fails it when retries are spent).</summary>
    private void ReleaseGang(GangEntry gang, string reason, bool countsAsRetry, bool back)
    {
        ReleaseGangHold(gang);
        foreach (var task in gang.Job.Tasks)
        {
            if (task.HoldsLease)
            {
                Revoke(task, reason);
            }
        }

        _pendingGangs.Remove(gang);
        if (countsAsRetry)
        {
            gang.Retries++;
            _reissues++;
            _dirtyJobs.Add(gang.Job);
        }

        var failed = gang.Retries > gang.Job.MaxRetries;
        foreach (var task in gang.Job.Tasks)
        {
            if (task.State.IsTerminal())
            {
                continue;
            }

            task.Retries = gang.Retries;
            task.Reason = reason;
            if (failed)
            {
                task.Reason = $"{reason}; gave up after {gang.Retries} failed gang attempt{(gang.Retries == 1 ? "" : "s")}";
                SetState(task, TaskState.Failed);
            }
            else
            {
                SetState(task, TaskState.Queued);
            }
        }

        if (failed || gang.Remaining == 0)
        {
            gang.Phase = GangPhase.Finished;
            return;
        }

        gang.Phase = GangPhase.Queued;
        if (back)
        {
            gang.Sequence = ++_sequence;
        }

        _queue.Remove(gang);
        _queue.Enqueue(gang, front: !back);
    }

    /// <summary>Gives back the gang's partial reservations and its holder role.</summary>
    private void ReleaseGangHold(GangEntry gang)
    {
        foreach (var (node, device) in gang.Held)
        {
            Uncharge(node, device, gang.Job.Demand);
        }

        gang.Held.Clear();
        if (_holder == gang)
        {
            _holder = null;
        }

        if (gang.Phase == GangPhase.Reserving)
        {
            gang.Phase = GangPhase.Queued;
            _pendingGangs.Remove(gang);
        }
    }

    /// <summary>A node holding part of the holder's reservation drained or left: that part is gone.</summary>
    private void ReleaseHeldOn(SchedulerNode node)
    {
        if (_holder is not { } gang)
        {
            return;
        }

        for (var i = gang.Held.Count - 1; i >= 0; i--)
        {
            if (ReferenceEquals(gang.Held[i].Node, node))
            {
                Uncharge(node, gang.Held[i].Device, gang.Job.Demand);
                gang.Held.RemoveAt(i);
            }
        }
    }

    private void RequeueGangAfterShrink(GangEntry gang)
    {
        if (gang.InQueue)
        {
            _queue.Remove(gang);
            if (gang.Remaining > 0)
            {
                _queue.Enqueue(gang, front: true);
            }
        }
    }
}
