using System.Diagnostics;
using System.Globalization;

namespace Emc.Core.Scheduling;

public sealed partial class Scheduler
{
    /// <summary>Called with the time each task placement took, from picking it in fair-share order to its lease.</summary>
    public Action<TimeSpan>? PlacementObserved { get; set; }

    /// <summary>
    /// One scheduling pass: serves the queue in fair-share order and places what fits on free
    /// capacity, up to <see cref="SchedulerOptions.MaxPlacementsPerPass"/>. Returns the number of
    /// tasks placed. Call it after anything that adds work or frees capacity.
    /// </summary>
    public int Schedule()
    {
        var placed = 0;
        if (_holder is { } holder)
        {
            var before = holder.Remaining;
            if (TryPlaceGang(holder) == GangOutcome.Placed)
            {
                placed += before;
            }
        }

        _blocked.Clear();
        while (placed < _options.MaxPlacementsPerPass && (_free.Count > 0 || _sharedFree.Count > 0))
        {
            var started = Stopwatch.GetTimestamp();
            var item = _queue.Peek(_blocked);
            if (item is null)
            {
                break;
            }

            if (item is TaskEntry task)
            {
                if (TryPlaceTask(task))
                {
                    _queue.Take(task);
                    placed++;
                    PlacementObserved?.Invoke(Stopwatch.GetElapsedTime(started));
                }
                else
                {
                    _blocked.Add(task.QueuedShape);
                }
            }
            else
            {
                var gang = (GangEntry)item;
                var size = gang.Remaining;
                switch (TryPlaceGang(gang))
                {
                    case GangOutcome.Placed:
                        _queue.Take(gang);
                        placed += size;
                        break;
                    case GangOutcome.Holding:
                        _queue.Take(gang);
                        break;
                    default:
                        _blocked.Add(gang.QueuedShape);
                        break;
                }
            }
        }

        return placed;
    }

    private bool TryPlaceTask(TaskEntry task)
    {
        var demand = task.Job.Demand;
        SchedulerNode? bestNode = null;
        DeviceState? bestDevice = null;
        var bestScore = double.NegativeInfinity;

        // Nodes that already hold the task's data are always in the running.
        foreach (var key in demand.CacheKeys)
        {
            if (_cacheIndex.TryGetValue(key, out var holders))
            {
                foreach (var node in holders)
                {
                    Consider(node);
                }
            }
        }

        var candidates = demand.Shared ? _sharedFree : _free;
        var count = candidates.Count;
        var start = count == 0 ? 0 : (int)((uint)_cursor++ % (uint)count);
        var feasible = 0;
        for (var i = 0; i < count && feasible < _options.MaxScoredCandidates; i++)
        {
            var index = start + i;
            if (Consider(candidates[index >= count ? index - count : index]))
            {
                feasible++;
            }
        }

        if (bestNode is null)
        {
            return false;
        }

        Place(task, bestNode, bestDevice!, charge: true);
        _commands.Add(new OfferLease(bestNode.Id, Grant(task, gangId: null, gangSize: 0)));
        return true;

        bool Consider(SchedulerNode node)
        {
            if (!node.HasRoomFor(demand) || (task.Excluded?.Contains(node.Id) ?? false) || !NodeFits(node, demand))
            {
                return false;
            }

            var fits = false;
            foreach (var device in node.Devices)
            {
                if (!DeviceFits(device, demand))
                {
                    continue;
                }

                fits = true;
                var score = _policy.Score(demand, node, device, Cluster);
                if (score > bestScore)
                {
                    bestScore = score;
                    bestNode = node;
                    bestDevice = device;
                }
            }

            return fits;
        }
    }

    private static bool NodeFits(SchedulerNode node, ResourceDemand demand)
    {
        if (demand.MaxPrice > 0 && node.Price > demand.MaxPrice)
        {
            return false;
        }

        foreach (var (key, value) in demand.Labels)
        {
            if (!node.Labels.TryGetValue(key, out var actual) || actual != value)
            {
                return false;
            }
        }

        return demand.Nodes.Count == 0 || demand.Nodes.Contains(node.Id, StringComparer.Ordinal);
    }

    private static bool DeviceFits(DeviceState device, ResourceDemand demand) =>
        (demand.Shared ? device.HasFreeSharedSlot : device.HasFreeSlot)
        && (demand.Device is null || device.Capacity.Kind == demand.Device)
        && device.FreeMemoryBytes >= demand.DeviceMemoryBytes
        && device.Capacity.Gflops >= demand.MinGflops;

    private void Place(TaskEntry task, SchedulerNode node, DeviceState device, bool charge)
    {
        if (charge)
        {
            Charge(node, device, task.Job.Demand);
        }

        var expiry = _time.GetUtcNow() + task.Job.LeaseDuration;
        task.Attempt++;
        task.LeaseNodes.Add(node.Id);
        task.NodeId = node.Id;
        task.Device = device.Capacity.Name;
        task.PlacedOn = node;
        task.PlacedDevice = device;
        task.Accepted = false;
        task.LeaseExpiresAt = expiry;
        task.Reason = null;
        _expiries.Enqueue((task, task.Attempt), expiry);
        if (!_leasesByNode.TryGetValue(node.Id, out var leases))
        {
            leases = [];
            _leasesByNode.Add(node.Id, leases);
        }

        leases.Add(task);
        _placements++;
        SetState(task, TaskState.Leased);
    }

    /// <summary>Takes the task's lease away from its node's books (the caller decides the task's next state).</summary>
    private void Unplace(TaskEntry task)
    {
        if (task.PlacedOn is { } node)
        {
            Uncharge(node, task.PlacedDevice!, task.Job.Demand);
        }

        if (task.NodeId is not null && _leasesByNode.TryGetValue(task.NodeId, out var leases))
        {
            leases.Remove(task);
            if (leases.Count == 0)
            {
                _leasesByNode.Remove(task.NodeId);
            }
        }

        task.PlacedOn = null;
        task.PlacedDevice = null;
        task.NodeId = null;
        task.Device = null;
        task.Accepted = false;
    }

    private static LeaseGrant Grant(TaskEntry task, string? gangId, int gangSize) => new(
        task.LeaseId,
        task.Id,
        task.Job.Id,
        task.Kind,
        task.Input,
        task.Device!,
        task.LeaseExpiresAt!.Value,
        gangId,
        gangSize);

    // ---------------------------------------------------------------- why work waits

    /// <summary>How many connected nodes could ever run a demand, and what stops it when too few can.</summary>
    private sealed record FitReport(long Version, int Fitting, int Needed, string Reason);

    private FitReport GetFit(string shapeKey, ResourceDemand demand, int needed)
    {
        if (_fitCache.TryGetValue(shapeKey, out var cached) && cached.Version == _registryVersion)
        {
            return cached;
        }

        int kindOk = 0, memoryOk = 0, speedOk = 0, labelsOk = 0, priceOk = 0;
        foreach (var node in _nodes.Values)
        {
            if (!node.Schedulable)
            {
                continue;
            }

            bool kind = false, memory = false, speed = false;
            foreach (var device in node.Devices)
            {
                if (demand.Device is not null && device.Capacity.Kind != demand.Device)
                {
                    continue;
                }

                kind = true;
                if (device.Capacity.MemoryBytes < demand.DeviceMemoryBytes)
                {
                    continue;
                }

                memory = true;
                if (device.Capacity.Gflops >= demand.MinGflops)
                {
                    speed = true;
                }
            }

            if (!kind)
            {
                continue;
            }

            kindOk++;
            if (!memory)
            {
                continue;
            }

            memoryOk++;
            if (!speed)
            {
                continue;
            }

            speedOk++;
            if (!NodeFits(node, demand with { MaxPrice = 0 }))
            {
                continue;
            }

            labelsOk++;
            if (NodeFits(node, demand))
            {
                priceOk++;
            }
        }

        var kindText = demand.Device is null ? "" : $" {demand.Device.Value.ToString().ToLowerInvariant()}";
        var gang = needed > 1;
        string Short(string what, int have) => gang
            ? $"the gang needs {needed} nodes {what}; {have} connected node{(have == 1 ? " has" : "s have")} it"
            : $"no node {what}";

        var memoryText = Bytes.Format(demand.DeviceMemoryBytes);
        var reason = _schedulableNodes == 0 ? "no schedulable node is connected"
            : kindOk < needed ? Short($"with a{(demand.Device is null ? "ny" : "")}{kindText} device", kindOk)
            : memoryOk < needed ? Short($"with ≥ {memoryText} device memory{(kindText.Length > 0 ? $" on a{kindText} device" : "")}", memoryOk)
            : speedOk < needed ? Short($"with a{kindText} device of ≥ {demand.MinGflops.ToString("0.#", CultureInfo.InvariantCulture)} GFLOP/s{(demand.DeviceMemoryBytes > 0 ? $" and ≥ {memoryText} memory" : "")}", speedOk)
            : labelsOk < needed && demand.Nodes.Count > 0 ? Short($"among {string.Join(", ", demand.Nodes)}{(demand.Labels.Count > 0 ? " with its labels" : "")}", labelsOk)
            : labelsOk < needed ? Short($"labelled {string.Join(", ", demand.Labels.OrderBy(p => p.Key, StringComparer.Ordinal).Select(p => $"{p.Key}={p.Value}"))}", labelsOk)
            : priceOk < needed ? Short($"at a price ≤ {demand.MaxPrice.ToString(CultureInfo.InvariantCulture)}", priceOk)
            : gang ? $"waiting for {needed} of the {priceOk} fitting nodes to be free at once"
            : $"waiting for a free {(demand.Shared ? "shared place (and its memory)" : "slot")} on one of the {priceOk} fitting node{(priceOk == 1 ? "" : "s")}";

        var report = new FitReport(_registryVersion, priceOk, needed, reason);
        _fitCache[shapeKey] = report;
        return report;
    }
}
