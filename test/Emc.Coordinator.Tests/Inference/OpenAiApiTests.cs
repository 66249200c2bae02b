using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Emc.Compute.Training;
using Emc.Coordinator.Blobs;
using Emc.Coordinator.Inference;
using Emc.Coordinator.Persistence;
using Emc.Coordinator.Tests.Infrastructure;
using Emc.Coordinator.Training;
using Emc.Core;
using Emc.Core.Inference;
using Emc.Core.Training;
using Microsoft.Extensions.DependencyInjection;
using TorchSharp;

namespace Emc.Coordinator.Tests.Inference;

/// <summary>
/// The OpenAI-compatible API over a real coordinator and a real node agent in this process, serving a
/// small gpt-small with seeded weights: the text streamed, the text answered whole and the text of
/// greedy decoding run here with <see cref="TrainableModel"/> are the same.
/// </summary>
public sealed class OpenAiApiTests
{
    private const string Model = "tiny-gpt";
    private static readonly ModelSpec Spec = new() { Name = ModelSpec.GptSmall, Layers = 1, Heads = 2, Dim = 32, Context = 24 };

    // Longer than the context: the node keeps its last 24 bytes.
    private const string Prompt = "The quick brown fox jumps over the lazy dog. Then";

    [Fact]
    public async Task OpenAiApi_DeployedGptSmall_StreamsTheGreedyTextAndAnswersErrorsInOpenAiShape()
    {
        await using var coordinator = await TestCoordinator.StartAsync();
        var weights = await RegisterAsync(coordinator);
        await using var nodes = new ServingNodes(coordinator);
        await nodes.StartAsync(1);
        using (var created = await coordinator.Http.PostAsJsonAsync("api/v1/deployments", new DeploymentSpec { Model = Model }, EmcJson.Options))
        {
            Assert.Equal(HttpStatusCode.Created, created.StatusCode);
        }

        var service = coordinator.Host.Services.GetRequiredService<DeploymentService>();
        await Polling.UntilAsync(() => service.ListLanguageModels().Count == 1, TimeSpan.FromSeconds(60), "the model ready");
        var http = coordinator.Http;

        // /v1/models lists it in OpenAI's shape.
        var models = JsonNode.Parse(await http.GetStringAsync("v1/models"))!;
        Assert.Equal("list", (string?)models["object"]);
        var listed = Assert.Single(models["data"]!.AsArray())!;
        Assert.Equal(Model, (string?)listed["id"]);
        Assert.Equal("model", (string?)listed["object"]);
        Assert.Equal(24, (int)listed["max_model_len"]!);

        // Greedy decoding here and on the node give the same bytes.
        const int MaxTokens = 40;
        var expected = GreedyBytes(weights, Encoding.UTF8.GetBytes(Prompt), MaxTokens);
        var expectedText = Encoding.UTF8.GetString(expected);
        var whole = await PostAsync(http, "v1/completions", new { model = Model, prompt = Prompt, max_tokens = MaxTokens, temperature = 0 });
        Assert.Equal("text_completion", (string?)whole["object"]);
        Assert.StartsWith("cmpl-", (string?)whole["id"], StringComparison.Ordinal);
        Assert.Equal(Model, (string?)whole["model"]);
        var choice = whole["choices"]![0]!;
        Assert.Equal(expectedText, (string?)choice["text"]);
        Assert.Equal("length", (string?)choice["finish_reason"]);
        Assert.Equal(Encoding.UTF8.GetByteCount(Prompt), (int)whole["usage"]!["prompt_tokens"]!);
        Assert.Equal(MaxTokens, (int)whole["usage"]!["completion_tokens"]!);

        // Metered with the tokens the coordinator counted.
        var metered = (await coordinator.Api.GetDeploymentsAsync(CancellationToken.None)).Single();
        Assert.Equal("model", metered.Kind);
        Assert.Equal(1, metered.Usage.Requests);
        Assert.Equal(Encoding.UTF8.GetByteCount(Prompt), metered.Usage.PromptTokens);
        Assert.Equal(MaxTokens, metered.Usage.CompletionTokens);
        Assert.Equal(0, metered.Usage.Unmetered);

        // Streamed: the same text in chunks, the finish reason, a usage chunk, then [DONE].
        var events = await StreamAsync(http, "v1/completions", new { model = Model, prompt = Prompt, max_tokens = MaxTokens, temperature = 0, stream = true, stream_options = new { include_usage = true } });
        Assert.Equal("[DONE]", events[^1]);
        var chunks = events[..^1].Select(e => JsonNode.Parse(e)!).ToList();
        Assert.All(chunks, c => Assert.Equal("text_completion", (string?)c["object"]));
        var usage = chunks[^1];
        Assert.Empty(usage["choices"]!.AsArray());
        Assert.Equal(MaxTokens, (int)usage["usage"]!["completion_tokens"]!);
        var textChunks = chunks[..^1];
        Assert.True(textChunks.Count > 1, "the text came in one piece");
        Assert.Equal(expectedText, string.Concat(textChunks.Select(c => (string?)c["choices"]![0]!["text"])));
        Assert.Equal("length", (string?)textChunks[^1]["choices"]![0]!["finish_reason"]);
        Assert.All(textChunks[..^1], c => Assert.Null(c["choices"]![0]!["finish_reason"]));
        metered = (await coordinator.Api.GetDeploymentsAsync(CancellationToken.None)).Single();
        Assert.Equal(2, metered.Usage.Requests);
        Assert.Equal(2 * MaxTokens, metered.Usage.CompletionTokens);

        // A stop sequence taken from the middle of the greedy text ends it there, without the stop.
        var stopAt = Enumerable.Range(5, expected.Length - 7).FirstOrDefault(k => expected[k] is > 0x20 and < 0x7f && Array.IndexOf(expected, expected[k], 0, k) < 0);
        if (stopAt > 0)
        {
            var stop = ((char)expected[stopAt]).ToString();
            var stopped = await PostAsync(http, "v1/completions", new { model = Model, prompt = Prompt, max_tokens = MaxTokens, temperature = 0, stop = new[] { stop } });
            Assert.Equal(Encoding.UTF8.GetString(expected[..stopAt]), (string?)stopped["choices"]![0]!["text"]);
            Assert.Equal("stop", (string?)stopped["choices"]![0]!["finish_reason"]);
        }

        // Chat: streamed and whole agree, the first chunk names the role.
        var messages = new object[] { new { role = "system", content = "Be brief." }, new { role = "user", content = "Hi!" } };
        var chat = await PostAsync(http, "v1/chat/completions", new { model = Model, messages, max_tokens = 20, temperature = 0 });
        Assert.Equal("chat.completion", (string?)chat["object"]);
        Assert.Equal("assistant", (string?)chat["choices"]![0]!["message"]!["role"]);
        var chatText = (string?)chat["choices"]![0]!["message"]!["content"];
        var chatPrompt = Encoding.UTF8.GetBytes("System: Be brief.\nUser: Hi!\nAssistant: ");
        Assert.Equal(chatPrompt.Length, (int)chat["usage"]!["prompt_tokens"]!);
        var chatEvents = await StreamAsync(http, "v1/chat/completions", new { model = Model, messages, max_tokens = 20, temperature = 0, stream = true });
        Assert.Equal("[DONE]", chatEvents[^1]);
        var chatChunks = chatEvents[..^1].Select(e => JsonNode.Parse(e)!).ToList();
        Assert.All(chatChunks, c => Assert.Equal("chat.completion.chunk", (string?)c["object"]));
        Assert.Equal("assistant", (string?)chatChunks[0]["choices"]![0]!["delta"]!["role"]);
        Assert.Equal(chatText, string.Concat(chatChunks.Select(c => (string?)c["choices"]![0]!["delta"]!["content"])));
        Assert.NotNull((string?)chatChunks[^1]["choices"]![0]!["finish_reason"]);
        var greedyChat = GreedyBytes(weights, chatPrompt, 20);
        var turnEnd = greedyChat.AsSpan().IndexOf("\nUser:"u8);
        Assert.Equal(Encoding.UTF8.GetString(turnEnd >= 0 ? greedyChat[..turnEnd] : greedyChat), chatText);

        // Sampling is reproducible with a seed.
        var sampled = new { model = Model, prompt = Prompt, max_tokens = 30, temperature = 1.0, top_p = 0.9, seed = 42 };
        var first = (string?)(await PostAsync(http, "v1/completions", sampled))["choices"]![0]!["text"];
        var second = (string?)(await PostAsync(http, "v1/completions", sampled))["choices"]![0]!["text"];
        Assert.Equal(first, second);

        // Errors: OpenAI's shape and status, never a 500.
        await AssertErrorAsync(http, "v1/chat/completions", "{not json", HttpStatusCode.BadRequest, "invalid_request_error", null);
        await AssertErrorAsync(http, "v1/completions", "[1, 2]", HttpStatusCode.BadRequest, "invalid_request_error", null);
        await AssertErrorAsync(http, "v1/completions", """{"model": "absent", "prompt": "x"}""", HttpStatusCode.NotFound, "invalid_request_error", "model");
        await AssertErrorAsync(http, "v1/completions", $$"""{"model": "{{Model}}", "prompt": "x", "n": 2}""", HttpStatusCode.BadRequest, "invalid_request_error", "n");
        await AssertErrorAsync(http, "v1/completions", $$"""{"model": "{{Model}}", "prompt": "x", "max_tokens": 0}""", HttpStatusCode.BadRequest, "invalid_request_error", "max_tokens");
        await AssertErrorAsync(http, "v1/completions", $$"""{"model": "{{Model}}", "prompt": "x", "temperature": "hot"}""", HttpStatusCode.BadRequest, "invalid_request_error", "temperature");
        await AssertErrorAsync(http, "v1/chat/completions", $$"""{"model": "{{Model}}", "messages": []}""", HttpStatusCode.BadRequest, "invalid_request_error", "messages");
        await AssertErrorAsync(http, "v1/chat/completions", $$"""{"model": "{{Model}}", "messages": [{"role": "robot", "content": "x"}]}""", HttpStatusCode.BadRequest, "invalid_request_error", "messages[0].role");
        using (var missing = await http.GetAsync("v1/models/absent"))
        {
            Assert.Equal(HttpStatusCode.NotFound, missing.StatusCode);
        }

        // Undeployed: no longer listed, and a 404.
        using (var deleted = await http.DeleteAsync($"api/v1/deployments/{Model}"))
        {
            Assert.Equal(HttpStatusCode.OK, deleted.StatusCode);
        }

        Assert.Empty(JsonNode.Parse(await http.GetStringAsync("v1/models"))!["data"]!.AsArray());
        await AssertErrorAsync(http, "v1/completions", $$"""{"model": "{{Model}}", "prompt": "x"}""", HttpStatusCode.NotFound, "invalid_request_error", "model");
    }

    /// <summary>Greedy decoding with the model built here: the last <c>Context</c> bytes in, the most likely byte out.</summary>
    private static byte[] GreedyBytes(float[] weights, byte[] prompt, int count)
    {
        using var model = TrainableModel.Create(Spec, [], ModelSpec.ByteVocabulary, isText: true, "cpu", seed: 0);
        model.WriteVector(weights);
        var tokens = prompt.Select(b => (long)b).ToList();
        var generated = new byte[count];
        using var noGrad = torch.no_grad();
        for (var i = 0; i < count; i++)
        {
            using var scope = torch.NewDisposeScope();
            var window = tokens.Skip(Math.Max(0, tokens.Count - 24)).ToArray();
            var logits = model.Forward(torch.tensor(window, [1, window.Length]));
            var next = (byte)logits[0, -1].argmax().item<long>();
            generated[i] = next;
            tokens.Add(next);
        }

        return generated;
    }

    [Fact]
    public async Task OpenAiApi_TwoAccountsModels_EachKeySeesAndCallsOnlyItsOwn()
    {
        await using var coordinator = await TestCoordinator.StartAsync();
        var alice = await coordinator.CreateUserAsync("alice");
        var bob = await coordinator.CreateUserAsync("bob");
        await RegisterAsync(coordinator, "alice-gpt", "alice");
        await RegisterAsync(coordinator, "bob-gpt", "bob");
        await using var nodes = new ServingNodes(coordinator);
        await nodes.StartAsync(1);
        await nodes.StakeAsync();
        await alice.Api.DeployAsync(new DeploymentSpec { Model = "alice-gpt", Budget = 1_000_000 }, CancellationToken.None);
        await bob.Api.DeployAsync(new DeploymentSpec { Model = "bob-gpt", Budget = 1_000_000 }, CancellationToken.None);
        var service = coordinator.Host.Services.GetRequiredService<DeploymentService>();
        await Polling.UntilAsync(() => service.ListLanguageModels().Count == 2, TimeSpan.FromSeconds(90), "both models ready");

        Assert.Equal(["alice-gpt"], await alice.Api.GetLanguageModelsAsync(CancellationToken.None));
        Assert.Equal(["bob-gpt"], await bob.Api.GetLanguageModelsAsync(CancellationToken.None));
        Assert.Equal(["alice-gpt", "bob-gpt"], (await coordinator.Api.GetLanguageModelsAsync(CancellationToken.None)).Order(StringComparer.Ordinal));

        using (var own = await alice.Http.PostAsJsonAsync("v1/completions", new { model = "alice-gpt", prompt = "Once", max_tokens = 4, temperature = 0 }))
        {
            Assert.Equal(HttpStatusCode.OK, own.StatusCode);
        }

        foreach (var (path, body) in new (string, object?)[]
        {
            ("v1/models/bob-gpt", null),
            ("v1/completions", new { model = "bob-gpt", prompt = "Once", max_tokens = 4 }),
            ("v1/chat/completions", new { model = "bob-gpt", messages = new[] { new { role = "user", content = "hi" } }, max_tokens = 4 }),
        })
        {
            using var refused = body is null ? await alice.Http.GetAsync(path) : await alice.Http.PostAsJsonAsync(path, body);
            Assert.Equal(HttpStatusCode.Forbidden, refused.StatusCode);
            var error = JsonNode.Parse(await refused.Content.ReadAsStringAsync())!["error"]!;
            Assert.Equal("permission_denied", (string?)error["code"]);
        }

        var usage = (await bob.Api.GetDeploymentsAsync(CancellationToken.None)).Single().Usage;
        Assert.Equal(0, usage.Requests);
    }

    [Fact]
    public async Task OpenAiApi_PaidLanguageModel_IsChargedPerRequestAndToken_AndAnswers429InsufficientQuotaWhenSpent()
    {
        await using var coordinator = await TestCoordinator.StartAsync(services: s => s.AddSingleton(new Emc.Coordinator.Verification.InferenceAuditOptions { Enabled = false }));
        var alice = await coordinator.CreateUserAsync("alice");
        await RegisterAsync(coordinator, "alice-gpt", "alice");
        await using var nodes = new ServingNodes(coordinator);
        await nodes.StartAsync(1);
        await nodes.StakeAsync();

        // A request may cost 100 + (prompt + max_tokens) units: 4 + 4 here, so 200 units admit one and not a second.
        var view = await alice.Api.DeployAsync(new DeploymentSpec { Model = "alice-gpt", Budget = 200 }, CancellationToken.None);
        var service = coordinator.Host.Services.GetRequiredService<DeploymentService>();
        await Polling.UntilAsync(() => service.ListLanguageModels().Count == 1, TimeSpan.FromSeconds(90), "the model ready");

        var body = new { model = "alice-gpt", messages = new[] { new { role = "user", content = "Once" } }, max_tokens = 4, temperature = 0, stream = true, stream_options = new { include_usage = true } };
        long promptTokens;
        long completionTokens;
        using (var streamed = await alice.Http.PostAsJsonAsync("v1/chat/completions", body))
        {
            Assert.Equal(HttpStatusCode.OK, streamed.StatusCode);
            var events = (await streamed.Content.ReadAsStringAsync()).Split('\n').Where(l => l.StartsWith("data: {", StringComparison.Ordinal)).Select(l => JsonNode.Parse(l["data: ".Length..])!).ToList();
            var usage = events.Single(e => e["usage"] is JsonObject)["usage"]!;
            promptTokens = (long)usage["prompt_tokens"]!;
            completionTokens = (long)usage["completion_tokens"]!;
        }

        using (var refused = await alice.Http.PostAsJsonAsync("v1/chat/completions", body))
        {
            Assert.Equal(HttpStatusCode.TooManyRequests, refused.StatusCode);
            var error = JsonNode.Parse(await refused.Content.ReadAsStringAsync())!["error"]!;
            Assert.Equal("insufficient_quota", (string?)error["type"]);
            Assert.Contains("budget", (string?)error["message"], StringComparison.Ordinal);
        }

        var billing = coordinator.Host.Services.GetRequiredService<Emc.Coordinator.Ledger.InferenceBilling>();
        await billing.PostAsync(CancellationToken.None);
        var ledger = coordinator.Host.Services.GetRequiredService<Emc.Coordinator.Ledger.LedgerService>().Ledger;
        var payment = Assert.Single(await ledger.GetTransactionsAsync(0, 1000, CancellationToken.None), t => t.Kind == Emc.Ledger.TransactionKind.Pay);
        Assert.Equal($"1 requests, {promptTokens + completionTokens} tokens", payment.References.Memo);
        var escrow = Emc.Ledger.AccountId.ForEscrow(Emc.Ledger.EscrowId.Deployment(view.Spec.Escrow!));
        Assert.Equal(-(100 + promptTokens + completionTokens), payment.AmountFor(escrow));
        Assert.Equal(200 - 100 - promptTokens - completionTokens, (await alice.Api.GetDeploymentAsync(view.Id, CancellationToken.None)).BudgetLeft);
    }

    private static Task<float[]> RegisterAsync(TestCoordinator coordinator) => RegisterAsync(coordinator, Model, "operator");

    private static async Task<float[]> RegisterAsync(TestCoordinator coordinator, string name, string owner)
    {
        using var model = TrainableModel.Create(Spec, [], ModelSpec.ByteVocabulary, isText: true, "cpu", seed: 7);
        var vector = model.ReadVector();
        var weights = WeightsCodec.Encode(vector);
        var hash = await coordinator.Host.Services.GetRequiredService<BlobStore>().PutAsync(weights, CancellationToken.None);
        var descriptor = new ModelDescriptor
        {
            Name = name,
            Format = "emc-zoo",
            Model = Spec,
            SampleShape = [],
            Classes = ModelSpec.ByteVocabulary,
            IsText = true,
            Weights = hash,
            VectorLength = model.VectorLength,
            Bytes = weights.Length,
        };
        await coordinator.Host.Services.GetRequiredService<TrainingStore>().RegisterModelAsync(
            new ModelRow { Name = name, Format = "emc-zoo", DescriptorJson = JsonSerializer.Serialize(descriptor, EmcJson.Options), WeightsHash = hash, Bytes = weights.Length, Owner = owner },
            null,
            CancellationToken.None);
        return vector;
    }

    private static async Task<JsonNode> PostAsync(HttpClient http, string path, object body)
    {
        using var response = await http.PostAsJsonAsync(path, body);
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.OK, $"{(int)response.StatusCode}: {text}");
        Assert.Equal("application/json", response.Content.Headers.ContentType?.MediaType);
        return JsonNode.Parse(text)!;
    }

    /// <summary>The data of each server-sent event, in order.</summary>
    private static async Task<List<string>> StreamAsync(HttpClient http, string path, object body)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, path) { Content = JsonContent.Create(body) };
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

    private static async Task AssertErrorAsync(HttpClient http, string path, string body, HttpStatusCode status, string type, string? param)
    {
        using var response = await http.PostAsync(path, new StringContent(body, Encoding.UTF8, "application/json"));
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == status, $"{(int)response.StatusCode}: {text}");
        var error = JsonNode.Parse(text)!["error"]!;
        Assert.False(string.IsNullOrEmpty((string?)error["message"]));
        Assert.Equal(type, (string?)error["type"]);
        Assert.Equal(param, (string?)error["param"]);
        Assert.True(error.AsObject().ContainsKey("code"));
    }
}
