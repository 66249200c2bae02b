using System.Globalization;
using System.Security.Cryptography;
using System.Text;

namespace Emc.Core.Scheduling;

/// <summary>
/// The scheduler's state machine: jobs and tasks, nodes and their free capacity, leases, gangs and
/// fair share. It is deterministic and single-threaded — the host serialises every call — and reads
/// time only from the injected <see cref="TimeProvider"/>. It never does I/O: each call leaves
/// durable changes and messages for nodes in <see cref="DrainChanges"/>, which the host writes to
/// the database before it sends the messages (so a node never holds a lease the database lacks).
/// </summary>
public sealed partial class Scheduler
{
    private readonly SchedulerOptions _options;
    private readonly IPlacementPolicy _policy;
    private readonly TimeProvider _time;
    private readonly FairShareQueue _queue;
    private readonly Dictionary<string, JobEntry> _jobs = new(StringComparer.Ordinal);
    private readonly Dictionary<string, JobEntry> _byIdempotencyKey = new(StringComparer.Ordinal);
    private readonly Dictionary<string, SchedulerNode> _nodes = new(StringComparer.Ordinal);
    private readonly Dictionary<string, double> _reputations = new(StringComparer.Ordinal);
    private readonly List<SchedulerNode> _free = [];
    private readonly List<SchedulerNode> _sharedFree = [];
    private readonly Dictionary<string, HashSet<SchedulerNode>> _cacheIndex = new(StringComparer.Ordinal);
    private readonly Dictionary<string, HashSet<TaskEntry>> _leasesByNode = new(StringComparer.Ordinal);
    private readonly PriorityQueue<(TaskEntry Task, int Attempt), DateTimeOffset> _expiries = new();
    private readonly List<GangEntry> _pendingGangs = [];
    private readonly Queue<JobEntry> _finished = new();
    private readonly Dictionary<string, FitReport> _fitCache = new(StringComparer.Ordinal);
    private readonly HashSet<string> _blocked = new(StringComparer.Ordinal);

    private readonly HashSet<JobEntry> _dirtyJobs = [];
    private readonly HashSet<JobEntry> _newJobs = [];
    private readonly HashSet<TaskEntry> _dirtyTasks = [];
    private readonly List<ResultRecord> _results = [];
    private readonly Dictionary<string, double> _dirtyWeights = new(StringComparer.Ordinal);
    private readonly List<NodeCommand> _commands = [];

    private GangEntry? _holder;
    private long _lastJobNumber;
    private long _sequence;
    private long _registryVersion;
    private int _cursor;
    private int _schedulableNodes;
    private int _leased;
    private int _running;
    private long _placements;
    private long _reissues;

    public Scheduler(SchedulerOptions options, IPlacementPolicy policy, TimeProvider time)
    {
        var errors = options.Validate();
        if (errors.Count > 0)
        {
            throw new ArgumentException("Invalid scheduler options: " + string.Join("; ", errors), nameof(options));
        }

        _options = options;
        _policy = policy;
        _time = time;
        _queue = new FairShareQueue(options);
    }

    /// <summary>Network-wide figures the placement policy normalises by.</summary>
    public ClusterSummary Cluster { get; } = new();

    public string PolicyName => _policy.Name;

    /// <summary>Items (tasks or whole gangs) waiting in the fair-share queue.</summary>
    public int QueuedItems => _queue.Count;

    // ---------------------------------------------------------------- jobs

    /// <summary>
    /// Adds a job and queues its tasks. Throws <see cref="SchedulingException"/> when the job is
    /// invalid. A job with an idempotency key already seen returns the first job unchanged.
    /// </summary>
    public JobView Submit(JobSpec spec)
    {
        var errors = JobSpecValidator.Validate(spec);
        if (errors.Count > 0)
        {
            throw new SchedulingException(string.Join("; ", errors));
        }

        if (spec.IdempotencyKey is not null && _byIdempotencyKey.TryGetValue(spec.IdempotencyKey, out var existing))
        {
            return View(existing);
        }

        var now = _time.GetUtcNow();
        var number = ++_lastJobNumber;
        var job = new JobEntry
        {
            Id = "job-" + number.ToString(CultureInfo.InvariantCulture),
            Number = number,
            Name = spec.Name,
            Account = spec.Account,
            Priority = spec.Priority,
            Demand = spec.Demand,
            DemandKey = spec.Demand.FeasibilityKey(),
            MaxRetries = spec.MaxRetries ?? _options.DefaultMaxRetries,
            LeaseDuration = spec.LeaseDuration ?? _options.DefaultLeaseDuration,
            GangTimeout = spec.GangTimeout ?? _options.DefaultGangTimeout,
            IdempotencyKey = spec.IdempotencyKey,
            Elastic = spec.Gang && spec.Elastic,
            CreatedAt = now,
            UpdatedAt = now,
        };

        var tasks = new TaskEntry[spec.Tasks.Count];
        for (var i = 0; i < tasks.Length; i++)
        {
            tasks[i] = new TaskEntry
            {
                Job = job,
                Id = job.Id + "." + i.ToString(CultureInfo.InvariantCulture),
                Index = i,
                Kind = spec.Tasks[i].Kind,
                Input = spec.Tasks[i].Input,
                State = TaskState.Queued,
                CreatedAt = now,
                UpdatedAt = now,
                Sequence = ++_sequence,
            };
            _dirtyTasks.Add(tasks[i]);
        }

        job.Tasks = tasks;
        job.Counts[(int)TaskState.Queued] = tasks.Length;
        _jobs.Add(job.Id, job);
        if (job.IdempotencyKey is not null)
        {
            _byIdempotencyKey[job.IdempotencyKey] = job;
        }

        _newJobs.Add(job);
        _dirtyJobs.Add(job);

        if (spec.Gang)
        {
            job.Gang = new GangEntry { Job = job, Sequence = ++_sequence };
            _queue.Enqueue(job.Gang, front: false);
        }
        else
        {
            foreach (var task in tasks)
            {
                _queue.Enqueue(task, front: false);
            }
        }

        return View(job);
    }

    /// <summary>Cancels a job: queued tasks never run, leased ones are revoked. False when there is no such job.</summary>
    public bool Cancel(string jobId, string reason)
    {
        if (!_jobs.TryGetValue(jobId, out var job))
        {
            return false;
        }

        if (job.State.IsTerminal())
        {
            return true;
        }

        job.CancelRequested = true;
        if (job.Gang is { } gang)
        {
            ReleaseGangHold(gang);
            _queue.Remove(gang);
            gang.Phase = GangPhase.Finished;
        }

        foreach (var task in job.Tasks)
        {
            if (task.State.IsTerminal())
            {
                continue;
            }

            if (task.HoldsLease)
            {
                Revoke(task, reason);
            }

            _queue.Remove(task);
            task.Reason = reason;
            SetState(task, TaskState.Cancelled);
        }

        return true;
    }

    /// <summary>Sets an account's share weight (default <see cref="SchedulerOptions.DefaultAccountWeight"/>).</summary>
    public void SetAccountWeight(string account, double weight)
    {
        if (!JobSpecValidator.IsIdentifier(account))
        {
            throw new SchedulingException($"'{account}' is not an account name");
        }

        if (!(weight > 0) || !double.IsFinite(weight) || weight > 1_000_000)
        {
            throw new SchedulingException("weight must be a positive number up to 1,000,000");
        }

        _queue.SetAccountWeight(account, weight);
        _dirtyWeights[account] = weight;
    }

    public double AccountWeight(string account) => _queue.AccountWeight(account);

    // ---------------------------------------------------------------- queries

    public JobView? GetJob(string jobId) => _jobs.TryGetValue(jobId, out var job) ? View(job) : null;

    /// <summary>Jobs in submission order, optionally filtered.</summary>
    public IReadOnlyList<JobView> ListJobs(JobState? state, string? account, int limit)
    {
        var result = new List<JobView>();
        foreach (var job in _jobs.Values.OrderBy(job => job.Number))
        {
            if ((state is null || job.State == state) && (account is null || job.Account == account))
            {
                result.Add(View(job));
                if (result.Count >= limit)
                {
                    break;
                }
            }
        }

        return result;
    }

    public TaskView? GetTask(string taskId) => FindTask(taskId) is { } task ? View(task, includeOutput: true) : null;

    /// <summary>
    /// Tasks in id order (job number, then index), after <paramref name="after"/> when given, only of jobs
    /// of <paramref name="account"/> when given.
    /// </summary>
    public IReadOnlyList<TaskView> ListTasks(string? jobId, TaskState? state, string? after, int limit, string? account = null)
    {
        var result = new List<TaskView>();
        IEnumerable<JobEntry> jobs = jobId is null
            ? _jobs.Values.OrderBy(job => job.Number)
            : _jobs.TryGetValue(jobId, out var one) ? [one] : [];
        if (account is not null)
        {
            jobs = jobs.Where(job => job.Account == account);
        }

        var (afterJob, afterIndex) = ParseTaskId(after);
        foreach (var job in jobs)
        {
            if (job.Number < afterJob)
            {
                continue;
            }

            foreach (var task in job.Tasks)
            {
                if (job.Number == afterJob && task.Index <= afterIndex)
                {
                    continue;
                }

                if (state is null || task.State == state)
                {
                    result.Add(View(task, includeOutput: false));
                    if (result.Count >= limit)
                    {
                        return result;
                    }
                }
            }
        }

        return result;
    }

    /// <summary>True when the job is held in memory (it is unfinished or finished recently).</summary>
    public bool HasJob(string jobId) => _jobs.ContainsKey(jobId);

    public SchedulerStats Stats() => new(
        _nodes.Count,
        _schedulableNodes,
        _free.Count,
        _jobs.Count,
        _queue.Count,
        _leased,
        _running,
        _placements,
        _reissues,
        _policy.Name);

    /// <summary>A node's live state, or null.</summary>
    public SchedulerNode? GetNode(string nodeId) => _nodes.GetValueOrDefault(nodeId);

    /// <summary>The schedulable nodes that fit <paramref name="demand"/> (free or busy), with their fastest fitting device's speed.</summary>
    public IReadOnlyList<FittingNode> FittingNodes(ResourceDemand demand)
    {
        ArgumentNullException.ThrowIfNull(demand);
        var result = new List<FittingNode>();
        foreach (var node in _nodes.Values)
        {
            if (!node.Schedulable || !NodeFits(node, demand))
            {
                continue;
            }

            double best = -1;
            foreach (var device in node.Devices)
            {
                if ((demand.Device is null || device.Capacity.Kind == demand.Device)
                    && device.Capacity.MemoryBytes >= demand.DeviceMemoryBytes
                    && device.Capacity.Gflops >= demand.MinGflops)
                {
                    best = Math.Max(best, device.Capacity.Gflops);
                }
            }

            if (best >= 0)
            {
                result.Add(new FittingNode(node.Id, best, node.UsedSlots, node.TotalSlots));
            }
        }

        result.Sort((a, b) => string.CompareOrdinal(a.NodeId, b.NodeId));
        return result;
    }

    // ---------------------------------------------------------------- changes

    /// <summary>Everything that changed since the last call, for the host to write and then deliver.</summary>
    public SchedulerChanges DrainChanges()
    {
        var jobs = new List<JobRecord>(_dirtyJobs.Count);
        foreach (var job in _dirtyJobs)
        {
            jobs.Add(Record(job, _newJobs.Contains(job)));
        }

        var tasks = new List<TaskRecord>(_dirtyTasks.Count);
        foreach (var task in _dirtyTasks)
        {
            tasks.Add(Record(task));
            task.Persisted = true;
        }

        var changes = new SchedulerChanges(
            jobs,
            tasks,
            [.. _results],
            [.. _dirtyWeights],
            [.. _commands]);
        _dirtyJobs.Clear();
        _newJobs.Clear();
        _dirtyTasks.Clear();
        _results.Clear();
        _dirtyWeights.Clear();
        _commands.Clear();
        return changes;
    }

    // ---------------------------------------------------------------- helpers

    private TaskEntry? FindTask(string? taskId)
    {
        var (jobNumber, index) = ParseTaskId(taskId);
        if (jobNumber < 0
            || !_jobs.TryGetValue("job-" + jobNumber.ToString(CultureInfo.InvariantCulture), out var job)
            || index < 0 || index >= job.Tasks.Length)
        {
            return null;
        }

        var task = job.Tasks[index];
        return task.Id == taskId ? task : null;
    }

    /// <summary>Parses "job-N.I"; (-1, -1) when it is not a task id.</summary>
    private static (long Job, int Index) ParseTaskId(string? taskId) =>
        TaskIds.TryParse(taskId, out var job, out var index) ? (job, index) : (-1, -1);

    private void SetState(TaskEntry task, TaskState state)
    {
        var job = task.Job;
        var previous = task.State;
        if (previous == state)
        {
            Touch(task);
            return;
        }

        job.Counts[(int)previous]--;
        job.Counts[(int)state]++;
        _leased += (previous == TaskState.Leased ? -1 : 0) + (state == TaskState.Leased ? 1 : 0);
        _running += (previous == TaskState.Running ? -1 : 0) + (state == TaskState.Running ? 1 : 0);
        task.State = state;
        Touch(task);
        UpdateJobState(job);
    }

    private void Touch(TaskEntry task)
    {
        task.UpdatedAt = _time.GetUtcNow();
        _dirtyTasks.Add(task);
    }

    private void UpdateJobState(JobEntry job)
    {
        var counts = job.Counts;
        var open = counts[(int)TaskState.Queued] + counts[(int)TaskState.Leased] + counts[(int)TaskState.Running];
        JobState state;
        if (open > 0)
        {
            state = counts[(int)TaskState.Queued] == job.Tasks.Length ? JobState.Queued : JobState.Running;
        }
        else if (job.CancelRequested)
        {
            state = JobState.Cancelled;
        }
        else
        {
            state = counts[(int)TaskState.Failed] > 0 || counts[(int)TaskState.Cancelled] > 0 ? JobState.Failed : JobState.Completed;
        }

        if (state == job.State)
        {
            return;
        }

        var now = _time.GetUtcNow();
        job.State = state;
        job.UpdatedAt = now;
        if (state.IsTerminal())
        {
            job.FinishedAt = now;
            _finished.Enqueue(job);
            if (job.Gang is { } gang)
            {
                gang.Phase = GangPhase.Finished;
                _pendingGangs.Remove(gang);
            }
        }

        _dirtyJobs.Add(job);
    }

    private JobView View(JobEntry job) => new()
    {
        Id = job.Id,
        Name = job.Name,
        Account = job.Account,
        Priority = job.Priority,
        Gang = job.Gang is not null,
        State = job.State,
        Demand = job.Demand,
        MaxRetries = job.MaxRetries,
        Tasks = job.CountsView(),
        Reason = job.State.IsTerminal() ? FirstFailure(job) : WaitReason(job),
        CreatedAt = job.CreatedAt,
        UpdatedAt = job.UpdatedAt,
        FinishedAt = job.FinishedAt,
    };

    private static string? FirstFailure(JobEntry job)
    {
        foreach (var task in job.Tasks)
        {
            if (task.State is TaskState.Failed or TaskState.Cancelled)
            {
                return task.Reason;
            }
        }

        return null;
    }

    private string? WaitReason(JobEntry job)
    {
        if (job.Counts[(int)TaskState.Queued] == 0)
        {
            return null;
        }

        if (job.Gang is { } gang)
        {
            return gang.Phase == GangPhase.Reserving
                ? $"reserving nodes for the gang: {gang.Held.Count} of {gang.Remaining} held"
                : GetFit(gang.ShapeKey, job.Demand, gang.Remaining).Reason;
        }

        return GetFit(job.DemandKey, job.Demand, 1).Reason;
    }

    private TaskView View(TaskEntry task, bool includeOutput) => new()
    {
        Id = task.Id,
        JobId = task.Job.Id,
        Index = task.Index,
        Account = task.Job.Account,
        Priority = task.Job.Priority,
        Kind = task.Kind,
        State = task.State,
        Attempt = task.Attempt,
        Retries = task.Retries,
        MaxRetries = task.Job.MaxRetries,
        NodeId = task.NodeId ?? (task.WinningAttempt is { } winner ? task.LeaseNodes[winner - 1] : null),
        Device = task.Device,
        LeaseExpiresAt = task.HoldsLease ? task.LeaseExpiresAt : null,
        Reason = task.State == TaskState.Queued ? JoinReasons(task.Reason, WaitReason(task.Job)) : task.Reason,
        WinningAttempt = task.WinningAttempt,
        OutputHash = task.OutputHash,
        Output = includeOutput ? task.Output : null,
        CreatedAt = task.CreatedAt,
        UpdatedAt = task.UpdatedAt,
    };

    private static string? JoinReasons(string? first, string? second) =>
        first is null ? second : second is null ? first : $"{first}; {second}";

    private static JobRecord Record(JobEntry job, bool isNew) => new()
    {
        Id = job.Id,
        Number = job.Number,
        Name = job.Name,
        Account = job.Account,
        Priority = job.Priority,
        Demand = job.Demand,
        Gang = job.Gang is not null,
        Elastic = job.Elastic,
        GangRetries = job.Gang?.Retries ?? 0,
        MaxRetries = job.MaxRetries,
        LeaseDuration = job.LeaseDuration,
        GangTimeout = job.GangTimeout,
        IdempotencyKey = job.IdempotencyKey,
        State = job.State,
        CreatedAt = job.CreatedAt,
        UpdatedAt = job.UpdatedAt,
        FinishedAt = job.FinishedAt,
        IsNew = isNew,
    };

    private static TaskRecord Record(TaskEntry task) => new()
    {
        Id = task.Id,
        JobId = task.Job.Id,
        Index = task.Index,
        Kind = task.Kind,
        Input = task.Persisted ? null : task.Input,
        State = task.State,
        Attempt = task.Attempt,
        Retries = task.Retries,
        LeaseNodes = [.. task.LeaseNodes],
        Device = task.Device,
        LeaseExpiresAt = task.HoldsLease ? task.LeaseExpiresAt : null,
        Accepted = task.Accepted,
        Reason = task.Reason,
        WinningAttempt = task.WinningAttempt,
        Output = task.Output,
        OutputHash = task.OutputHash,
        ExcludedNodes = task.Excluded is null ? [] : [.. task.Excluded.Order(StringComparer.Ordinal)],
        Sequence = task.Sequence,
        CreatedAt = task.CreatedAt,
        UpdatedAt = task.UpdatedAt,
        IsNew = !task.Persisted,
    };

    /// <summary>sha256 of the output's UTF-8 bytes, lower-case hex.</summary>
    public static string HashOutput(string output) =>
        Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(output)));
}

/// <summary>A request the scheduler refuses: the message says what to change.</summary>
public sealed class SchedulingException : Exception
{
    public SchedulingException()
    {
    }

    public SchedulingException(string message)
        : base(message)
    {
    }

    public SchedulingException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}
