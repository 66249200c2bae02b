namespace Emc.Core.Scheduling;

public sealed partial class Scheduler
{
    /// <summary>
    /// A node connected (or reconnected, or changed what it offers). Leases it already holds — from
    /// before a reconnect or a coordinator restart — are charged to it again.
    /// </summary>
    public void UpsertNode(NodeCapacity capacity)
    {
        ArgumentNullException.ThrowIfNull(capacity);
        var id = capacity.NodeId;
        if (_nodes.TryGetValue(id, out var old))
        {
            Detach(old);
        }

        var node = new SchedulerNode(capacity, _options.TasksPerDevice, _options.SharedTasksPerDevice, _reputations.GetValueOrDefault(id, _options.InitialReputation))
        {
            Schedulable = true,
        };
        _nodes[id] = node;
        _schedulableNodes++;
        foreach (var key in node.CacheKeys)
        {
            AddToCacheIndex(key, node);
        }

        foreach (var device in node.Devices)
        {
            Cluster.MaxGflops = Math.Max(Cluster.MaxGflops, device.Capacity.Gflops);
        }

        Cluster.MaxPrice = Math.Max(Cluster.MaxPrice, node.Price);

        if (_leasesByNode.TryGetValue(id, out var leases))
        {
            foreach (var task in leases.ToList())
            {
                DeviceState? device = null;
                foreach (var candidate in node.Devices)
                {
                    if (candidate.Capacity.Name == task.Device)
                    {
                        device = candidate;
                        break;
                    }
                }

                if (device is null)
                {
                    LeaseEnded(task, $"device {task.Device} is no longer offered by node {id}", countsAsRetry: true);
                    continue;
                }

                Charge(node, device, task.Job.Demand);
                task.PlacedOn = node;
                task.PlacedDevice = device;
            }
        }

        RegistryChanged();
        UpdateFree(node);
    }

    /// <summary>The node is draining: it keeps its leases but takes no new work.</summary>
    public void SetDraining(string nodeId)
    {
        if (_nodes.TryGetValue(nodeId, out var node) && node.Schedulable)
        {
            node.Schedulable = false;
            _schedulableNodes--;
            ReleaseHeldOn(node);
            UpdateFree(node);
            RegistryChanged();
        }
    }

    /// <summary>The node is gone (lost, or left): its leases are reissued.</summary>
    public void RemoveNode(string nodeId, string reason)
    {
        if (_nodes.TryGetValue(nodeId, out var node))
        {
            Detach(node);
            _nodes.Remove(nodeId);
            RegistryChanged();
        }

        if (_leasesByNode.TryGetValue(nodeId, out var leases) && leases.Count > 0)
        {
            AdjustReputation(nodeId, success: false);
            foreach (var task in leases.ToList())
            {
                LeaseEnded(task, $"node {nodeId} {reason}", countsAsRetry: true);
            }
        }
    }

    /// <summary>
    /// The node's heartbeat lists the leases it holds: each one that is still current is extended.
    /// A lease the node lists but no longer holds (reissued, cancelled) is revoked so it stops working.
    /// </summary>
    public void Heartbeat(string nodeId, IReadOnlyCollection<string> leaseIds)
    {
        if (!_nodes.ContainsKey(nodeId))
        {
            return;
        }

        var now = _time.GetUtcNow();
        foreach (var leaseId in leaseIds)
        {
            if (!LeaseIds.TryParse(leaseId, out var taskId, out var attempt))
            {
                continue;
            }

            var task = FindTask(taskId);
            if (task is not null && task.HoldsLease && task.Attempt == attempt && task.NodeId == nodeId)
            {
                // Extensions are not written to the database: a restarted coordinator grants every
                // restored lease a fresh duration anyway.
                var expiry = now + task.Job.LeaseDuration;
                if (expiry > task.LeaseExpiresAt)
                {
                    task.LeaseExpiresAt = expiry;
                    _expiries.Enqueue((task, attempt), expiry);
                }
            }
            else if (task is null || task.WinningAttempt != attempt)
            {
                _commands.Add(new RevokeLease(nodeId, leaseId, "the lease is no longer held"));
            }
        }
    }

    /// <summary>Replaces the content keys the node caches.</summary>
    public void UpdateCacheKeys(string nodeId, IReadOnlyCollection<string> keys)
    {
        if (!_nodes.TryGetValue(nodeId, out var node))
        {
            return;
        }

        foreach (var key in node.CacheKeys)
        {
            RemoveFromCacheIndex(key, node);
        }

        node.SetCacheKeys(keys);
        foreach (var key in node.CacheKeys)
        {
            AddToCacheIndex(key, node);
        }
    }

    /// <summary>The reputation the node is placed with (the initial reputation for a node never rated).</summary>
    public double Reputation(string nodeId) => _reputations.GetValueOrDefault(nodeId, _options.InitialReputation);

    /// <summary>Sets a node's reputation (verification results move it too).</summary>
    public void SetReputation(string nodeId, double reputation)
    {
        reputation = Math.Clamp(reputation, 0, 1);
        _reputations[nodeId] = reputation;
        if (_nodes.TryGetValue(nodeId, out var node))
        {
            node.Reputation = reputation;
        }
    }

    private void Detach(SchedulerNode node)
    {
        if (node.Schedulable)
        {
            node.Schedulable = false;
            _schedulableNodes--;
        }

        ReleaseHeldOn(node);
        RemoveFromFree(node);
        foreach (var key in node.CacheKeys)
        {
            RemoveFromCacheIndex(key, node);
        }

        // Leases keep running on the node; they are re-charged if it comes back.
        if (_leasesByNode.TryGetValue(node.Id, out var leases))
        {
            foreach (var task in leases)
            {
                task.PlacedOn = null;
                task.PlacedDevice = null;
            }
        }
    }

    private void RegistryChanged()
    {
        _registryVersion++;
        _fitCache.Clear();
    }

    private void AdjustReputation(string nodeId, bool success)
    {
        var current = _reputations.GetValueOrDefault(nodeId, _options.InitialReputation);
        var next = success
            ? current + (_options.ReputationStep * (1 - current))
            : current - (_options.ReputationStep * current);
        SetReputation(nodeId, next);
    }

    private void AddToCacheIndex(string key, SchedulerNode node)
    {
        if (!_cacheIndex.TryGetValue(key, out var nodes))
        {
            nodes = [];
            _cacheIndex.Add(key, nodes);
        }

        nodes.Add(node);
    }

    private void RemoveFromCacheIndex(string key, SchedulerNode node)
    {
        if (_cacheIndex.TryGetValue(key, out var nodes) && nodes.Remove(node) && nodes.Count == 0)
        {
            _cacheIndex.Remove(key);
        }
    }

    private void Charge(SchedulerNode node, DeviceState device, ResourceDemand demand)
    {
        if (demand.Shared)
        {
            device.UsedSharedSlots++;
            node.UsedSharedSlots++;
        }
        else
        {
            device.UsedSlots++;
            node.UsedSlots++;
        }

        device.UsedMemoryBytes += demand.DeviceMemoryBytes;
        if (demand.SpreadGroup is { } group)
        {
            node.CountGroup(group, +1);
        }

        UpdateFree(node);
    }

    private void Uncharge(SchedulerNode node, DeviceState device, ResourceDemand demand)
    {
        if (demand.Shared)
        {
            device.UsedSharedSlots--;
            node.UsedSharedSlots--;
        }
        else
        {
            device.UsedSlots--;
            node.UsedSlots--;
        }

        device.UsedMemoryBytes -= demand.DeviceMemoryBytes;
        if (demand.SpreadGroup is { } group)
        {
            node.CountGroup(group, -1);
        }

        UpdateFree(node);
    }

    private void UpdateFree(SchedulerNode node)
    {
        var current = _nodes.TryGetValue(node.Id, out var registered) && ReferenceEquals(registered, node);
        if (current && node.HasFreeSlot && node.FreeIndex < 0)
        {
            node.FreeIndex = _free.Count;
            _free.Add(node);
        }
        else if (!(current && node.HasFreeSlot))
        {
            RemoveFromFree(node);
        }

        if (current && node.HasFreeSharedSlot && node.SharedFreeIndex < 0)
        {
            node.SharedFreeIndex = _sharedFree.Count;
            _sharedFree.Add(node);
        }
        else if (!(current && node.HasFreeSharedSlot))
        {
            RemoveFromSharedFree(node);
        }
    }

    private void RemoveFromFree(SchedulerNode node)
    {
        var index = node.FreeIndex;
        if (index < 0)
        {
            return;
        }

        var last = _free[^1];
        _free[index] = last;
        last.FreeIndex = index;
        _free.RemoveAt(_free.Count - 1);
        node.FreeIndex = -1;
    }

    private void RemoveFromSharedFree(SchedulerNode node)
    {
        var index = node.SharedFreeIndex;
        if (index < 0)
        {
            return;
        }

        var last = _sharedFree[^1];
        _sharedFree[index] = last;
        last.SharedFreeIndex = index;
        _sharedFree.RemoveAt(_sharedFree.Count - 1);
        node.SharedFreeIndex = -1;
    }
}
