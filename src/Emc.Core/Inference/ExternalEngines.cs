using Emc.Core.Training;

namespace Emc.Core.Inference;

/// <summary>
/// How external engines (OpenAI-compatible servers a node runs itself, such as vLLM or llama.cpp's
/// server) are named. A node started with <c>--engine NAME=URL</c> carries the placement label
/// <c>engine:NAME=openai</c>, which an engine deployment's replicas require.
/// </summary>
public static class EngineNames
{
    /// <summary>The label key's prefix; the key is the prefix and the engine's name.</summary>
    public const string LabelPrefix = "engine:";

    /// <summary>The label's value: the protocol the engine speaks.</summary>
    public const string LabelValue = "openai";

    /// <summary>The longest engine name: a label key holds at most 64 characters, the prefix included.</summary>
    public const int MaxLength = 64 - 7;

    /// <summary>What <see cref="IsValid"/> accepts, for error messages.</summary>
    public const string Rule = "an engine name is 1 to 57 letters, digits, '.', '_' or '-' (a model name the network serves it under)";

    /// <summary>True for a valid engine name: a model name short enough for its label.</summary>
    public static bool IsValid(string? name) => name is { Length: <= MaxLength } && ModelNames.IsValid(name);

    /// <summary>The placement label key of the engine <paramref name="name"/>.</summary>
    public static string LabelKey(string name) => LabelPrefix + name;
}

/// <summary>Bounds of engine calls between coordinator and nodes.</summary>
public static class EngineLimits
{
    /// <summary>The largest request body passed to an engine (the coordinator's own limit is usually lower).</summary>
    public const int MaxRequestBytes = 8 * 1024 * 1024;

    /// <summary>The largest payload of one server-sent event from an engine; a larger one ends the stream with an error.</summary>
    public const int MaxEventBytes = 1024 * 1024;

    /// <summary>The largest whole (not streamed) answer of an engine.</summary>
    public const int MaxBodyBytes = 16 * 1024 * 1024;

    /// <summary>A whole answer travels in pieces of at most this many bytes.</summary>
    public const int PieceBytes = 256 * 1024;

    /// <summary>Bytes of one call's chunks the coordinator holds for a slow client before it ends the call.</summary>
    public const int MaxBufferedBytes = 32 * 1024 * 1024;

    /// <summary>The request paths an engine call may take, under the engine's base URL.</summary>
    public static bool IsPath(string? path) => path is "chat/completions" or "completions";
}
