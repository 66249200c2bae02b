using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json.Nodes;
using Emc.Coordinator.Inference;
using Emc.Coordinator.Tests.Infrastructure;
using Emc.Core;
using Emc.Core.Inference;
using Emc.Node.Inference;
using Emc.Tests.Shared;
using Microsoft.Extensions.DependencyInjection;

namespace Emc.Coordinator.Tests.Inference;

/// <summary>
/// An external engine (test/fixtures/openai_engine.py, serving its model as "tiny-7b") exposed by a real
/// node agent in this process as "tiny", deployed on a real coordinator, and called through the
/// coordinator's OpenAI-compatible API: the answers are the engine's with the network's name, usage is
/// stripped when not asked for and metered always, the engine's own errors pass through, and a client
/// that goes away stops the engine.
/// </summary>
public sealed class EngineServingTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(60);

    [Fact]
    public async Task EngineDeployment_PassesRequestsThroughAndMetersTheEnginesUsage()
    {
        await using var engine = await OpenAiEngineProcess.StartAsync(true, "--model", "tiny-7b");
        await using var coordinator = await TestCoordinator.StartAsync();
        await using var nodes = new ServingNodes(coordinator);
        await nodes.StartAsync(1, [new EngineEndpoint("tiny", engine.BaseUrl)]);
        var http = coordinator.Http;

        using (var created = await http.PostAsJsonAsync("api/v1/deployments", new DeploymentSpec { Model = "tiny", Engine = true, MaxOngoingPerReplica = 16 }, EmcJson.Options))
        {
            Assert.Equal(HttpStatusCode.Created, created.StatusCode);
        }

        // One deployment per name: the engine again, or a registered model of that name, is a conflict.
        using (var again = await http.PostAsJsonAsync("api/v1/deployments", new DeploymentSpec { Model = "tiny", Engine = true }, EmcJson.Options))
        {
            Assert.Equal(HttpStatusCode.Conflict, again.StatusCode);
        }

        using (var model = await http.PostAsJsonAsync("api/v1/deployments", new DeploymentSpec { Model = "tiny" }, EmcJson.Options))
        {
            Assert.Equal(HttpStatusCode.Conflict, model.StatusCode);
        }

        using (var bad = await http.PostAsJsonAsync("api/v1/deployments", new DeploymentSpec { Model = "ti:ny", Engine = true }, EmcJson.Options))
        {
            Assert.Equal(HttpStatusCode.BadRequest, bad.StatusCode);
        }

        var service = coordinator.Host.Services.GetRequiredService<DeploymentService>();
        await WaitForAsync(() => service.ListLanguageModels().Any(m => m.Name == "tiny"), "the engine's replica ready");

        // Listed by /v1/models, and not a tensor model for the Open Inference Protocol.
        var listed = Assert.Single(JsonNode.Parse(await http.GetStringAsync("v1/models"))!["data"]!.AsArray())!;
        Assert.Equal("tiny", (string?)listed["id"]);
        Assert.True((bool)listed["engine"]!);
        using (var oip = await http.GetAsync("v2/models/tiny"))
        {
            Assert.Equal(HttpStatusCode.NotFound, oip.StatusCode);
        }

        // A whole chat completion: the engine's answer, under the network's name.
        var messages = new JsonArray(new JsonObject { ["role"] = "system", ["content"] = "answer briefly" }, new JsonObject { ["role"] = "user", ["content"] = "the quick brown fox jumps" });
        var whole = await PostAsync(http, "v1/chat/completions", new JsonObject { ["model"] = "tiny", ["messages"] = messages.DeepClone(), ["max_tokens"] = 4 });
        Assert.Equal("chat.completion", (string?)whole["object"]);
        Assert.Equal("tiny", (string?)whole["model"]);
        Assert.StartsWith("fixture-", (string?)whole["id"], StringComparison.Ordinal);
        Assert.Equal("the quick brown fox", (string?)whole["choices"]![0]!["message"]!["content"]);
        Assert.Equal("length", (string?)whole["choices"]![0]!["finish_reason"]);
        Assert.Equal(7, (int)whole["usage"]!["prompt_tokens"]!);
        Assert.Equal(4, (int)whole["usage"]!["completion_tokens"]!);

        // Streamed without usage: the client sees no usage chunk and no usage fields, though the engine was asked for them.
        var events = await StreamAsync(http, "v1/chat/completions", new JsonObject { ["model"] = "tiny", ["messages"] = messages.DeepClone(), ["stream"] = true });
        Assert.Equal("[DONE]", events[^1]);
        var chunks = events[..^1].Select(e => JsonNode.Parse(e)!.AsObject()).ToList();
        Assert.All(chunks, c => Assert.Equal("tiny", (string?)c["model"]));
        Assert.All(chunks, c => Assert.False(c.ContainsKey("usage")));
        Assert.All(chunks, c => Assert.Single(c["choices"]!.AsArray()));
        Assert.Equal("assistant", (string?)chunks[0]["choices"]![0]!["delta"]!["role"]);
        Assert.Equal("the quick brown fox jumps", string.Concat(chunks.Select(c => (string?)c["choices"]![0]!["delta"]!["content"])));
        Assert.Equal("stop", (string?)chunks[^1]["choices"]![0]!["finish_reason"]);

        // Streamed with usage: the engine's usage chunk comes last, as the client asked.
        var withUsage = await StreamAsync(http, "v1/completions", new JsonObject
        {
            ["model"] = "tiny",
            ["prompt"] = "one two three",
            ["stream"] = true,
            ["stream_options"] = new JsonObject { ["include_usage"] = true },
        });
        Assert.Equal("[DONE]", withUsage[^1]);
        var usageChunk = JsonNode.Parse(withUsage[^2])!;
        Assert.Empty(usageChunk["choices"]!.AsArray());
        Assert.Equal(3, (int)usageChunk["usage"]!["prompt_tokens"]!);
        Assert.Equal(3, (int)usageChunk["usage"]!["completion_tokens"]!);

        // The engine's own refusal, with its status and body; a body that is not JSON gets ours.
        await AssertErrorAsync(http, "v1/chat/completions", new JsonObject { ["model"] = "tiny", ["messages"] = messages.DeepClone(), ["n"] = 2 }.ToJsonString(), HttpStatusCode.BadRequest, "n");
        await AssertErrorAsync(http, "v1/completions", new JsonObject { ["model"] = "tiny", ["prompt"] = "x", ["stream"] = true, ["temperature"] = 9 }.ToJsonString(), HttpStatusCode.BadRequest, "temperature");
        await AssertErrorAsync(http, "v1/completions", new JsonObject { ["model"] = "tiny", ["prompt"] = "x", ["stream"] = "yes" }.ToJsonString(), HttpStatusCode.BadRequest, "stream");

        // An engine that fails with 5xx on every replica: a 503 after the retries, never a 500.
        await AssertErrorAsync(http, "v1/completions", new JsonObject { ["model"] = "tiny", ["prompt"] = "x", ["x_fixture"] = new JsonObject { ["fail_status"] = 500 } }.ToJsonString(), HttpStatusCode.ServiceUnavailable, null);

        // Metered: every answer, with the usage the engine reported (the engine's refusals and failures are not answers).
        await engine.WaitForStatsAsync(s => (int)s["active"]! == 0, Timeout);
        var reported = await engine.UsageAsync();
        Assert.Equal(3, reported.Count);
        var view = (await coordinator.Api.GetDeploymentsAsync(CancellationToken.None)).Single(d => d.Id == "tiny-engine");
        Assert.Equal("engine", view.Kind);
        Assert.Equal("ready", view.State);
        Assert.Equal(3, view.Usage.Requests);
        Assert.Equal(0, view.Usage.Unmetered);
        Assert.Equal(reported.Sum(u => u.Prompt), view.Usage.PromptTokens);
        Assert.Equal(reported.Sum(u => u.Completion), view.Usage.CompletionTokens);

        // An engine that sends garbage after its first token: the stream ends with an error event and [DONE].
        var broken = await StreamAsync(http, "v1/completions", new JsonObject { ["model"] = "tiny", ["prompt"] = "a b c d", ["stream"] = true, ["x_fixture"] = new JsonObject { ["garbage"] = true } });
        Assert.Equal("[DONE]", broken[^1]);
        Assert.Equal("a", (string?)JsonNode.Parse(broken[0])!["choices"]![0]!["text"]);
        Assert.Contains("not JSON", (string?)JsonNode.Parse(broken[^2])!["error"]!["message"], StringComparison.Ordinal);

        // A client that goes away mid-stream stops the engine's request.
        await engine.WaitForStatsAsync(s => (int)s["active"]! == 0, Timeout);
        var disconnected = (int)(await engine.StatsAsync())["disconnected"]!;
        using (var request = new HttpRequestMessage(HttpMethod.Post, "v1/completions")
        {
            Content = new StringContent(new JsonObject
            {
                ["model"] = "tiny",
                ["prompt"] = string.Join(' ', Enumerable.Range(0, 200).Select(i => $"w{i}")),
                ["max_tokens"] = 200,
                ["stream"] = true,
                ["x_fixture"] = new JsonObject { ["token_delay_ms"] = 50 },
            }.ToJsonString(), Encoding.UTF8, "application/json"),
        })
        using (var response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead))
        {
            using var reader = new StreamReader(await response.Content.ReadAsStreamAsync());
            Assert.StartsWith("data: ", await reader.ReadLineAsync(), StringComparison.Ordinal);
        }

        await engine.WaitForStatsAsync(s => (int)s["disconnected"]! > disconnected, Timeout);

        // Both were answered, without usage that reached the coordinator: unmetered.
        await WaitForAsync(() => coordinator.Api.GetDeploymentsAsync(CancellationToken.None).GetAwaiter().GetResult().Single().Usage.Requests == 5, "the abandoned stream metered");
        view = (await coordinator.Api.GetDeploymentsAsync(CancellationToken.None)).Single();
        Assert.Equal(2, view.Usage.Unmetered);
        Assert.Equal(reported.Sum(u => u.Prompt), view.Usage.PromptTokens);

        // Undeployed: gone from /v1/models, and a 404.
        using (var deleted = await http.DeleteAsync("api/v1/deployments/tiny"))
        {
            Assert.Equal(HttpStatusCode.OK, deleted.StatusCode);
        }

        Assert.Empty(JsonNode.Parse(await http.GetStringAsync("v1/models"))!["data"]!.AsArray());
        await AssertErrorAsync(http, "v1/completions", """{"model": "tiny", "prompt": "x"}""", HttpStatusCode.NotFound, "model");
    }

    [Fact]
    public async Task EngineDeployment_NoNodeHasTheEngine_StaysPendingAndSaysWhy()
    {
        await using var coordinator = await TestCoordinator.StartAsync(services: s => s.Configure<Emc.Coordinator.Inference.OpenAi.OpenAiOptions>(o => o.Timeout = TimeSpan.FromSeconds(1)));
        await using var nodes = new ServingNodes(coordinator);
        await nodes.StartAsync(1);

        var view = await coordinator.Api.DeployAsync(new DeploymentSpec { Model = "ghost", Engine = true }, CancellationToken.None);
        Assert.Equal("ghost-engine", view.Id);
        Assert.Equal("engine", view.Kind);

        string? reason = null;
        await WaitForAsync(
            () =>
            {
                view = coordinator.Api.GetDeploymentsAsync(CancellationToken.None).GetAwaiter().GetResult().Single();
                reason = view.Replicas.Count > 0 ? view.Replicas[0].Reason : null;
                return reason is not null;
            },
            "the scheduler's reason");
        Assert.Equal("pending", view.State);
        Assert.Equal("waiting", view.Replicas[0].State);
        Assert.Contains("engine:ghost=openai", reason, StringComparison.Ordinal);

        // Not listed, and called meanwhile: no ready replica, in OpenAI's shape.
        using (var listed = await coordinator.Http.GetAsync("v1/models/ghost"))
        {
            Assert.Equal(HttpStatusCode.NotFound, listed.StatusCode);
        }

        await AssertErrorAsync(coordinator.Http, "v1/chat/completions", """{"model":"ghost","messages":[{"role":"user","content":"hi"}]}""", HttpStatusCode.ServiceUnavailable, null);
    }

    private static async Task<JsonNode> PostAsync(HttpClient http, string path, JsonObject body)
    {
        using var response = await http.PostAsync(path, new StringContent(body.ToJsonString(), Encoding.UTF8, "application/json"));
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.OK, $"{(int)response.StatusCode}: {text}");
        Assert.Equal("application/json", response.Content.Headers.ContentType?.MediaType);
        return JsonNode.Parse(text)!;
    }

    /// <summary>The data of each server-sent event, in order.</summary>
    private static async Task<List<string>> StreamAsync(HttpClient http, string path, JsonObject body)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, path) { Content = new StringContent(body.ToJsonString(), Encoding.UTF8, "application/json") };
        using var response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("text/event-stream", response.Content.Headers.ContentType?.MediaType);
        using var reader = new StreamReader(await response.Content.ReadAsStreamAsync());
        var events = new List<string>();
        while (await reader.ReadLineAsync() is { } line)
        {
            if (line.StartsWith("data: ", StringComparison.Ordinal))
            {
                events.Add(line["data: ".Length..]);
            }
            else
            {
                Assert.Equal("", line);
            }
        }

        return events;
    }

    private static async Task AssertErrorAsync(HttpClient http, string path, string body, HttpStatusCode status, string? param)
    {
        using var response = await http.PostAsync(path, new StringContent(body, Encoding.UTF8, "application/json"));
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == status, $"{(int)response.StatusCode}: {text}");
        var error = JsonNode.Parse(text)!["error"]!;
        Assert.False(string.IsNullOrEmpty((string?)error["message"]));
        Assert.Equal(param, (string?)error["param"]);
    }

    private static async Task WaitForAsync(Func<bool> condition, string what)
    {
        var deadline = DateTime.UtcNow + Timeout;
        while (!condition())
        {
            if (DateTime.UtcNow > deadline)
            {
                throw new TimeoutException($"timed out waiting for {what}");
            }

            await Task.Delay(50);
        }
    }
}
