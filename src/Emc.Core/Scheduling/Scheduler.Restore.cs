namespace Emc.Core.Scheduling;

public sealed partial class Scheduler
{
    /// <summary>
    /// Loads the state a previous run left: unfinished jobs with all their tasks (and recently
    /// finished ones, for late results). Queued work queues again in its old order; leases stay with
    /// their nodes and get a fresh duration, since nodes could not heartbeat while the coordinator
    /// was down; a gang that had not started is released and queued again.
    /// </summary>
    public void Restore(SchedulerSnapshot snapshot)
    {
        ArgumentNullException.ThrowIfNull(snapshot);
        if (_jobs.Count > 0 || _nodes.Count > 0)
        {
            throw new InvalidOperationException("Restore runs once, on an empty scheduler.");
        }

        var now = _time.GetUtcNow();
        _lastJobNumber = snapshot.LastJobNumber;
        foreach (var (account, weight) in snapshot.AccountWeights)
        {
            _queue.SetAccountWeight(account, weight);
        }

        var recorded = snapshot.RecordedResults
            .GroupBy(result => result.TaskId, StringComparer.Ordinal)
            .ToDictionary(group => group.Key, group => group.Select(result => result.Attempt).ToList(), StringComparer.Ordinal);
        var tasksByJob = snapshot.Tasks.GroupBy(task => task.JobId, StringComparer.Ordinal).ToDictionary(group => group.Key, StringComparer.Ordinal);
        var queued = new List<QueueItem>();

        foreach (var record in snapshot.Jobs.OrderBy(job => job.Number))
        {
            var job = new JobEntry
            {
                Id = record.Id,
                Number = record.Number,
                Name = record.Name,
                Account = record.Account,
                Priority = record.Priority,
                Demand = record.Demand,
                DemandKey = record.Demand.FeasibilityKey(),
                MaxRetries = record.MaxRetries,
                LeaseDuration = record.LeaseDuration,
                GangTimeout = record.GangTimeout,
                Elastic = record.Gang && record.Elastic,
                IdempotencyKey = record.IdempotencyKey,
                CreatedAt = record.CreatedAt,
                UpdatedAt = record.UpdatedAt,
                FinishedAt = record.FinishedAt,
                CancelRequested = record.State == JobState.Cancelled,
                State = record.State,
            };

            var records = tasksByJob.TryGetValue(job.Id, out var group) ? group.OrderBy(task => task.Index).ToList() : [];
            if (records.Count == 0 || records.Where((task, i) => task.Index != i).Any())
            {
                throw new InvalidOperationException($"Job {job.Id} was stored without a complete set of tasks.");
            }

            job.Tasks = [.. records.Select(task => RestoreTask(job, task, recorded))];
            foreach (var task in job.Tasks)
            {
                job.Counts[(int)task.State]++;
                _sequence = Math.Max(_sequence, task.Sequence);
            }

            _jobs.Add(job.Id, job);
            _lastJobNumber = Math.Max(_lastJobNumber, job.Number);
            if (job.IdempotencyKey is not null)
            {
                _byIdempotencyKey[job.IdempotencyKey] = job;
            }

            if (job.State.IsTerminal())
            {
                _finished.Enqueue(job);
                continue;
            }

            if (record.Gang)
            {
                var gang = new GangEntry { Job = job, Retries = record.GangRetries, Sequence = job.Tasks.Min(task => task.Sequence) };
                job.Gang = gang;
                var open = job.Tasks.Where(task => !task.State.IsTerminal()).ToList();
                if (open.Count > 0 && open.All(task => task.State == TaskState.Running))
                {
                    gang.Phase = GangPhase.Running;
                    foreach (var task in open)
                    {
                        KeepLease(task, now);
                    }
                }
                else
                {
                    // Not started: offers may be lost, so the whole gang goes back to the queue.
                    foreach (var task in open)
                    {
                        if (task.HoldsLease)
                        {
                            job.Counts[(int)task.State]--;
                            job.Counts[(int)TaskState.Queued]++;
                            task.State = TaskState.Queued;
                            task.NodeId = null;
                            task.Device = null;
                            task.Accepted = false;
                            _dirtyTasks.Add(task);
                        }
                    }

                    if (open.Count > 0)
                    {
                        queued.Add(gang);
                    }
                }
            }
            else
            {
                foreach (var task in job.Tasks)
                {
                    if (task.State == TaskState.Queued)
                    {
                        queued.Add(task);
                    }
                    else if (task.HoldsLease)
                    {
                        KeepLease(task, now);
                    }
                }
            }

            _leased += job.Counts[(int)TaskState.Leased];
            _running += job.Counts[(int)TaskState.Running];
        }

        foreach (var item in queued.OrderBy(item => item.Sequence))
        {
            _queue.Enqueue(item, front: false);
        }
    }

    private static TaskEntry RestoreTask(JobEntry job, TaskRecord record, Dictionary<string, List<int>> recorded)
    {
        var task = new TaskEntry
        {
            Job = job,
            Id = record.Id,
            Index = record.Index,
            Kind = record.Kind,
            Input = record.Input ?? "",
            State = record.State,
            Attempt = record.Attempt,
            Retries = record.Retries,
            NodeId = record.State is TaskState.Leased or TaskState.Running ? (record.LeaseNodes.Count > 0 ? record.LeaseNodes[^1] : null) : null,
            Device = record.Device,
            LeaseExpiresAt = record.LeaseExpiresAt,
            Accepted = record.Accepted,
            Reason = record.Reason,
            WinningAttempt = record.WinningAttempt,
            Output = record.Output,
            OutputHash = record.OutputHash,
            Excluded = record.ExcludedNodes.Count > 0 ? new HashSet<string>(record.ExcludedNodes, StringComparer.Ordinal) : null,
            RecordedAttempts = recorded.GetValueOrDefault(record.Id),
            CreatedAt = record.CreatedAt,
            UpdatedAt = record.UpdatedAt,
            Sequence = record.Sequence,
            Persisted = true,
        };
        task.LeaseNodes.AddRange(record.LeaseNodes);
        return task;
    }

    private void KeepLease(TaskEntry task, DateTimeOffset now)
    {
        if (task.NodeId is null)
        {
            return;
        }

        var fresh = now + task.Job.LeaseDuration;
        task.LeaseExpiresAt = task.LeaseExpiresAt is { } saved && saved > fresh ? saved : fresh;
        _expiries.Enqueue((task, task.Attempt), task.LeaseExpiresAt.Value);
        if (!_leasesByNode.TryGetValue(task.NodeId, out var leases))
        {
            leases = [];
            _leasesByNode.Add(task.NodeId, leases);
        }

        leases.Add(task);
    }
}
