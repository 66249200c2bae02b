using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using Emc.Coordinator.Persistence;
using Emc.Coordinator.Scheduling;
using Emc.Core.Hardware;
using Emc.Core.Scheduling;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Emc.Cli.Commands;

/// <summary>What `emc bench scheduler` measured.</summary>
internal sealed record SchedulerReport(
    int Nodes,
    int Tasks,
    int Accounts,
    double SubmitSeconds,
    double SubmitTasksPerSecond,
    double QueuedRssMiB,
    double QueuedManagedMiB,
    double PlaceSeconds,
    double AssignmentsPerSecond,
    double PlacementP50Ms,
    double PlacementP99Ms,
    double PlacementMaxMs,
    double TurnaroundP50Ms,
    double TurnaroundP99Ms,
    IReadOnlyDictionary<string, double> ShareByAccount,
    int Gangs,
    int GangSize,
    double GangSeconds,
    double GangsPerSecond,
    double PeakRssMiB,
    string DatabaseBytes,
    int MachineCores,
    string Machine)
{
    public string ToText() => $"""
        scheduler benchmark: {Nodes} simulated nodes (1 slot each, complete instantly), {Tasks} tasks from {Accounts} accounts (weights 1:2:3:4)
        submit                 {SubmitSeconds:0.00} s ({SubmitTasksPerSecond:0} tasks/s, durable before the API answers)
        memory, all queued     RSS {QueuedRssMiB:0} MiB, managed heap {QueuedManagedMiB:0} MiB
        assignments            {AssignmentsPerSecond:0}/s sustained ({Tasks} placed, run and recorded in {PlaceSeconds:0.00} s)
        placement decision     p50 {PlacementP50Ms:0.000} ms, p99 {PlacementP99Ms:0.000} ms, max {PlacementMaxMs:0.00} ms
        node turnaround        p50 {TurnaroundP50Ms:0.00} ms, p99 {TurnaroundP99Ms:0.00} ms (result sent -> next lease received, incl. group commit)
        share by account       {string.Join(", ", ShareByAccount.Select(p => $"{p.Key} {p.Value:P1}"))} (while all had work; weights give 10/20/30/40%)
        gangs                  {GangsPerSecond:0.0}/s ({Gangs} gangs of {GangSize} reserved, started and completed in {GangSeconds:0.00} s)
        peak RSS               {PeakRssMiB:0} MiB; database {DatabaseBytes}
        machine                {Machine}, {MachineCores} cores
        """;
}

/// <summary>
/// Runs the coordinator's scheduler service — the same state machine, loop, group commit and SQLite
/// store `emc coordinator` runs — against simulated nodes in the same process that accept and
/// complete every lease at once, so the figures are the scheduler's own and not the nodes'.
/// </summary>
internal static class SchedulerBenchmark
{
    private static readonly string[] Accounts = ["acct-1", "acct-2", "acct-3", "acct-4"];

    public static async Task<SchedulerReport> RunAsync(int nodeCount, int taskCount, int gangCount, int gangSize, TextWriter? progress, CancellationToken cancellationToken)
    {
        var root = Path.Combine(Path.GetTempPath(), "emc-bench-scheduler-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(root);
        var sink = new SimulatedNodes();
        var placements = new long[taskCount + (gangCount * gangSize) + 16];
        var placementCount = 0L;
        var services = new ServiceCollection();
        services.AddLogging(logging => logging.AddConsole().SetMinimumLevel(LogLevel.Warning));
        services.AddSingleton(TimeProvider.System);
        services.AddEmcPersistence(root);
        services.AddSingleton<INodeCommandSink>(sink);
        services.AddEmcScheduling();
        await using var provider = services.BuildServiceProvider();
        try
        {
            await provider.GetRequiredService<DatabaseInitializer>().InitializeAsync(cancellationToken);
            var scheduler = provider.GetRequiredService<SchedulerService>();
            scheduler.PlacementObserved = elapsed =>
            {
                var index = Interlocked.Increment(ref placementCount) - 1;
                if (index < placements.Length)
                {
                    placements[index] = elapsed.Ticks;
                }
            };
            sink.Service = scheduler;
            var hosted = provider.GetServices<IHostedService>().ToList();
            foreach (var service in hosted)
            {
                await service.StartAsync(cancellationToken);
            }

            for (var i = 0; i < Accounts.Length; i++)
            {
                await scheduler.SetAccountWeightAsync(Accounts[i], i + 1, cancellationToken);
            }

            // 1. Submit everything while no node is connected: the whole load sits in the queue.
            progress?.WriteLine($"submitting {taskCount} tasks ...");
            var submit = Stopwatch.StartNew();
            var perJob = PerJob(taskCount);
            var jobs = 0;
            for (var submitted = 0; submitted < taskCount; submitted += perJob, jobs++)
            {
                var size = Math.Min(perJob, taskCount - submitted);
                await scheduler.SubmitAsync(Job(Accounts[jobs % Accounts.Length], size, gang: false), cancellationToken);
            }

            submit.Stop();
            GC.Collect();
            GC.WaitForPendingFinalizers();
            var queuedRss = ProcessStats.RssMiB(Environment.ProcessId);
            var queuedManaged = GC.GetTotalMemory(forceFullCollection: true) / (1024.0 * 1024.0);

            // 2. Nodes connect; each takes a lease, completes it at once, and takes the next.
            progress?.WriteLine($"connecting {nodeCount} nodes; placing ...");
            sink.Expect(taskCount);
            var place = Stopwatch.StartNew();
            for (var i = 0; i < nodeCount; i++)
            {
                scheduler.NodeConnected("bench", Capacity(i));
            }

            await sink.AllDone.WaitAsync(TimeSpan.FromMinutes(30), cancellationToken);
            place.Stop();
            var placed = (int)Math.Min(Interlocked.Read(ref placementCount), placements.Length);
            var decisions = placements.AsSpan(0, placed).ToArray();
            Array.Sort(decisions);
            var turnaround = sink.Turnarounds();
            var shares = sink.ShareWhileAllHadWork(Accounts, taskCount);

            // 3. Gangs: all-or-nothing reservations of gangSize nodes each.
            progress?.WriteLine($"running {gangCount} gangs of {gangSize} ...");
            sink.Expect(gangCount * gangSize);
            var gangs = Stopwatch.StartNew();
            var gangJobs = new List<Task<JobView>>();
            for (var g = 0; g < gangCount; g++)
            {
                gangJobs.Add(scheduler.SubmitAsync(Job(Accounts[g % Accounts.Length], gangSize, gang: true), cancellationToken));
            }

            await Task.WhenAll(gangJobs);
            await sink.AllDone.WaitAsync(TimeSpan.FromMinutes(30), cancellationToken);
            gangs.Stop();

            foreach (var service in Enumerable.Reverse(hosted))
            {
                await service.StopAsync(CancellationToken.None);
            }

            var database = new FileInfo(Path.Combine(root, "emc.db")).Length + (File.Exists(Path.Combine(root, "emc.db-wal")) ? new FileInfo(Path.Combine(root, "emc.db-wal")).Length : 0);
            return new SchedulerReport(
                nodeCount,
                taskCount,
                Accounts.Length,
                submit.Elapsed.TotalSeconds,
                taskCount / submit.Elapsed.TotalSeconds,
                queuedRss,
                queuedManaged,
                place.Elapsed.TotalSeconds,
                taskCount / place.Elapsed.TotalSeconds,
                Percentile(decisions, 0.50),
                Percentile(decisions, 0.99),
                decisions.Length == 0 ? 0 : TimeSpan.FromTicks(decisions[^1]).TotalMilliseconds,
                Percentile(turnaround, 0.50),
                Percentile(turnaround, 0.99),
                shares,
                gangCount,
                gangSize,
                gangs.Elapsed.TotalSeconds,
                gangCount / gangs.Elapsed.TotalSeconds,
                ProcessStats.PeakRssMiB(Environment.ProcessId),
                $"{database / (1024.0 * 1024.0):0} MiB",
                Environment.ProcessorCount,
                MachineName());
        }
        finally
        {
            Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
            try
            {
                Directory.Delete(root, recursive: true);
            }
            catch (IOException)
            {
                // A temp folder left behind is harmless.
            }
        }
    }

    /// <summary>Jobs of at most 10,000 tasks, at least two per account, submitted round-robin over the accounts.</summary>
    private static int PerJob(int tasks) => Math.Max(1, Math.Min(10_000, tasks / (Accounts.Length * 2)));

    private static JobSpec Job(string account, int tasks, bool gang) => new()
    {
        Name = gang ? "bench-gang" : "bench",
        Account = account,
        Gang = gang,
        Tasks = [.. Enumerable.Range(0, tasks).Select(i => new TaskSpec { Kind = "sleep", Input = "{\"ms\":0}" })],
    };

    private static NodeCapacity Capacity(int i) => new()
    {
        NodeId = $"0x{i:x40}",
        Devices = [new DeviceCapacity { Name = "cpu", Kind = DeviceKind.Cpu, MemoryBytes = 16L << 30, Gflops = 50 + (i % 200) }],
        Labels = new Dictionary<string, string> { ["region"] = (i % 3) switch { 0 => "eu", 1 => "us", _ => "asia" } },
        Price = 100 + (i % 50),
    };

    private static double Percentile(long[] sortedTicks, double p) =>
        sortedTicks.Length == 0 ? 0 : TimeSpan.FromTicks(sortedTicks[(int)Math.Min(sortedTicks.Length - 1, Math.Floor(p * sortedTicks.Length))]).TotalMilliseconds;

    private static string MachineName()
    {
        try
        {
            var model = File.ReadLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith("model name", StringComparison.Ordinal));
            return model is null ? Environment.OSVersion.ToString() : model[(model.IndexOf(':', StringComparison.Ordinal) + 1)..].Trim();
        }
        catch (IOException)
        {
            return Environment.OSVersion.ToString();
        }
    }

    /// <summary>Nodes that accept and complete every lease the moment it arrives.</summary>
    private sealed class SimulatedNodes : INodeCommandSink
    {
        private readonly ConcurrentDictionary<string, long> _lastResult = new(StringComparer.Ordinal);
        private readonly ConcurrentQueue<long> _turnaround = new();
        private readonly ConcurrentQueue<string> _order = new();
        private long _remaining;
        private TaskCompletionSource _done = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public SchedulerService? Service { get; set; }

        public Task AllDone => _done.Task;

        public void Expect(int completions)
        {
            _done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            Interlocked.Exchange(ref _remaining, completions);
        }

        public void Deliver(Emc.Core.Scheduling.NodeCommand command)
        {
            var service = Service!;
            switch (command)
            {
                case OfferLease offer:
                    if (_lastResult.TryRemove(offer.NodeId, out var sentAt))
                    {
                        _turnaround.Enqueue(Stopwatch.GetTimestamp() - sentAt);
                    }

                    service.LeaseAccepted(offer.NodeId, offer.Lease.LeaseId);
                    if (offer.Lease.GangId is null)
                    {
                        Finish(service, offer.NodeId, offer.Lease.LeaseId, offer.Lease.JobId);
                    }

                    break;
                case StartGang start:
                    Finish(service, start.NodeId, start.LeaseId, start.GangId);
                    break;
                case AckResult ack when ack.Disposition == ResultDisposition.Accepted:
                    if (Interlocked.Decrement(ref _remaining) == 0)
                    {
                        _done.TrySetResult();
                    }

                    break;
            }
        }

        private void Finish(SchedulerService service, string node, string lease, string job)
        {
            _order.Enqueue(job);
            _lastResult[node] = Stopwatch.GetTimestamp();
            service.ResultReported(node, lease, true, "{\"sleptMs\":0}", null, false);
        }

        public long[] Turnarounds()
        {
            var values = _turnaround.Select(t => Stopwatch.GetElapsedTime(0, t).Ticks).ToArray();
            Array.Sort(values);
            return values;
        }

        /// <summary>Each account's share of the placements made while every account still had queued work.</summary>
        public Dictionary<string, double> ShareWhileAllHadWork(string[] accounts, int tasks)
        {
            // Jobs were submitted round-robin over accounts, so job number → account.
            var counts = accounts.ToDictionary(a => a, _ => 0, StringComparer.Ordinal);
            var totalByAccount = new Dictionary<string, int>(StringComparer.Ordinal);
            var perJob = PerJob(tasks);
            for (int submitted = 0, job = 0; submitted < tasks; submitted += perJob, job++)
            {
                var account = accounts[job % accounts.Length];
                totalByAccount[account] = totalByAccount.GetValueOrDefault(account) + Math.Min(perJob, tasks - submitted);
            }

            var seen = 0;
            foreach (var jobId in _order)
            {
                var number = int.Parse(jobId.AsSpan(4), CultureInfo.InvariantCulture);
                var account = accounts[(number - 1) % accounts.Length];
                counts[account]++;
                seen++;
                if (counts[account] == totalByAccount.GetValueOrDefault(account))
                {
                    break;
                }
            }

            return counts.ToDictionary(p => p.Key, p => seen == 0 ? 0 : (double)p.Value / seen, StringComparer.Ordinal);
        }
    }
}
