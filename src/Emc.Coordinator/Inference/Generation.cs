using System.Text;
using System.Threading.Channels;

namespace Emc.Coordinator.Inference;

/// <summary>A text generation for a byte-level language model: a token is one UTF-8 byte.</summary>
public sealed record GenerationRequest
{
    /// <summary>The prompt; the node keeps the model's window of it, from the right.</summary>
    public required byte[] Prompt { get; init; }

    /// <summary>Tokens to generate at most, at least 1.</summary>
    public required int MaxTokens { get; init; }

    /// <summary>0 for greedy decoding.</summary>
    public float Temperature { get; init; }

    /// <summary>Nucleus sampling's mass, in (0, 1].</summary>
    public float TopP { get; init; } = 1;

    /// <summary>Seeds the sampler: the same request gives the same text.</summary>
    public ulong Seed { get; init; }

    /// <summary>Stop sequences (UTF-8); the text ends before the first, which it does not include.</summary>
    public IReadOnlyList<byte[]> Stops { get; init; } = [];
}

/// <summary>New text of a generation, or its end.</summary>
/// <param name="Text">New text (whole characters); empty on the last delta when there is none.</param>
/// <param name="FinishReason">"stop" or "length" on the last delta; null before.</param>
/// <param name="CompletionTokens">On the last delta: the tokens generated.</param>
public readonly record struct GenerationDelta(string Text, string? FinishReason, int CompletionTokens);

/// <summary>Why a generation could not start; the OpenAI front end maps it to a status.</summary>
public enum GenerationFailure
{
    /// <summary>400: the request does not fit the model (or it is not a language model).</summary>
    BadRequest,

    /// <summary>404: no deployed model of that name.</summary>
    NotFound,

    /// <summary>429: every replica is busy and the queue is full.</summary>
    Overloaded,

    /// <summary>503: no ready replica, or every replica tried failed.</summary>
    Unavailable,

    /// <summary>503: the deadline passed before the first token.</summary>
    DeadlineExceeded,

    /// <summary>429 insufficient_quota: the deployment's budget cannot pay for the request.</summary>
    BudgetSpent,
}

/// <summary>A generation failed before its first token.</summary>
public sealed class GenerationException : Exception
{
    public GenerationException()
    {
    }

    public GenerationException(string message)
        : base(message)
    {
    }

    public GenerationException(string message, Exception innerException)
        : base(message, innerException)
    {
    }

    public GenerationException(GenerationFailure kind, string message)
        : base(message)
    {
        Kind = kind;
    }

    public GenerationFailure Kind { get; } = GenerationFailure.Unavailable;
}

/// <summary>
/// A generation that has started (its first text, or its end, came from a replica): the deltas so far
/// and to come. The reader completes after the last delta, or with a <see cref="GenerationException"/>
/// when the replica failed midway (the text so far stands; it is not retried elsewhere).
/// </summary>
public sealed class GenerationResult(ChannelReader<GenerationDelta> deltas, int promptTokens, string replicaId)
{
    public ChannelReader<GenerationDelta> Deltas { get; } = deltas;

    /// <summary>The prompt's tokens (bytes) as the client sent it.</summary>
    public int PromptTokens { get; } = promptTokens;

    /// <summary>The replica that generates it.</summary>
    public string ReplicaId { get; } = replicaId;

    /// <summary>The deployment the replica belongs to, for metering.</summary>
    public string DeploymentId { get; init; } = "";
}

/// <summary>Where a replica puts a generation's deltas; the first write (or the end) starts the answer.</summary>
internal sealed class GenerationSink
{
    private readonly Channel<GenerationDelta> _deltas;
    private readonly TaskCompletionSource<string> _started = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private int _completionTokens;

    public GenerationSink(int capacity) =>
        _deltas = Channel.CreateBounded<GenerationDelta>(new BoundedChannelOptions(Math.Max(2, capacity))
        {
            SingleReader = true,
            SingleWriter = true,
            FullMode = BoundedChannelFullMode.Wait,
        });

    public ChannelReader<GenerationDelta> Reader => _deltas.Reader;

    /// <summary>Completes with the replica's id when the first delta is written.</summary>
    public Task<string> Started => _started.Task;

    public bool HasStarted => _started.Task.IsCompleted;

    /// <summary>The tokens generated, as the last delta said (0 until it came).</summary>
    public int CompletionTokens => Volatile.Read(ref _completionTokens);

    public bool TryWrite(string replicaId, GenerationDelta delta)
    {
        if (delta.FinishReason is not null)
        {
            Volatile.Write(ref _completionTokens, Math.Max(0, delta.CompletionTokens));
        }

        var written = _deltas.Writer.TryWrite(delta);
        _started.TrySetResult(replicaId);
        return written;
    }

    public void Complete(Exception? error) => _deltas.Writer.TryComplete(error);

    /// <summary>Decodes one chunk's bytes: the node cuts chunks at character boundaries, so each decodes alone.</summary>
    public static string Decode(ReadOnlySpan<byte> text) => Encoding.UTF8.GetString(text);
}

/// <summary>A deployed language model as <c>/v1/models</c> lists it.</summary>
/// <param name="Name">The registered name.</param>
/// <param name="Version">The deployed version.</param>
/// <param name="DeployedAt">When it was deployed.</param>
/// <param name="Context">Its context window, in tokens (bytes); 0 when unknown (an engine's).</param>
/// <param name="Engine">Whether it is an external engine, whose requests pass through to it.</param>
public sealed record LanguageModelInfo(string Name, int Version, DateTimeOffset DeployedAt, int Context, bool Engine = false);
