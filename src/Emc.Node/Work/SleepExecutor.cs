using System.Text.Json;
using Emc.Core;

namespace Emc.Node.Work;

/// <summary>
/// <c>sleep</c>: input <c>{"ms": N}</c> with 0 ≤ N ≤ <see cref="MaxMilliseconds"/>; holds the device for N
/// milliseconds (or until revoked) and returns <c>{"sleptMs": N}</c>. Used for capacity drills and tests.
/// </summary>
public sealed class SleepExecutor(TimeProvider? time = null) : ITaskExecutor
{
    /// <summary>The kind name, "sleep".</summary>
    public const string KindName = "sleep";

    /// <summary>The longest sleep, one hour.</summary>
    public const long MaxMilliseconds = 3_600_000;

    private readonly TimeProvider _time = time ?? TimeProvider.System;

    /// <inheritdoc />
    public string Kind => KindName;

    /// <inheritdoc />
    public async Task<string> RunAsync(TaskContext context, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(context);
        var milliseconds = ParseInput(context.Input);
        await Task.Delay(TimeSpan.FromMilliseconds(milliseconds), _time, cancellationToken);
        return JsonSerializer.Serialize(new SleepOutput(milliseconds), EmcJson.Options);
    }

    /// <summary>The N of <c>{"ms": N}</c>; a non-retryable <see cref="TaskFailedException"/> for anything else.</summary>
    internal static long ParseInput(string? input)
    {
        const string Expected = "sleep input must be a JSON object {\"ms\": N} with N a whole number from 0 to 3600000";
        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(input ?? "");
        }
        catch (JsonException ex)
        {
            throw new TaskFailedException($"{Expected}; the input is not JSON ({ex.Message})", retryable: false, ex);
        }

        using (document)
        {
            var root = document.RootElement;
            if (root.ValueKind != JsonValueKind.Object || !root.TryGetProperty("ms", out var ms))
            {
                throw new TaskFailedException($"{Expected}; \"ms\" is missing", retryable: false);
            }

            if (ms.ValueKind != JsonValueKind.Number || !ms.TryGetInt64(out var milliseconds))
            {
                throw new TaskFailedException($"{Expected}; \"ms\" is {ms.ValueKind.ToString().ToLowerInvariant()} {Shorten(ms.GetRawText())}", retryable: false);
            }

            if (milliseconds is < 0 or > MaxMilliseconds)
            {
                throw new TaskFailedException($"{Expected}; \"ms\" is {milliseconds}", retryable: false);
            }

            return milliseconds;
        }
    }

    private static string Shorten(string text) => text.Length <= 32 ? text : string.Concat(text.AsSpan(0, 32), "...");

    private sealed record SleepOutput(long SleptMs);
}
