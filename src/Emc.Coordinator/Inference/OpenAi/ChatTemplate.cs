using System.Text;

namespace Emc.Coordinator.Inference.OpenAi;

/// <summary>
/// The chat template of byte-level language models, which have no special tokens: one line per
/// message, "System: …", "User: …" or "Assistant: …" (a developer message is a system one), then
/// "Assistant: " for the answer to follow. The answer stops at the next line that starts a user turn
/// (<see cref="TurnStop"/>), so a model trained on such transcripts answers one turn.
/// </summary>
public static class ChatTemplate
{
    /// <summary>The stop sequence every chat generation gets.</summary>
    public const string TurnStop = "\nUser:";

    /// <summary>The prompt for <paramref name="messages"/> (role, content), in order.</summary>
    public static string Render(IEnumerable<(string Role, string Content)> messages)
    {
        ArgumentNullException.ThrowIfNull(messages);
        var prompt = new StringBuilder();
        foreach (var (role, content) in messages)
        {
            prompt.Append(role switch
            {
                "system" or "developer" => "System: ",
                "assistant" => "Assistant: ",
                _ => "User: ",
            });
            prompt.Append(content).Append('\n');
        }

        return prompt.Append("Assistant: ").ToString();
    }
}
