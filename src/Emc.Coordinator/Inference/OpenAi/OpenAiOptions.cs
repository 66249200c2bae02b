using System.ComponentModel.DataAnnotations;

namespace Emc.Coordinator.Inference.OpenAi;

/// <summary>How the OpenAI-compatible API (<c>/v1/models</c>, <c>/v1/completions</c>, <c>/v1/chat/completions</c>) accepts requests.</summary>
public sealed class OpenAiOptions
{
    /// <summary>Tokens generated when a request does not say (<c>max_tokens</c>). Default 256 (a token is a byte).</summary>
    [Range(1, 1_000_000)]
    public int DefaultMaxTokens { get; set; } = 256;

    /// <summary>The most tokens a request may ask for; more is a 400. Default 4096.</summary>
    [Range(1, 1_000_000)]
    public int MaxTokensLimit { get; set; } = 4096;

    /// <summary>The largest request body; larger ones are a 413 before they are parsed. Default 1 MiB.</summary>
    [Range(1024, 64 * 1024 * 1024)]
    public int MaxRequestBytes { get; set; } = 1024 * 1024;

    /// <summary>How long a whole generation may run, first token to last. Default 5 min.</summary>
    public TimeSpan Timeout { get; set; } = TimeSpan.FromMinutes(5);

    /// <summary>The <c>owned_by</c> of listed models. Default "emc".</summary>
    [Required]
    public string OwnedBy { get; set; } = "emc";
}
