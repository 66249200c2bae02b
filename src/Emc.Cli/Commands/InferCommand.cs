using System.CommandLine;
using System.Text.Json;
using Emc.Cli.Infrastructure;
using Emc.Client;

namespace Emc.Cli.Commands;

/// <summary>`emc infer NAME[:VERSION] --input FILE|JSON [--json]`: one Open Inference Protocol request.</summary>
internal static class InferCommand
{
    public static Command Create()
    {
        var coordinator = CommonOptions.Coordinator();
        var json = CommonOptions.Json();
        var reference = new Argument<string>("model") { Description = "NAME or NAME:VERSION of a deployed model." };
        var input = new Option<string>("--input") { Description = "The request body (Open Inference Protocol JSON), or a file holding it.", Required = true };
        var command = new Command("infer", "Run one inference request on a deployed model.") { coordinator, json, reference, input };
        command.SetAction(async (result, cancellationToken) =>
        {
            if (!ModelCommand.TryParseReference(result.GetValue(reference)!, out var name, out var version))
            {
                await Console.Error.WriteLineAsync($"emc infer: '{result.GetValue(reference)}' is not NAME or NAME:VERSION.");
                return 2;
            }

            var text = result.GetValue(input)!;
            var body = text.TrimStart().StartsWith('{') ? text : File.Exists(text) ? await File.ReadAllTextAsync(text, cancellationToken) : null;
            if (body is null)
            {
                await Console.Error.WriteLineAsync($"emc infer: --input is neither a JSON object nor a file: '{text}'.");
                return 2;
            }

            return await ApiCalls.CallAsync("infer", async () =>
            {
                var answer = await ApiKeyLookup.Client(result, coordinator).InferJsonAsync(name, version?.ToString(System.Globalization.CultureInfo.InvariantCulture), body, cancellationToken);
                if (result.GetValue(json))
                {
                    Console.WriteLine(answer);
                    return;
                }

                // Without --json: one line per output, its name, shape and data.
                using var document = JsonDocument.Parse(answer);
                if (!document.RootElement.TryGetProperty("outputs", out var outputs))
                {
                    Console.WriteLine(answer);
                    return;
                }

                foreach (var output in outputs.EnumerateArray())
                {
                    var shape = output.TryGetProperty("shape", out var s) ? string.Join("×", s.EnumerateArray().Select(d => d.GetRawText())) : "";
                    var data = output.TryGetProperty("data", out var d) ? d.GetRawText() : "(binary)";
                    Console.WriteLine($"{output.GetProperty("name").GetString()} [{shape}] {output.GetProperty("datatype").GetString()}: {data}");
                }
            });
        });
        return command;
    }
}
