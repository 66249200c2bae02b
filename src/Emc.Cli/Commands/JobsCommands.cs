using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using Emc.Cli.Infrastructure;
using Emc.Client;
using Emc.Core;
using Emc.Core.Scheduling;

namespace Emc.Cli.Commands;

/// <summary>`emc tasks`, `emc jobs`, `emc submit` and `emc cancel`: the scheduler from the command line.</summary>
internal static class JobsCommands
{
    public static Command Tasks()
    {
        var coordinator = CommonOptions.Coordinator();
        var json = CommonOptions.Json();
        var job = new Option<string?>("--job") { Description = "Only the tasks of this job (job-N)." };
        var state = new Option<string?>("--state") { Description = "Only tasks in this state: queued, leased, running, completed, failed, cancelled." };
        var limit = Limit();
        var after = new Option<string?>("--after") { Description = "Start after this task id (paging)." };
        var command = new Command("tasks", "List tasks with their state, node, attempts and why they wait or failed.") { coordinator, json, job, state, limit, after };
        command.SetAction(async (result, cancellationToken) =>
        {
            if (!EmcJson.TryParseEnum<TaskState>(result.GetValue(state), out var filter))
            {
                await Console.Error.WriteLineAsync($"emc tasks: '{result.GetValue(state)}' is not a task state; use queued, leased, running, completed, failed or cancelled.");
                return 2;
            }

            return await ApiCalls.CallAsync("tasks", async () =>
            {
                var client = ApiKeyLookup.Client(result, coordinator);
                var tasks = await client.GetTasksAsync(result.GetValue(job), filter, result.GetValue(after), result.GetValue(limit), cancellationToken);
                Console.WriteLine(result.GetValue(json) ? JsonSerializer.Serialize(tasks, EmcJson.Indented) : FormatTasks(tasks));
            });
        });
        return command;
    }

    public static Command Jobs()
    {
        var coordinator = CommonOptions.Coordinator();
        var json = CommonOptions.Json();
        var state = new Option<string?>("--state") { Description = "Only jobs in this state: queued, running, completed, failed, cancelled." };
        var account = new Option<string?>("--account") { Description = "Only jobs of this account." };
        var limit = Limit();
        var command = new Command("jobs", "List jobs with their task counts and why they wait.") { coordinator, json, state, account, limit };
        command.SetAction(async (result, cancellationToken) =>
        {
            if (!EmcJson.TryParseEnum<JobState>(result.GetValue(state), out var filter))
            {
                await Console.Error.WriteLineAsync($"emc jobs: '{result.GetValue(state)}' is not a job state; use queued, running, completed, failed or cancelled.");
                return 2;
            }

            return await ApiCalls.CallAsync("jobs", async () =>
            {
                var client = ApiKeyLookup.Client(result, coordinator);
                var jobs = await client.GetJobsAsync(filter, result.GetValue(account), result.GetValue(limit), cancellationToken);
                Console.WriteLine(result.GetValue(json) ? JsonSerializer.Serialize(jobs, EmcJson.Indented) : FormatJobs(jobs));
            });
        });
        return command;
    }

    public static Command Submit()
    {
        var coordinator = CommonOptions.Coordinator();
        var json = CommonOptions.Json();
        var file = new Argument<string>("file") { Description = "A job document (JSON; - reads standard input). See docs/scheduler.md." };
        var command = new Command("submit", "Submit a job: tasks with resource demands, a priority and an account.") { coordinator, json, file };
        command.SetAction(async (result, cancellationToken) =>
        {
            var path = result.GetValue(file)!;
            JobSpec? spec;
            try
            {
                var text = path == "-" ? await Console.In.ReadToEndAsync(cancellationToken) : await File.ReadAllTextAsync(path, cancellationToken);
                spec = JsonSerializer.Deserialize<JobSpec>(text, EmcJson.Options);
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or JsonException)
            {
                await Console.Error.WriteLineAsync($"emc submit: cannot read the job from {path}: {ex.Message}");
                return 2;
            }

            if (spec is null)
            {
                await Console.Error.WriteLineAsync($"emc submit: {path} holds no job.");
                return 2;
            }

            return await ApiCalls.CallAsync("submit", async () =>
            {
                var client = ApiKeyLookup.Client(result, coordinator);
                var job = await client.SubmitJobAsync(spec, cancellationToken);
                Console.WriteLine(result.GetValue(json) ? JsonSerializer.Serialize(job, EmcJson.Indented) : $"{job.Id}: {job.Tasks.Total} task(s) {Kebab(job.State)}");
            });
        });
        return command;
    }

    public static Command Cancel()
    {
        var coordinator = CommonOptions.Coordinator();
        var id = new Argument<string>("job") { Description = "The job to cancel (job-N)." };
        var command = new Command("cancel", "Cancel a job: queued tasks never run and running ones are revoked.") { coordinator, id };
        command.SetAction(async (result, cancellationToken) => await ApiCalls.CallAsync("cancel", async () =>
        {
            var client = ApiKeyLookup.Client(result, coordinator);
            var job = await client.CancelJobAsync(result.GetValue(id)!, cancellationToken);
            Console.WriteLine($"{job.Id}: {Kebab(job.State)}");
        }));
        return command;
    }

    private static readonly string[] TaskHeader = ["TASK", "STATE", "KIND", "ACCOUNT", "PRIORITY", "ATTEMPT", "NODE", "DEVICE", "REASON"];
    private static readonly string[] JobHeader = ["JOB", "NAME", "ACCOUNT", "PRIORITY", "STATE", "TASKS", "QUEUED", "RUNNING", "DONE", "FAILED", "REASON"];

    internal static string FormatTasks(IReadOnlyList<TaskView> tasks)
    {
        var rows = new List<string[]> { TaskHeader };
        rows.AddRange(tasks.Select(task => new[]
        {
            task.Id,
            Kebab(task.State),
            task.Kind,
            task.Account,
            Kebab(task.Priority),
            $"{task.Attempt} ({task.Retries}/{task.MaxRetries} retries)",
            task.NodeId is null ? "-" : task.NodeId[..10] + "…",
            task.Device ?? "-",
            task.Reason ?? "",
        }));
        return Table.Format(rows);
    }

    internal static string FormatJobs(IReadOnlyList<JobView> jobs)
    {
        var rows = new List<string[]> { JobHeader };
        rows.AddRange(jobs.Select(job => new[]
        {
            job.Id,
            job.Name,
            job.Account,
            Kebab(job.Priority) + (job.Gang ? " gang" : ""),
            Kebab(job.State),
            job.Tasks.Total.ToString(CultureInfo.InvariantCulture),
            job.Tasks.Queued.ToString(CultureInfo.InvariantCulture),
            (job.Tasks.Leased + job.Tasks.Running).ToString(CultureInfo.InvariantCulture),
            job.Tasks.Completed.ToString(CultureInfo.InvariantCulture),
            (job.Tasks.Failed + job.Tasks.Cancelled).ToString(CultureInfo.InvariantCulture),
            job.Reason ?? "",
        }));
        return Table.Format(rows);
    }

    private static Option<int> Limit() => new("--limit")
    {
        Description = "At most this many rows (1 to 10000, default 100).",
        DefaultValueFactory = _ => 100,
        CustomParser = result =>
        {
            var text = result.Tokens.Count > 0 ? result.Tokens[0].Value : "100";
            if (int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var value) && value is >= 1 and <= 10_000)
            {
                return value;
            }

            result.AddError($"--limit must be a whole number from 1 to 10000, not '{text}'.");
            return 0;
        },
    };

    private static string Kebab<T>(T value)
        where T : struct, Enum => EmcJson.EnumText(value);
}
