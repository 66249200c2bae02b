using System.Globalization;
using System.Text.Json;
using Emc.Coordinator.Persistence;
using Emc.Core;
using Emc.Core.Scheduling;
using Microsoft.Data.Sqlite;
using Microsoft.EntityFrameworkCore;

namespace Emc.Coordinator.Scheduling;

/// <summary>
/// The scheduler's durable state: writes the changes the scheduler drains, loads them back after a
/// restart, and answers queries about jobs the scheduler no longer holds in memory.
/// </summary>
/// <remarks>
/// Writes bypass EF change tracking: a busy network changes thousands of tasks a second and one
/// submission may add 100,000, so each statement shape is prepared once per transaction and run
/// once per row. Reads use EF queries without tracking.
/// </remarks>
public sealed class SchedulerStore(IDbContextFactory<EmcDbContext> factory) : ISchedulerStore
{
    private static readonly JsonSerializerOptions Json = EmcJson.Options;

    private static readonly string[] TerminalJobStates = [Text(JobState.Completed), Text(JobState.Failed), Text(JobState.Cancelled)];

    private const string UpsertJobSql = """
        INSERT INTO jobs (id, number, name, account, priority, demand, gang, elastic, gang_retries, max_retries,
                          lease_duration_ms, gang_timeout_ms, idempotency_key, state, created_at, updated_at, finished_at)
        VALUES (@id, @number, @name, @account, @priority, @demand, @gang, @elastic, @gang_retries, @max_retries,
                @lease_duration_ms, @gang_timeout_ms, @idempotency_key, @state, @created_at, @updated_at, @finished_at)
        ON CONFLICT (id) DO UPDATE SET
            gang_retries = excluded.gang_retries,
            state = excluded.state,
            updated_at = excluded.updated_at,
            finished_at = excluded.finished_at
        """;

    private static readonly string[] UpsertJobParameters =
    [
        "id", "number", "name", "account", "priority", "demand", "gang", "elastic", "gang_retries", "max_retries",
        "lease_duration_ms", "gang_timeout_ms", "idempotency_key", "state", "created_at", "updated_at", "finished_at",
    ];

    // A new task that is already there (the same changes written twice) takes the newer mutable
    // columns, so writing a batch again is harmless.
    private const string InsertTaskSql = """
        INSERT INTO tasks (id, job_id, idx, kind, input, state, attempt, retries, lease_nodes, device, lease_expires_at,
                           accepted, reason, winning_attempt, output, output_hash, excluded_nodes, sequence, created_at, updated_at)
        VALUES (@id, @job_id, @idx, @kind, @input, @state, @attempt, @retries, @lease_nodes, @device, @lease_expires_at,
                @accepted, @reason, @winning_attempt, @output, @output_hash, @excluded_nodes, @sequence, @created_at, @updated_at)
        ON CONFLICT (id) DO UPDATE SET
            state = excluded.state,
            attempt = excluded.attempt,
            retries = excluded.retries,
            lease_nodes = excluded.lease_nodes,
            device = excluded.device,
            lease_expires_at = excluded.lease_expires_at,
            accepted = excluded.accepted,
            reason = excluded.reason,
            winning_attempt = excluded.winning_attempt,
            output = excluded.output,
            output_hash = excluded.output_hash,
            excluded_nodes = excluded.excluded_nodes,
            sequence = excluded.sequence,
            updated_at = excluded.updated_at
        """;

    private static readonly string[] InsertTaskParameters =
    [
        "id", "job_id", "idx", "kind", "input", "state", "attempt", "retries", "lease_nodes", "device", "lease_expires_at",
        "accepted", "reason", "winning_attempt", "output", "output_hash", "excluded_nodes", "sequence", "created_at", "updated_at",
    ];

    // Input, kind, job, index and creation time never change after the first write.
    private const string UpdateTaskSql = """
        UPDATE tasks SET
            state = @state,
            attempt = @attempt,
            retries = @retries,
            lease_nodes = @lease_nodes,
            device = @device,
            lease_expires_at = @lease_expires_at,
            accepted = @accepted,
            reason = @reason,
            winning_attempt = @winning_attempt,
            output = @output,
            output_hash = @output_hash,
            excluded_nodes = @excluded_nodes,
            sequence = @sequence,
            updated_at = @updated_at
        WHERE id = @id
        """;

    private static readonly string[] UpdateTaskParameters =
    [
        "id", "state", "attempt", "retries", "lease_nodes", "device", "lease_expires_at", "accepted", "reason",
        "winning_attempt", "output", "output_hash", "excluded_nodes", "sequence", "updated_at",
    ];

    // A lease's result is recorded once: the first write is the one the scheduler acted on.
    private const string InsertResultSql = """
        INSERT INTO task_results (task_id, attempt, node_id, succeeded, output, output_hash, error, counted, at)
        VALUES (@task_id, @attempt, @node_id, @succeeded, @output, @output_hash, @error, @counted, @at)
        ON CONFLICT (task_id, attempt) DO NOTHING
        """;

    private static readonly string[] InsertResultParameters =
        ["task_id", "attempt", "node_id", "succeeded", "output", "output_hash", "error", "counted", "at"];

    private const string UpsertWeightSql = """
        INSERT INTO account_weights (account, weight) VALUES (@account, @weight)
        ON CONFLICT (account) DO UPDATE SET weight = excluded.weight
        """;

    private static readonly string[] UpsertWeightParameters = ["account", "weight"];

    // ---------------------------------------------------------------- writes

    /// <summary>
    /// Writes jobs, tasks, results and account weights in one transaction, so a crash leaves all of
    /// them or none. Node commands are not stored: the host sends them once this returns. Writing the
    /// same changes twice leaves the same rows.
    /// </summary>
    /// <exception cref="InvalidOperationException">A task that is not new was never stored.</exception>
    public async Task SaveAsync(SchedulerChanges changes, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(changes);
        if (changes.Jobs.Count == 0 && changes.Tasks.Count == 0 && changes.Results.Count == 0 && changes.AccountWeights.Count == 0)
        {
            return;
        }

        await using var db = await factory.CreateDbContextAsync(cancellationToken);
        await db.Database.OpenConnectionAsync(cancellationToken);
        var connection = Connection(db);

        // Not deferred: the write lock is taken at BEGIN, so two writers queue up instead of one
        // failing with SQLITE_BUSY when it upgrades from reading to writing.
        await using var transaction = connection.BeginTransaction(deferred: false);

        if (changes.Jobs.Count > 0)
        {
            await using var upsert = await Statement.PrepareAsync(connection, transaction, UpsertJobSql, UpsertJobParameters, cancellationToken);
            foreach (var job in changes.Jobs)
            {
                upsert.Bind(
                    job.Id,
                    job.Number,
                    job.Name,
                    job.Account,
                    Text(job.Priority),
                    JsonSerializer.Serialize(job.Demand, Json),
                    job.Gang,
                    job.Elastic,
                    job.GangRetries,
                    job.MaxRetries,
                    (long)job.LeaseDuration.TotalMilliseconds,
                    (long)job.GangTimeout.TotalMilliseconds,
                    job.IdempotencyKey,
                    Text(job.State),
                    job.CreatedAt.ToUnixTimeMilliseconds(),
                    job.UpdatedAt.ToUnixTimeMilliseconds(),
                    job.FinishedAt?.ToUnixTimeMilliseconds());
                await upsert.ExecuteAsync(cancellationToken);
            }
        }

        if (changes.Tasks.Count > 0)
        {
            // Prepared lazily: most batches after a submission hold only updates.
            Statement? insert = null;
            Statement? update = null;
            try
            {
                foreach (var task in changes.Tasks)
                {
                    if (task.IsNew)
                    {
                        insert ??= await Statement.PrepareAsync(connection, transaction, InsertTaskSql, InsertTaskParameters, cancellationToken);
                        insert.Bind(
                            task.Id,
                            task.JobId,
                            task.Index,
                            task.Kind,
                            task.Input ?? "",
                            Text(task.State),
                            task.Attempt,
                            task.Retries,
                            JoinNodes(task.LeaseNodes),
                            task.Device,
                            task.LeaseExpiresAt?.ToUnixTimeMilliseconds(),
                            task.Accepted,
                            task.Reason,
                            task.WinningAttempt,
                            task.Output,
                            task.OutputHash,
                            JoinNodes(task.ExcludedNodes),
                            task.Sequence,
                            task.CreatedAt.ToUnixTimeMilliseconds(),
                            task.UpdatedAt.ToUnixTimeMilliseconds());
                        await insert.ExecuteAsync(cancellationToken);
                    }
                    else
                    {
                        update ??= await Statement.PrepareAsync(connection, transaction, UpdateTaskSql, UpdateTaskParameters, cancellationToken);
                        update.Bind(
                            task.Id,
                            Text(task.State),
                            task.Attempt,
                            task.Retries,
                            JoinNodes(task.LeaseNodes),
                            task.Device,
                            task.LeaseExpiresAt?.ToUnixTimeMilliseconds(),
                            task.Accepted,
                            task.Reason,
                            task.WinningAttempt,
                            task.Output,
                            task.OutputHash,
                            JoinNodes(task.ExcludedNodes),
                            task.Sequence,
                            task.UpdatedAt.ToUnixTimeMilliseconds());
                        if (await update.ExecuteAsync(cancellationToken) == 0)
                        {
                            // Its input was never written (a failed batch was dropped rather than retried);
                            // committing the rest would leave a task that cannot be restored.
                            throw new InvalidOperationException($"Task {task.Id} was changed but never stored.");
                        }
                    }
                }
            }
            finally
            {
                if (insert is not null)
                {
                    await insert.DisposeAsync();
                }

                if (update is not null)
                {
                    await update.DisposeAsync();
                }
            }
        }

        if (changes.Results.Count > 0)
        {
            await using var insert = await Statement.PrepareAsync(connection, transaction, InsertResultSql, InsertResultParameters, cancellationToken);
            foreach (var result in changes.Results)
            {
                insert.Bind(
                    result.TaskId,
                    result.Attempt,
                    result.NodeId,
                    result.Succeeded,
                    result.Output,
                    result.OutputHash,
                    result.Error,
                    result.Counted,
                    result.At.ToUnixTimeMilliseconds());
                await insert.ExecuteAsync(cancellationToken);
            }
        }

        if (changes.AccountWeights.Count > 0)
        {
            await using var upsert = await Statement.PrepareAsync(connection, transaction, UpsertWeightSql, UpsertWeightParameters, cancellationToken);
            foreach (var (account, weight) in changes.AccountWeights)
            {
                upsert.Bind(account, weight);
                await upsert.ExecuteAsync(cancellationToken);
            }
        }

        await transaction.CommitAsync(cancellationToken);
    }

    // ---------------------------------------------------------------- restore

    /// <summary>
    /// What a restarted scheduler needs: jobs that are not finished or finished at or after
    /// <paramref name="finishedAfter"/>, all their tasks (with input) and the results already recorded
    /// for them, every account weight, and the highest job number ever given out.
    /// </summary>
    public async Task<SchedulerSnapshot> LoadAsync(DateTimeOffset finishedAfter, CancellationToken cancellationToken)
    {
        var after = finishedAfter.ToUnixTimeMilliseconds();
        await using var db = await factory.CreateDbContextAsync(cancellationToken);
        await db.Database.OpenConnectionAsync(cancellationToken);

        // One transaction, so the reads see one moment even while a writer is active. Deferred, since
        // SQLite's default (BEGIN IMMEDIATE) would hold the write lock for the whole load.
        await using var transaction = Connection(db).BeginTransaction(deferred: true);
        await db.Database.UseTransactionAsync(transaction, cancellationToken);
        var jobs = db.Jobs.AsNoTracking().Where(j => !TerminalJobStates.Contains(j.State) || j.FinishedAtUnixMs >= after);

        var jobRows = await jobs.OrderBy(j => j.Number).ToListAsync(cancellationToken);
        var taskRows = await (from t in db.Tasks.AsNoTracking()
                              join j in jobs on t.JobId equals j.Id
                              select t).ToListAsync(cancellationToken);
        var results = await (from r in db.TaskResults.AsNoTracking()
                             join t in db.Tasks on r.TaskId equals t.Id
                             join j in jobs on t.JobId equals j.Id
                             select new { r.TaskId, r.Attempt }).ToListAsync(cancellationToken);
        var weights = await db.AccountWeights.AsNoTracking().ToListAsync(cancellationToken);
        var lastNumber = await db.Jobs.MaxAsync(j => (long?)j.Number, cancellationToken) ?? 0;
        await transaction.CommitAsync(cancellationToken);

        return new SchedulerSnapshot(
            jobRows.Select(ToRecord).ToList(),
            taskRows.Select(ToRecord).ToList(),
            results.Select(r => (r.TaskId, r.Attempt)).ToList(),
            weights.Select(w => KeyValuePair.Create(w.Account, w.Weight)).ToList(),
            lastNumber);
    }

    // ---------------------------------------------------------------- queries

    /// <summary>A job as the API shows it, or null. For a job that is not finished, <see cref="JobView.Reason"/> is null: only the live scheduler knows why work waits.</summary>
    public async Task<JobView?> GetJobAsync(string jobId, CancellationToken cancellationToken)
    {
        await using var db = await factory.CreateDbContextAsync(cancellationToken);
        var row = await db.Jobs.AsNoTracking().FirstOrDefaultAsync(j => j.Id == jobId, cancellationToken);
        return row is null ? null : (await ToViewsAsync(db, [row], cancellationToken))[0];
    }

    /// <summary>The job first submitted with this idempotency key, or null; the scheduler only knows the keys of jobs it holds.</summary>
    public async Task<JobView?> FindJobByIdempotencyKeyAsync(string idempotencyKey, CancellationToken cancellationToken)
    {
        await using var db = await factory.CreateDbContextAsync(cancellationToken);
        var row = await db.Jobs.AsNoTracking().FirstOrDefaultAsync(j => j.IdempotencyKey == idempotencyKey, cancellationToken);
        return row is null ? null : (await ToViewsAsync(db, [row], cancellationToken))[0];
    }

    /// <summary>Jobs in submission order, optionally filtered, at most <paramref name="limit"/>.</summary>
    public async Task<IReadOnlyList<JobView>> ListJobsAsync(JobState? state, string? account, int limit, CancellationToken cancellationToken)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(limit);
        await using var db = await factory.CreateDbContextAsync(cancellationToken);
        var query = db.Jobs.AsNoTracking();
        if (state is { } wanted)
        {
            var text = Text(wanted);
            query = query.Where(j => j.State == text);
        }

        if (account is not null)
        {
            query = query.Where(j => j.Account == account);
        }

        var rows = await query.OrderBy(j => j.Number).Take(limit).ToListAsync(cancellationToken);
        return await ToViewsAsync(db, rows, cancellationToken);
    }

    /// <summary>A task as the API shows it, with its output, or null.</summary>
    public async Task<TaskView?> GetTaskAsync(string taskId, CancellationToken cancellationToken)
    {
        await using var db = await factory.CreateDbContextAsync(cancellationToken);
        var found = await (from t in db.Tasks.AsNoTracking()
                           join j in db.Jobs.AsNoTracking() on t.JobId equals j.Id
                           where t.Id == taskId
                           select new { Task = t, Job = j }).FirstOrDefaultAsync(cancellationToken);
        return found is null ? null : ToView(found.Task, found.Job.Account, found.Job.Priority, found.Job.MaxRetries);
    }

    /// <summary>
    /// Tasks in id order — job number, then index, so job-2.10 follows job-2.9 — after
    /// <paramref name="afterTaskId"/> when given (a text that is not a task id starts from the
    /// beginning, as in the scheduler), at most <paramref name="limit"/>, without outputs.
    /// </summary>
    public Task<IReadOnlyList<TaskView>> ListTasksAsync(string? jobId, TaskState? state, string? afterTaskId, int limit, CancellationToken cancellationToken) =>
        ListTasksAsync(jobId, state, afterTaskId, limit, null, cancellationToken);

    /// <summary>Like the overload without an account, only of <paramref name="account"/>'s jobs when given.</summary>
    public async Task<IReadOnlyList<TaskView>> ListTasksAsync(string? jobId, TaskState? state, string? afterTaskId, int limit, string? account, CancellationToken cancellationToken)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(limit);
        await using var db = await factory.CreateDbContextAsync(cancellationToken);
        var query = from t in db.Tasks.AsNoTracking()
                    join j in db.Jobs.AsNoTracking() on t.JobId equals j.Id
                    select new { Task = t, Job = j };
        if (jobId is not null)
        {
            query = query.Where(x => x.Task.JobId == jobId);
        }

        if (account is not null)
        {
            query = query.Where(x => x.Job.Account == account);
        }

        if (state is { } wanted)
        {
            var text = Text(wanted);
            query = query.Where(x => x.Task.State == text);
        }

        if (TaskIds.TryParse(afterTaskId, out var afterJob, out var afterIndex))
        {
            // Written as a range on the job number first, so the job number index bounds the scan.
            query = query.Where(x => x.Job.Number >= afterJob && (x.Job.Number > afterJob || x.Task.Index > afterIndex));
        }

        // Outputs can be 64 KiB each; a listing leaves them out.
        var rows = await query
            .OrderBy(x => x.Job.Number)
            .ThenBy(x => x.Task.Index)
            .Take(limit)
            .Select(x => new
            {
                Task = new TaskRow
                {
                    Id = x.Task.Id,
                    JobId = x.Task.JobId,
                    Index = x.Task.Index,
                    Kind = x.Task.Kind,
                    State = x.Task.State,
                    Attempt = x.Task.Attempt,
                    Retries = x.Task.Retries,
                    LeaseNodes = x.Task.LeaseNodes,
                    Device = x.Task.Device,
                    LeaseExpiresAtUnixMs = x.Task.LeaseExpiresAtUnixMs,
                    Accepted = x.Task.Accepted,
                    Reason = x.Task.Reason,
                    WinningAttempt = x.Task.WinningAttempt,
                    OutputHash = x.Task.OutputHash,
                    Sequence = x.Task.Sequence,
                    CreatedAtUnixMs = x.Task.CreatedAtUnixMs,
                    UpdatedAtUnixMs = x.Task.UpdatedAtUnixMs,
                },
                x.Job.Account,
                x.Job.Priority,
                x.Job.MaxRetries,
            })
            .ToListAsync(cancellationToken);
        return rows.Select(x => ToView(x.Task, x.Account, x.Priority, x.MaxRetries)).ToList();
    }

    // ---------------------------------------------------------------- mapping

    private static async Task<IReadOnlyList<JobView>> ToViewsAsync(EmcDbContext db, List<JobRow> rows, CancellationToken cancellationToken)
    {
        if (rows.Count == 0)
        {
            return [];
        }

        var ids = rows.Select(j => j.Id).ToList();
        var grouped = await db.Tasks.AsNoTracking()
            .Where(t => ids.Contains(t.JobId))
            .GroupBy(t => new { t.JobId, t.State })
            .Select(g => new { g.Key.JobId, g.Key.State, Count = g.Count() })
            .ToListAsync(cancellationToken);
        var counts = new Dictionary<string, int[]>(StringComparer.Ordinal);
        foreach (var group in grouped)
        {
            if (!counts.TryGetValue(group.JobId, out var byState))
            {
                byState = new int[Enum.GetValues<TaskState>().Length];
                counts.Add(group.JobId, byState);
            }

            byState[(int)ParseTaskState(group.State)] += group.Count;
        }

        var views = new List<JobView>(rows.Count);
        foreach (var row in rows)
        {
            var byState = counts.GetValueOrDefault(row.Id) ?? new int[Enum.GetValues<TaskState>().Length];
            var state = ParseJobState(row.State);
            string? reason = null;
            if (state.IsTerminal() && byState[(int)TaskState.Failed] + byState[(int)TaskState.Cancelled] > 0)
            {
                // As the scheduler does: the first failed or cancelled task in index order says why.
                var failed = Text(TaskState.Failed);
                var cancelled = Text(TaskState.Cancelled);
                reason = await db.Tasks.AsNoTracking()
                    .Where(t => t.JobId == row.Id && (t.State == failed || t.State == cancelled))
                    .OrderBy(t => t.Index)
                    .Select(t => t.Reason)
                    .FirstOrDefaultAsync(cancellationToken);
            }

            views.Add(new JobView
            {
                Id = row.Id,
                Name = row.Name,
                Account = row.Account,
                Priority = ParsePriority(row.Priority),
                Gang = row.Gang,
                State = state,
                Demand = DeserializeDemand(row.DemandJson),
                MaxRetries = row.MaxRetries,
                Tasks = new TaskCounts(byState[0], byState[1], byState[2], byState[3], byState[4], byState[5]),
                Reason = reason,
                CreatedAt = DateTimeOffset.FromUnixTimeMilliseconds(row.CreatedAtUnixMs),
                UpdatedAt = DateTimeOffset.FromUnixTimeMilliseconds(row.UpdatedAtUnixMs),
                FinishedAt = row.FinishedAtUnixMs is { } finished ? DateTimeOffset.FromUnixTimeMilliseconds(finished) : null,
            });
        }

        return views;
    }

    /// <summary>
    /// The view of a stored task. NodeId is the node of the current lease, or of the result that
    /// counts for a completed task; LeaseExpiresAt is set only while the task holds a lease. That is
    /// exactly how the live scheduler shows them, so a task reads the same whether its job is in memory or not; the nodes
    /// of earlier attempts stay in the row. Reason is the stored one: for a queued task the scheduler
    /// would say why it waits, which only the live scheduler knows.
    /// </summary>
    private static TaskView ToView(TaskRow row, string account, string priority, int maxRetries)
    {
        var state = ParseTaskState(row.State);
        var holdsLease = state is TaskState.Leased or TaskState.Running;
        return new TaskView
        {
            Id = row.Id,
            JobId = row.JobId,
            Index = row.Index,
            Account = account,
            Priority = ParsePriority(priority),
            Kind = row.Kind,
            State = state,
            Attempt = row.Attempt,
            Retries = row.Retries,
            MaxRetries = maxRetries,
            NodeId = holdsLease ? LastNode(row.LeaseNodes) : row.WinningAttempt is { } winner ? NthNode(row.LeaseNodes, winner) : null,
            Device = row.Device,
            LeaseExpiresAt = holdsLease && row.LeaseExpiresAtUnixMs is { } expires ? DateTimeOffset.FromUnixTimeMilliseconds(expires) : null,
            Reason = row.Reason,
            WinningAttempt = row.WinningAttempt,
            OutputHash = row.OutputHash,
            Output = row.Output,
            CreatedAt = DateTimeOffset.FromUnixTimeMilliseconds(row.CreatedAtUnixMs),
            UpdatedAt = DateTimeOffset.FromUnixTimeMilliseconds(row.UpdatedAtUnixMs),
        };
    }

    private static JobRecord ToRecord(JobRow row) => new()
    {
        Id = row.Id,
        Number = row.Number,
        Name = row.Name,
        Account = row.Account,
        Priority = ParsePriority(row.Priority),
        Demand = DeserializeDemand(row.DemandJson),
        Gang = row.Gang,
        Elastic = row.Elastic,
        GangRetries = row.GangRetries,
        MaxRetries = row.MaxRetries,
        LeaseDuration = TimeSpan.FromMilliseconds(row.LeaseDurationMs),
        GangTimeout = TimeSpan.FromMilliseconds(row.GangTimeoutMs),
        IdempotencyKey = row.IdempotencyKey,
        State = ParseJobState(row.State),
        CreatedAt = DateTimeOffset.FromUnixTimeMilliseconds(row.CreatedAtUnixMs),
        UpdatedAt = DateTimeOffset.FromUnixTimeMilliseconds(row.UpdatedAtUnixMs),
        FinishedAt = row.FinishedAtUnixMs is { } finished ? DateTimeOffset.FromUnixTimeMilliseconds(finished) : null,
    };

    private static TaskRecord ToRecord(TaskRow row) => new()
    {
        Id = row.Id,
        JobId = row.JobId,
        Index = row.Index,
        Kind = row.Kind,
        Input = row.Input,
        State = ParseTaskState(row.State),
        Attempt = row.Attempt,
        Retries = row.Retries,
        LeaseNodes = SplitNodes(row.LeaseNodes),
        Device = row.Device,
        LeaseExpiresAt = row.LeaseExpiresAtUnixMs is { } expires ? DateTimeOffset.FromUnixTimeMilliseconds(expires) : null,
        Accepted = row.Accepted,
        Reason = row.Reason,
        WinningAttempt = row.WinningAttempt,
        Output = row.Output,
        OutputHash = row.OutputHash,
        ExcludedNodes = SplitNodes(row.ExcludedNodes),
        Sequence = row.Sequence,
        CreatedAt = DateTimeOffset.FromUnixTimeMilliseconds(row.CreatedAtUnixMs),
        UpdatedAt = DateTimeOffset.FromUnixTimeMilliseconds(row.UpdatedAtUnixMs),
        IsNew = false,
    };

    private static ResourceDemand DeserializeDemand(string json) =>
        JsonSerializer.Deserialize<ResourceDemand>(json, Json) ?? new ResourceDemand();

    private static string JoinNodes(IReadOnlyList<string> nodes)
    {
        if (nodes.Count == 0)
        {
            return "";
        }

        foreach (var node in nodes)
        {
            // Node ids are addresses; a comma would split one id into two on the way back.
            if (node.Contains(',', StringComparison.Ordinal))
            {
                throw new InvalidOperationException($"Node id '{node}' contains a comma and cannot be stored in a node list.");
            }
        }

        return string.Join(',', nodes);
    }

    private static string[] SplitNodes(string text) => text.Length == 0 ? [] : text.Split(',');

    private static string? NthNode(string leaseNodes, int attempt)
    {
        var nodes = leaseNodes.Split(',', StringSplitOptions.RemoveEmptyEntries);
        return attempt >= 1 && attempt <= nodes.Length ? nodes[attempt - 1] : null;
    }

    private static string? LastNode(string leaseNodes)
    {
        if (leaseNodes.Length == 0)
        {
            return null;
        }

        var comma = leaseNodes.LastIndexOf(',');
        return comma < 0 ? leaseNodes : leaseNodes[(comma + 1)..];
    }

    // ---------------------------------------------------------------- enum text

    internal static string Text(TaskState state) => state switch
    {
        TaskState.Queued => "queued",
        TaskState.Leased => "leased",
        TaskState.Running => "running",
        TaskState.Completed => "completed",
        TaskState.Failed => "failed",
        TaskState.Cancelled => "cancelled",
        _ => throw new ArgumentOutOfRangeException(nameof(state)),
    };

    internal static string Text(JobState state) => state switch
    {
        JobState.Queued => "queued",
        JobState.Running => "running",
        JobState.Completed => "completed",
        JobState.Failed => "failed",
        JobState.Cancelled => "cancelled",
        _ => throw new ArgumentOutOfRangeException(nameof(state)),
    };

    internal static string Text(PriorityClass priority) => priority switch
    {
        PriorityClass.Low => "low",
        PriorityClass.Normal => "normal",
        PriorityClass.High => "high",
        _ => throw new ArgumentOutOfRangeException(nameof(priority)),
    };

    private static TaskState ParseTaskState(string text) => text switch
    {
        "queued" => TaskState.Queued,
        "leased" => TaskState.Leased,
        "running" => TaskState.Running,
        "completed" => TaskState.Completed,
        "failed" => TaskState.Failed,
        "cancelled" => TaskState.Cancelled,
        _ => throw new InvalidDataException($"'{text}' is not a task state."),
    };

    private static JobState ParseJobState(string text) => text switch
    {
        "queued" => JobState.Queued,
        "running" => JobState.Running,
        "completed" => JobState.Completed,
        "failed" => JobState.Failed,
        "cancelled" => JobState.Cancelled,
        _ => throw new InvalidDataException($"'{text}' is not a job state."),
    };

    private static PriorityClass ParsePriority(string text) => text switch
    {
        "low" => PriorityClass.Low,
        "normal" => PriorityClass.Normal,
        "high" => PriorityClass.High,
        _ => throw new InvalidDataException($"'{text}' is not a priority class."),
    };

    // ---------------------------------------------------------------- SQLite

    // The coordinator's database is SQLite; a PostgreSQL cluster store would need its own writer
    // (the statements are standard INSERT ... ON CONFLICT and would carry over).
    private static SqliteConnection Connection(EmcDbContext db) =>
        db.Database.GetDbConnection() as SqliteConnection
        ?? throw new NotSupportedException("The scheduler store runs on SQLite.");

    /// <summary>One prepared statement, run once per row with new parameter values.</summary>
    private sealed class Statement : IAsyncDisposable
    {
        private readonly SqliteCommand _command;
        private readonly SqliteParameter[] _parameters;

        private Statement(SqliteCommand command, SqliteParameter[] parameters)
        {
            _command = command;
            _parameters = parameters;
        }

        /// <summary>Prepares <paramref name="sql"/>, whose parameters are @name for each of <paramref name="names"/>, in that order for <see cref="Bind"/>.</summary>
        public static async Task<Statement> PrepareAsync(SqliteConnection connection, SqliteTransaction transaction, string sql, string[] names, CancellationToken cancellationToken)
        {
            var command = connection.CreateCommand();
            try
            {
                command.CommandText = sql;
                command.Transaction = transaction;
                var parameters = new SqliteParameter[names.Length];
                for (var i = 0; i < names.Length; i++)
                {
                    parameters[i] = command.Parameters.Add(new SqliteParameter { ParameterName = "@" + names[i] });
                }

                await command.PrepareAsync(cancellationToken);
                return new Statement(command, parameters);
            }
            catch
            {
                await command.DisposeAsync();
                throw;
            }
        }

        /// <summary>Sets the parameters, in the order of the names the statement was prepared with.</summary>
        public void Bind(params ReadOnlySpan<object?> values)
        {
            if (values.Length != _parameters.Length)
            {
                throw new ArgumentException($"Expected {_parameters.Length} values, got {values.Length}.", nameof(values));
            }

            for (var i = 0; i < values.Length; i++)
            {
                _parameters[i].Value = values[i] ?? DBNull.Value;
            }
        }

        /// <summary>Runs the statement with the values bound last; returns the rows it changed.</summary>
        public Task<int> ExecuteAsync(CancellationToken cancellationToken) => _command.ExecuteNonQueryAsync(cancellationToken);

        public ValueTask DisposeAsync() => _command.DisposeAsync();
    }
}
