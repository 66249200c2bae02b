using System.CommandLine;
using Emc.Cli.Infrastructure;
using Emc.Client;

namespace Emc.Cli.Commands;

/// <summary>
/// `emc chat NAME [--message TEXT] [--system TEXT] [--max-tokens N] [--temperature T] [--seed N] [--json]`:
/// talks to a deployed language model through the OpenAI-compatible API. Without --message it reads
/// one user turn per line from stdin and prints the answer as its tokens stream, keeping the
/// conversation; with --message it answers once. --json prints the chat.completion response instead.
/// </summary>
internal static class ChatCommand
{
    public static Command Create()
    {
        var coordinator = CommonOptions.Coordinator();
        var json = new Option<bool>("--json") { Description = "Print each answer's chat.completion JSON (not streamed)." };
        var model = new Argument<string>("model") { Description = "A deployed language model (see GET /v1/models)." };
        var message = new Option<string?>("--message", "-m") { Description = "Ask this once and exit, instead of reading turns from stdin." };
        var system = new Option<string?>("--system") { Description = "A system message to start the conversation with." };
        var maxTokens = new Option<int?>("--max-tokens") { Description = "Tokens (bytes) per answer at most; the server's default is 256." };
        var temperature = new Option<double?>("--temperature") { Description = "0 for greedy answers; the default is 1." };
        var seed = new Option<long?>("--seed") { Description = "Seeds the sampler, for answers that repeat." };
        var command = new Command("chat", "Chat with a deployed language model; tokens appear as they stream.") { coordinator, json, model, message, system, maxTokens, temperature, seed };
        command.SetAction(async (result, cancellationToken) =>
        {
            var client = ApiKeyLookup.Client(result, coordinator, TimeSpan.FromMinutes(10));
            var name = result.GetValue(model)!;
            var settings = new ChatSettings { MaxTokens = result.GetValue(maxTokens), Temperature = result.GetValue(temperature), Seed = result.GetValue(seed) };
            var history = new List<ChatMessage>();
            if (result.GetValue(system) is { Length: > 0 } systemText)
            {
                history.Add(new ChatMessage("system", systemText));
            }

            if (result.GetValue(message) is { } once)
            {
                history.Add(new ChatMessage("user", once));
                return await ApiCalls.CallAsync("chat", () => AnswerAsync(client, name, history, settings, result.GetValue(json), cancellationToken));
            }

            var interactive = !Console.IsInputRedirected;
            while (true)
            {
                if (interactive)
                {
                    Console.Write("> ");
                }

                var line = await Console.In.ReadLineAsync(cancellationToken);
                if (line is null || line.Trim() is "/exit" or "/quit")
                {
                    return 0;
                }

                if (line.Length == 0)
                {
                    continue;
                }

                history.Add(new ChatMessage("user", line));
                var status = await ApiCalls.CallAsync("chat", () => AnswerAsync(client, name, history, settings, result.GetValue(json), cancellationToken));
                if (status != 0)
                {
                    // The turn did not happen: forget it, and go on unless stdin is a script.
                    history.RemoveAt(history.Count - 1);
                    if (!interactive)
                    {
                        return status;
                    }
                }
            }
        });
        return command;
    }

    private static async Task AnswerAsync(EmcApiClient client, string model, List<ChatMessage> history, ChatSettings settings, bool json, CancellationToken cancellationToken)
    {
        if (json)
        {
            var body = await client.ChatJsonAsync(model, history, settings, cancellationToken);
            Console.WriteLine(body);
            var content = System.Text.Json.Nodes.JsonNode.Parse(body)?["choices"]?[0]?["message"]?["content"];
            history.Add(new ChatMessage("assistant", (string?)content ?? ""));
            return;
        }

        var answer = new System.Text.StringBuilder();
        await foreach (var delta in client.StreamChatAsync(model, history, settings, cancellationToken))
        {
            if (delta.Text.Length > 0)
            {
                answer.Append(delta.Text);
                Console.Write(delta.Text);
                await Console.Out.FlushAsync(cancellationToken);
            }
        }

        Console.WriteLine();
        history.Add(new ChatMessage("assistant", answer.ToString()));
    }
}
