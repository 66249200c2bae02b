using System.Threading.Channels;

namespace Emc.Node.Tests.Inference;

/// <summary>
/// A batch function that reports every batch it is given, counts how many run at once, and, when
/// <see cref="Blocking"/>, holds each batch until the test releases it. Item i's result is "r{i}".
/// </summary>
internal sealed class BatchProbe
{
    public static readonly TimeSpan Timeout = TimeSpan.FromSeconds(10);

    private readonly Channel<BatchCall> _started = Channel.CreateUnbounded<BatchCall>();
    private int _running;
    private int _maxRunning;

    public BatchProbe(bool blocking)
    {
        Blocking = blocking;
    }

    public bool Blocking { get; }

    /// <summary>The most batches seen running at once.</summary>
    public int MaxRunning => Volatile.Read(ref _maxRunning);

    public static IReadOnlyList<string> ResultsFor(IEnumerable<int> items) => items.Select(i => $"r{i}").ToArray();

    public async ValueTask<IReadOnlyList<string>> RunAsync(IReadOnlyList<int> items, CancellationToken cancellationToken)
    {
        var running = Interlocked.Increment(ref _running);
        var max = Volatile.Read(ref _maxRunning);
        while (running > max && Interlocked.CompareExchange(ref _maxRunning, running, max) != max)
        {
            max = Volatile.Read(ref _maxRunning);
        }

        try
        {
            var call = new BatchCall(items.ToArray(), cancellationToken);
            _started.Writer.TryWrite(call);
            if (!Blocking)
            {
                return ResultsFor(items);
            }

            // Bounded, so that a failed test's held batch cannot make the batcher's disposal hang.
            return await call.Outcome.Task.WaitAsync(Timeout, CancellationToken.None) ?? ResultsFor(items);
        }
        finally
        {
            Interlocked.Decrement(ref _running);
        }
    }

    /// <summary>The next batch to start, waiting for it if need be.</summary>
    public async Task<BatchCall> NextAsync() => await _started.Reader.ReadAsync().AsTask().WaitAsync(Timeout);

    /// <summary>Whether a batch has started that <see cref="NextAsync"/> has not returned yet.</summary>
    public bool HasPending => _started.Reader.Count > 0;
}

/// <summary>One call of the batch function.</summary>
internal sealed class BatchCall(int[] items, CancellationToken token)
{
    public int[] Items { get; } = items;

    public CancellationToken Token { get; } = token;

    /// <summary>Null: the default results.</summary>
    public TaskCompletionSource<IReadOnlyList<string>?> Outcome { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public void Release() => Outcome.TrySetResult(null);

    public void ReleaseWith(IReadOnlyList<string> results) => Outcome.TrySetResult(results);

    public void Fail(Exception exception) => Outcome.TrySetException(exception);
}
