using System.Text.Json;
using Emc.Core;
using Emc.Core.Scheduling;
using Emc.IntegrationTests.Infrastructure;

namespace Emc.IntegrationTests;

/// <summary>Work submitted with `emc submit`, run by real `emc node` processes, watched with `emc tasks`.</summary>
public sealed class SchedulingTests
{
    private static async Task<IReadOnlyList<TaskView>> TasksAsync(EmcNetwork network, string jobId)
    {
        var (exit, output) = await EmcProcess.RunAsync(TimeSpan.FromSeconds(60), "tasks", "--job", jobId, "--json", "--coordinator", network.ApiUrl.ToString());
        Assert.True(exit == 0, output);
        return JsonSerializer.Deserialize<List<TaskView>>(output, EmcJson.Options)!;
    }

    private static async Task<IReadOnlyList<TaskView>> WaitForTasksAsync(EmcNetwork network, string jobId, Func<IReadOnlyList<TaskView>, bool> condition, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        IReadOnlyList<TaskView> tasks;
        do
        {
            tasks = await TasksAsync(network, jobId);
            if (condition(tasks))
            {
                return tasks;
            }

            await Task.Delay(200);
        }
        while (DateTime.UtcNow < deadline);

        throw new TimeoutException("tasks did not reach the expected state: " + string.Join("; ", tasks.Select(t => $"{t.Id} {t.State} {t.Reason}")));
    }

    private static async Task<string> SubmitAsync(EmcNetwork network, JobSpec job)
    {
        var file = Path.Combine(network.Root, $"job-{Guid.NewGuid():N}.json");
        await File.WriteAllTextAsync(file, JsonSerializer.Serialize(job, EmcJson.Options));
        var (exit, output) = await EmcProcess.RunAsync(TimeSpan.FromSeconds(60), "submit", file, "--json", "--coordinator", network.ApiUrl.ToString());
        Assert.True(exit == 0, output);
        return JsonSerializer.Deserialize<JobView>(output, EmcJson.Options)!.Id;
    }

    [Fact]
    public async Task Submit_SleepAndBenchmarkTasks_RunOnTheNodesAndComplete()
    {
        await using var network = await EmcNetwork.StartAsync(nodeCount: 2);
        var ids = await Task.WhenAll(Enumerable.Range(0, 2).Select(network.WaitForNodeAsync));
        var job = new JobSpec
        {
            Name = "drill",
            Account = "alice",
            Tasks =
            [
                .. Enumerable.Range(0, 4).Select(_ => new TaskSpec { Kind = "sleep", Input = "{\"ms\":300}" }),
                new TaskSpec { Kind = "benchmark" },
            ],
        };

        var jobId = await SubmitAsync(network, job);
        var tasks = await WaitForTasksAsync(network, jobId, t => t.All(task => task.State.IsTerminal()), TimeSpan.FromSeconds(120));

        Assert.All(tasks, t => Assert.True(t.State == TaskState.Completed, $"{t.Id}: {t.State} {t.Reason}"));
        var outputs = await Task.WhenAll(tasks.Select(t => network.Api.GetTaskAsync(t.Id, CancellationToken.None)));
        Assert.All(outputs.Take(4), t => Assert.Equal("{\"sleptMs\":300}", t.Output));
        using var benchmark = JsonDocument.Parse(outputs[4].Output!);
        Assert.True(benchmark.RootElement.GetProperty("matmulGflops").GetDouble() > 0);

        // Both nodes got work (one slot each, five tasks).
        var results = await EmcProcess.RunAsync(TimeSpan.FromSeconds(60), "jobs", "--coordinator", network.ApiUrl.ToString());
        Assert.Contains(jobId, results.Output, StringComparison.Ordinal);
        Assert.Contains("completed", results.Output, StringComparison.Ordinal);
        _ = ids;
    }

    [Fact]
    public async Task NodeKilledMidTask_TaskIsReissuedToTheOtherNodeAndCompletes()
    {
        await using var network = await EmcNetwork.StartAsync(nodeCount: 2);
        var ids = await Task.WhenAll(Enumerable.Range(0, 2).Select(network.WaitForNodeAsync));
        var jobId = await SubmitAsync(network, new JobSpec { Account = "alice", Tasks = [new TaskSpec { Kind = "sleep", Input = "{\"ms\":4000}" }] });

        var running = await WaitForTasksAsync(network, jobId, t => t[0].State == TaskState.Running, TimeSpan.FromSeconds(60));
        var victim = Array.IndexOf(ids, running[0].NodeId);
        Assert.True(victim >= 0, $"lease on unknown node {running[0].NodeId}");
        network.Nodes[victim]!.KillHard();

        var done = await WaitForTasksAsync(network, jobId, t => t[0].State.IsTerminal(), TimeSpan.FromSeconds(90));
        Assert.Equal(TaskState.Completed, done[0].State);
        Assert.Equal(ids[1 - victim], done[0].NodeId);
        Assert.Equal(2, done[0].Attempt);
        Assert.Equal(1, done[0].Retries);
    }

    [Fact]
    public async Task BenchScheduler_SmallRun_PlacesEverythingAndSharesByWeight()
    {
        var (exit, output) = await EmcProcess.RunAsync(TimeSpan.FromSeconds(120), "bench", "scheduler", "--nodes", "40", "--tasks", "4000", "--gangs", "20", "--gang-size", "4", "--json");

        Assert.True(exit == 0, output);
        using var report = JsonDocument.Parse(output);
        var root = report.RootElement;
        Assert.Equal(4000, root.GetProperty("tasks").GetInt32());
        Assert.True(root.GetProperty("assignmentsPerSecond").GetDouble() > 0);
        Assert.True(root.GetProperty("gangsPerSecond").GetDouble() > 0);
        var shares = root.GetProperty("shareByAccount");
        for (var i = 1; i <= 4; i++)
        {
            Assert.InRange(shares.GetProperty($"acct-{i}").GetDouble(), (i / 10.0) - 0.01, (i / 10.0) + 0.01);
        }

        var (badExit, badOutput) = await EmcProcess.RunAsync(TimeSpan.FromSeconds(60), "bench", "scheduler", "--nodes", "4", "--gang-size", "8");
        Assert.Equal(2, badExit);
        Assert.Contains("--gang-size", badOutput, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Tasks_BadState_ClearErrorAndExitCode2()
    {
        var (exit, output) = await EmcProcess.RunAsync(TimeSpan.FromSeconds(60), "tasks", "--state", "sleeping");

        Assert.Equal(2, exit);
        Assert.Contains("not a task state", output, StringComparison.Ordinal);
    }
}
