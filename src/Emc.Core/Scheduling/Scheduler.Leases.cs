namespace Emc.Core.Scheduling;

public sealed partial class Scheduler
{
    private const int MaxOutputChars = JobSpecValidator.MaxInputChars;
    private const int MaxErrorChars = 1000;

    /// <summary>The node accepted a lease. False (and the lease is revoked) when it is not the node's current lease.</summary>
    public bool Accept(string nodeId, string leaseId)
    {
        var task = CurrentLease(nodeId, leaseId);
        if (task is null)
        {
            _commands.Add(new RevokeLease(nodeId, leaseId, "the lease is no longer held"));
            return false;
        }

        if (task.Accepted)
        {
            return true;
        }

        task.Accepted = true;
        if (task.Job.Gang is { } gang)
        {
            Touch(task);
            StartGangIfAccepted(gang);
        }
        else
        {
            SetState(task, TaskState.Running);
        }

        return true;
    }

    /// <summary>The node declined a lease (it lacks the kind, or the device is busy): the task goes back to the queue, avoiding that node, without using a retry.</summary>
    public bool Reject(string nodeId, string leaseId, string reason)
    {
        // A lease the node already accepted stays accepted: a later reject (say, of a duplicate
        // offer) must not reissue work that is running.
        var task = CurrentLease(nodeId, leaseId);
        if (task is null || task.Accepted)
        {
            return false;
        }

        reason = $"node {nodeId} declined the lease: {Truncate(reason, MaxErrorChars)}";
        if (task.Job.Gang is { } gang)
        {
            gang.Excluded.Add(nodeId);
            ReleaseGang(gang, reason, countsAsRetry: false, back: false);
            return true;
        }

        Unplace(task);
        (task.Excluded ??= new HashSet<string>(StringComparer.Ordinal)).Add(nodeId);
        Requeue(task, reason, front: true);
        return true;
    }

    /// <summary>
    /// The coordinator found the node failing the lease it holds (say, a serving replica whose answers
    /// are malformed): the lease is revoked, the node's reputation falls, and the task is reissued on
    /// another node, using a retry. False when <paramref name="leaseId"/> is not the task's current
    /// lease on <paramref name="nodeId"/> or the task belongs to a gang.
    /// </summary>
    public bool Evict(string nodeId, string leaseId, string reason)
    {
        ArgumentNullException.ThrowIfNull(reason);
        var task = CurrentLease(nodeId, leaseId);
        if (task is null || task.Job.Gang is not null)
        {
            return false;
        }

        reason = $"evicted from node {nodeId}: {Truncate(reason, MaxErrorChars)}";
        _commands.Add(new RevokeLease(nodeId, task.LeaseId, reason));
        AdjustReputation(nodeId, success: false);
        (task.Excluded ??= new HashSet<string>(StringComparer.Ordinal)).Add(nodeId);
        LeaseEnded(task, reason, countsAsRetry: true);
        return true;
    }

    /// <summary>
    /// A node reports the outcome of a lease. Each lease's result is recorded once. The first
    /// successful result the scheduler applies is the one that counts, whichever attempt sent it;
    /// results that arrive after it are recorded as superseded. Since the host applies events in
    /// one order and writes them in that order, replaying the log always picks the same winner.
    /// </summary>
    public ResultDisposition Complete(string nodeId, string leaseId, bool succeeded, string? output, string? error, bool retryable)
    {
        var disposition = Apply(out var message);
        _commands.Add(new AckResult(nodeId, leaseId, disposition, message));
        return disposition;

        ResultDisposition Apply(out string message)
        {
            if (!LeaseIds.TryParse(leaseId, out var taskId, out var attempt))
            {
                message = "not a lease id";
                return ResultDisposition.Rejected;
            }

            var task = FindTask(taskId);
            if (task is null)
            {
                message = $"no task {taskId} is held in memory (it never existed or finished long ago)";
                return ResultDisposition.Rejected;
            }

            if (attempt > task.Attempt || task.LeaseNodes[attempt - 1] != nodeId)
            {
                message = $"lease {leaseId} was not granted to node {nodeId}";
                return ResultDisposition.Rejected;
            }

            if (succeeded && (output is null || output.Length > MaxOutputChars))
            {
                message = $"output must be at most {MaxOutputChars} characters";
                return ResultDisposition.Rejected;
            }

            if (task.RecordedAttempts?.Contains(attempt) == true)
            {
                message = "this lease's result was already recorded";
                return ResultDisposition.Duplicate;
            }

            (task.RecordedAttempts ??= []).Add(attempt);
            var now = _time.GetUtcNow();
            var hash = succeeded ? HashOutput(output!) : null;
            var current = task.HoldsLease && task.Attempt == attempt;

            if (!succeeded)
            {
                var reason = $"failed on node {nodeId}: {Truncate(error ?? "no reason given", MaxErrorChars)}";
                _results.Add(new ResultRecord(task.Id, attempt, nodeId, false, null, null, Truncate(error ?? "", MaxErrorChars), false, now));
                if (current)
                {
                    AdjustReputation(nodeId, success: false);
                    if (retryable)
                    {
                        LeaseEnded(task, reason, countsAsRetry: true);
                    }
                    else
                    {
                        FailTask(task, reason);
                    }
                }

                message = current ? "failure recorded" : "failure of a lease that was already reissued; recorded";
                return ResultDisposition.Accepted;
            }

            if (task.State.IsTerminal())
            {
                _results.Add(new ResultRecord(task.Id, attempt, nodeId, true, output, hash, null, false, now));
                message = task.State == TaskState.Completed
                    ? $"recorded; the result of attempt {task.WinningAttempt} counts"
                    : $"recorded; the task was already {task.State.ToString().ToLowerInvariant()}";
                return ResultDisposition.Superseded;
            }

            _results.Add(new ResultRecord(task.Id, attempt, nodeId, true, output, hash, null, true, now));
            if (task.HoldsLease && !current)
            {
                // A late result from an earlier lease wins over the reissue still running.
                Revoke(task, $"attempt {attempt} of the task completed first");
            }
            else if (current)
            {
                Unplace(task);
            }

            AdjustReputation(nodeId, success: true);
            task.WinningAttempt = attempt;
            task.Output = output;
            task.OutputHash = hash;
            task.Reason = null;
            _queue.Remove(task);
            SetState(task, TaskState.Completed);
            if (task.Job.Gang is { } gang && gang.Phase is GangPhase.Queued or GangPhase.Reserving && task.Job.Counts[(int)TaskState.Queued] > 0)
            {
                // The gang now needs one node fewer; its queue line is keyed by size.
                RequeueGangAfterShrink(gang);
            }

            message = "accepted";
            return ResultDisposition.Accepted;
        }
    }

    /// <summary>Expires leases and gang reservations whose time is up, and forgets long-finished jobs. Call it periodically.</summary>
    public void Tick()
    {
        var now = _time.GetUtcNow();
        while (_expiries.TryPeek(out var entry, out var at) && at <= now)
        {
            _expiries.Dequeue();
            var task = entry.Task;
            if (task.HoldsLease && task.Attempt == entry.Attempt && task.LeaseExpiresAt <= now)
            {
                if (task.NodeId is { } node)
                {
                    AdjustReputation(node, success: false);
                }

                LeaseEnded(task, $"lease {task.LeaseId} expired on node {task.NodeId}", countsAsRetry: true);
            }
        }

        foreach (var gang in _pendingGangs.ToList())
        {
            if (now >= gang.Deadline)
            {
                GangTimedOut(gang);
            }
        }

        while (_finished.TryPeek(out var job) && job.FinishedAt + _options.RetainFinishedJobs <= now)
        {
            _finished.Dequeue();
            if (job.State.IsTerminal() && _jobs.Remove(job.Id) && job.IdempotencyKey is not null)
            {
                _byIdempotencyKey.Remove(job.IdempotencyKey);
            }
        }
    }

    /// <summary>The earliest time <see cref="Tick"/> has something to do, or null.</summary>
    public DateTimeOffset? NextDeadline()
    {
        DateTimeOffset? next = _expiries.TryPeek(out _, out var at) ? at : null;
        foreach (var gang in _pendingGangs)
        {
            if (next is null || gang.Deadline < next)
            {
                next = gang.Deadline;
            }
        }

        return next;
    }

    private TaskEntry? CurrentLease(string nodeId, string leaseId)
    {
        if (!LeaseIds.TryParse(leaseId, out var taskId, out var attempt))
        {
            return null;
        }

        var task = FindTask(taskId);
        return task is not null && task.HoldsLease && task.Attempt == attempt && task.NodeId == nodeId ? task : null;
    }

    /// <summary>The task's current lease ended without a result: reissue it, or fail it when retries are spent.</summary>
    private void LeaseEnded(TaskEntry task, string reason, bool countsAsRetry)
    {
        if (task.Job.Gang is { } gang)
        {
            if (task.Job.Elastic && gang.Phase == GangPhase.Running)
            {
                // The member was planned for its node: it fails alone and the rest run on.
                FailTask(task, reason);
                return;
            }

            GangAttemptEnded(gang, task, reason, countsAsRetry);
            return;
        }

        Unplace(task);
        if (countsAsRetry)
        {
            task.Retries++;
            _reissues++;
        }

        if (task.Retries > task.Job.MaxRetries)
        {
            FailTask(task, $"{reason}; gave up after {task.Retries} failed attempt{(task.Retries == 1 ? "" : "s")}");
            return;
        }

        Requeue(task, reason, front: true);
    }

    private void Requeue(TaskEntry task, string reason, bool front)
    {
        task.Reason = reason;
        SetState(task, TaskState.Queued);
        _queue.Enqueue(task, front);
    }

    private void FailTask(TaskEntry task, string reason)
    {
        if (task.HoldsLease)
        {
            Unplace(task);
        }

        _queue.Remove(task);
        task.Reason = reason;
        SetState(task, TaskState.Failed);
    }

    /// <summary>Tells the node to stop and frees the slot; the caller sets the task's next state.</summary>
    private void Revoke(TaskEntry task, string reason)
    {
        if (task.NodeId is { } node)
        {
            _commands.Add(new RevokeLease(node, task.LeaseId, reason));
        }

        Unplace(task);
    }

    private static string Truncate(string text, int max) => text.Length <= max ? text : text[..max];
}
