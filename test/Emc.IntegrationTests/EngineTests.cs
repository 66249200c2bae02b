using System.Diagnostics;
using System.Text.Json;
using Emc.Core;
using Emc.Core.Inference;
using Emc.IntegrationTests.Infrastructure;
using Emc.Tests.Shared;
using Xunit.Abstractions;

namespace Emc.IntegrationTests;

/// <summary>
/// An external engine (test/fixtures/openai_engine.py, an OpenAI-compatible server that calls its model
/// "TinyLlama-1.1B") exposed by a real `emc node --engine tiny=URL` process, deployed with
/// `emc model deploy tiny --engine`, and called through the coordinator by the official `openai` npm
/// client, unmodified (test/openai-client), and by `emc chat`. What `emc deployments --json` meters is
/// what the engine reported.
/// </summary>
public sealed class EngineTests(ITestOutputHelper log)
{
    private const string Name = "tiny";

    [Fact]
    public async Task ExternalEngine_OpenAiNpmClientStreamsThroughTheNetwork_AndUsageIsMeteredAsTheEngineReported()
    {
        var client = FindClientDirectory();
        Assert.True(
            Directory.Exists(Path.Combine(client, "node_modules", "openai")),
            $"the openai npm package is not installed: run `npm ci` in {client} (.ci/run does)");

        await using var engine = await OpenAiEngineProcess.StartAsync(true, "--model", "TinyLlama-1.1B");

        // A URL that is not http(s) is refused before the node starts.
        var (exit, output) = await EmcProcess.RunAsync(TimeSpan.FromMinutes(1), "node", "--engine", $"{Name}=ftp://127.0.0.1:{engine.Port}/v1");
        Assert.True(exit == 2, output);
        Assert.Contains("is not an http or https URL", output, StringComparison.Ordinal);

        await using var network = await EmcNetwork.StartAsync(1, "--engine", $"{Name}={engine.BaseUrl}");
        var coordinator = network.ApiUrl.ToString();
        (exit, output) = await EmcProcess.RunAsync(TimeSpan.FromMinutes(1), "model", "deploy", Name, "--engine", "--replicas", "1..2", "--coordinator", coordinator);
        Assert.True(exit == 0, output);
        Assert.Contains("Deployed engine tiny as tiny-engine", output, StringComparison.Ordinal);
        var watch = Stopwatch.StartNew();
        while (!(await network.Api.GetLanguageModelsAsync(CancellationToken.None)).Contains(Name))
        {
            Assert.True(watch.Elapsed < TimeSpan.FromMinutes(2), "the engine deployment never became ready");
            await Task.Delay(250);
        }

        // The official client, unmodified: a streamed chat completion, the same unstreamed, a completion, and errors.
        var start = new ProcessStartInfo("node", ["test.mjs"])
        {
            WorkingDirectory = client,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        start.Environment["OPENAI_BASE_URL"] = new Uri(network.ApiUrl, "v1").ToString();
        start.Environment["EMC_MODEL"] = Name;
        start.Environment["OPENAI_API_KEY"] = EmcProcess.OperatorKey;
        using var node = Process.Start(start)!;
        var stdout = node.StandardOutput.ReadToEndAsync();
        var stderr = node.StandardError.ReadToEndAsync();
        await node.WaitForExitAsync().WaitAsync(TimeSpan.FromMinutes(3));
        Assert.True(node.ExitCode == 0, $"node test.mjs failed ({node.ExitCode}):\n{await stdout}\n{await stderr}");
        log.WriteLine((await stdout).Trim());
        using var report = JsonDocument.Parse((await stdout).Trim().Split('\n')[^1]);
        Assert.True(report.RootElement.GetProperty("ok").GetBoolean());
        Assert.Equal("Tell me a story.", report.RootElement.GetProperty("text").GetString());
        var usage = report.RootElement.GetProperty("usage");
        Assert.Equal(4, usage.GetProperty("prompt_tokens").GetInt32());
        Assert.Equal(4, usage.GetProperty("completion_tokens").GetInt32());

        // `emc chat` streams the engine's answer too.
        (exit, output) = await EmcProcess.RunAsync(TimeSpan.FromMinutes(1), "chat", Name, "--message", "echo these five words please", "--coordinator", coordinator);
        Assert.True(exit == 0, output);
        Assert.Contains("echo these five words please", output, StringComparison.Ordinal);

        // Metered per deployment: as many answers and tokens as the engine reported.
        var reported = await engine.UsageAsync();
        Assert.Equal(4, reported.Count);
        (exit, output) = await EmcProcess.RunAsync(TimeSpan.FromMinutes(1), "deployments", "--json", "--coordinator", coordinator);
        Assert.True(exit == 0, output);
        var deployment = Assert.Single(JsonSerializer.Deserialize<List<DeploymentView>>(output, EmcJson.Options)!);
        log.WriteLine(output);
        Assert.Equal("tiny-engine", deployment.Id);
        Assert.Equal("engine", deployment.Kind);
        Assert.True(deployment.Spec.Engine);
        Assert.Equal(reported.Count, deployment.Usage.Requests);
        Assert.Equal(0, deployment.Usage.Unmetered);
        Assert.Equal(reported.Sum(u => u.Prompt), deployment.Usage.PromptTokens);
        Assert.Equal(reported.Sum(u => u.Completion), deployment.Usage.CompletionTokens);

        (exit, output) = await EmcProcess.RunAsync(TimeSpan.FromMinutes(1), "deployments", "--coordinator", coordinator);
        Assert.True(exit == 0, output);
        log.WriteLine(output);
        Assert.Contains("engine", output, StringComparison.Ordinal);
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
