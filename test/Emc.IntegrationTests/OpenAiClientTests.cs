using System.Diagnostics;
using System.Text;
using System.Text.Json;
using Xunit.Abstractions;
using Emc.Core;
using Emc.Core.Training;
using Emc.IntegrationTests.Infrastructure;

namespace Emc.IntegrationTests;

/// <summary>
/// A gpt-small trained through the network on a small text set by real `emc node` processes,
/// deployed, then called by the official `openai` npm client, unmodified (test/openai-client, whose
/// node_modules `npm ci` installs; .ci/run does), for a streamed chat completion; and by `emc chat`.
/// </summary>
public sealed class OpenAiClientTests(ITestOutputHelper log)
{
    private const string Model = "story-gpt";

    [Fact]
    public async Task OpenAiNpmClient_StreamsAChatCompletionFromAGptSmallTrainedThroughTheNetwork()
    {
        var client = FindClientDirectory();
        Assert.True(
            Directory.Exists(Path.Combine(client, "node_modules", "openai")),
            $"the openai npm package is not installed: run `npm ci` in {client} (.ci/run does)");

        await using var network = await EmcNetwork.StartAsync(2, "--training-threads", "1");
        var coordinator = network.ApiUrl.ToString();

        // A few KB of text, a train and a test split.
        var data = Path.Combine(network.Root, "text");
        Directory.CreateDirectory(data);
        var story = new StringBuilder();
        for (var i = 0; i < 60; i++)
        {
            story.Append("Once upon a time a small fox lived in the woods. Every day the fox ran to the river and back. ");
            story.Append(System.Globalization.CultureInfo.InvariantCulture, $"On day {i} the fox found a stone.\n");
        }

        await File.WriteAllTextAsync(Path.Combine(data, "train.txt"), story.ToString());
        await File.WriteAllTextAsync(Path.Combine(data, "test.txt"), story.ToString()[..2000]);
        var (exit, output) = await EmcProcess.RunAsync(
            TimeSpan.FromMinutes(2),
            "data", "upload", Path.Combine(data, "train.txt"), Path.Combine(data, "test.txt"), "--name", "stories", "--format", "text", "--coordinator", coordinator);
        Assert.True(exit == 0, output);

        // A few DiLoCo rounds of a small gpt-small across both nodes.
        (exit, output) = await EmcProcess.RunAsync(
            TimeSpan.FromMinutes(1),
            "train", "submit", "--model", "gpt-small", "--layers", "1", "--heads", "2", "--dim", "32", "--context", "32", "--dataset", "stories",
            "--nodes", "2", "--inner-steps", "10", "--rounds", "3", "--batch-size", "16", "--lr", "0.003", "--eval-every", "1000", "--seed", "3",
            "--output", Model, "--json", "--coordinator", coordinator);
        Assert.True(exit == 0, output);
        var jobId = JsonSerializer.Deserialize<TrainingJobView>(output, EmcJson.Options)!.Id;
        var watch = Stopwatch.StartNew();
        TrainingJobView job;
        while (true)
        {
            job = await network.Api.GetTrainingJobAsync(jobId, CancellationToken.None);
            if (job.State is TrainingJobState.Completed or TrainingJobState.Failed or TrainingJobState.Cancelled)
            {
                break;
            }

            Assert.True(watch.Elapsed < TimeSpan.FromMinutes(5), $"training is at round {job.Round} after {watch.Elapsed}");
            await Task.Delay(250);
        }

        Assert.True(job.State == TrainingJobState.Completed, $"{job.State}: {job.Reason}");

        // Deployed, it is listed by /v1/models once a replica is ready.
        (exit, output) = await EmcProcess.RunAsync(TimeSpan.FromMinutes(1), "model", "deploy", Model, "--coordinator", coordinator);
        Assert.True(exit == 0, output);
        watch.Restart();
        while (!(await network.Api.GetLanguageModelsAsync(CancellationToken.None)).Contains(Model))
        {
            Assert.True(watch.Elapsed < TimeSpan.FromMinutes(2), "the deployment never became ready");
            await Task.Delay(250);
        }

        // The official client, unmodified.
        var start = new ProcessStartInfo("node", ["test.mjs"])
        {
            WorkingDirectory = client,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        start.Environment["OPENAI_BASE_URL"] = new Uri(network.ApiUrl, "v1").ToString();
        start.Environment["EMC_MODEL"] = Model;
        start.Environment["OPENAI_API_KEY"] = EmcProcess.OperatorKey;
        using var node = Process.Start(start)!;
        var stdout = node.StandardOutput.ReadToEndAsync();
        var stderr = node.StandardError.ReadToEndAsync();
        await node.WaitForExitAsync().WaitAsync(TimeSpan.FromMinutes(3));
        Assert.True(node.ExitCode == 0, $"node test.mjs failed ({node.ExitCode}):\n{await stdout}\n{await stderr}");
        log.WriteLine((await stdout).Trim());
        using var report = JsonDocument.Parse((await stdout).Trim().Split('\n')[^1]);
        Assert.True(report.RootElement.GetProperty("ok").GetBoolean());
        Assert.True(report.RootElement.GetProperty("chunks").GetInt32() >= 2);

        // `emc chat` answers with the same greedy text.
        (exit, output) = await EmcProcess.RunAsync(
            TimeSpan.FromMinutes(1),
            "chat", Model, "--message", "Tell me a story.", "--max-tokens", "48", "--temperature", "0", "--coordinator", coordinator);
        Assert.True(exit == 0, output);
        log.WriteLine(output);
        Assert.Contains(report.RootElement.GetProperty("text").GetString()!.Trim(), output, StringComparison.Ordinal);
    }

    private static string FindClientDirectory()
    {
        for (var directory = new DirectoryInfo(AppContext.BaseDirectory); directory is not null; directory = directory.Parent)
        {
            var candidate = Path.Combine(directory.FullName, "test", "openai-client");
            if (File.Exists(Path.Combine(candidate, "test.mjs")))
            {
                return candidate;
            }
        }

        throw new DirectoryNotFoundException($"test/openai-client not found above {AppContext.BaseDirectory}");
    }
}
