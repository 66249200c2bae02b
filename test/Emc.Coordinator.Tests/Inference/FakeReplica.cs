using System.Collections.Concurrent;
using System.Threading.Channels;
using Emc.Coordinator.Inference;

namespace Emc.Coordinator.Tests.Inference;

/// <summary>
/// A replica that counts what the router does to it: calls, requests in flight (and the most at once),
/// the order requests arrive in. It answers at once, runs <see cref="Handler"/>, or holds each call until
/// the test releases or fails it.
/// </summary>
internal sealed class FakeReplica(string id, int cap = 5, string node = "node-1") : IReplica<int, string>
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(5);

    private readonly ConcurrentQueue<TaskCompletionSource<string>> _held = new();
    private readonly ConcurrentQueue<int> _arrivals = new();
    private readonly Channel<int> _arrived = Channel.CreateUnbounded<int>();
    private int _calls;
    private int _successes;
    private int _inFlight;
    private int _maxInFlight;

    public string ReplicaId => id;

    public string NodeId => node;

    public int MaxOngoingRequests => cap;

    /// <summary>When set, every call waits until <see cref="Release"/> or <see cref="Fail"/> (or its token fires).</summary>
    public bool Hold { get; set; }

    /// <summary>Runs each call that is not held; null answers at once.</summary>
    public Func<int, CancellationToken, Task<string>>? Handler { get; set; }

    public int Calls => Volatile.Read(ref _calls);

    public int Successes => Volatile.Read(ref _successes);

    public int InFlight => Volatile.Read(ref _inFlight);

    public int MaxInFlight => Volatile.Read(ref _maxInFlight);

    public int HeldCount => _held.Count;

    public IReadOnlyList<int> Arrivals => [.. _arrivals];

    public CancellationToken LastToken { get; private set; }

    public async Task<string> SendAsync(int request, CancellationToken cancellationToken)
    {
        Interlocked.Increment(ref _calls);
        var now = Interlocked.Increment(ref _inFlight);
        for (var max = Volatile.Read(ref _maxInFlight); now > max; max = Volatile.Read(ref _maxInFlight))
        {
            Interlocked.CompareExchange(ref _maxInFlight, now, max);
        }

        LastToken = cancellationToken;
        _arrivals.Enqueue(request);
        try
        {
            string answer;
            if (Hold)
            {
                var pending = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
                using var registration = cancellationToken.Register(() => pending.TrySetCanceled(cancellationToken));
                _held.Enqueue(pending);
                _arrived.Writer.TryWrite(request);
                answer = await pending.Task;
            }
            else
            {
                _arrived.Writer.TryWrite(request);
                answer = Handler is null ? $"{id}:{request}" : await Handler(request, cancellationToken);
            }

            Interlocked.Increment(ref _successes);
            return answer;
        }
        finally
        {
            Interlocked.Decrement(ref _inFlight);
        }
    }

    /// <summary>Waits until <paramref name="count"/> more calls have arrived.</summary>
    public async Task WaitForCallsAsync(int count = 1)
    {
        using var timeout = new CancellationTokenSource(Timeout);
        for (var i = 0; i < count; i++)
        {
            await _arrived.Reader.ReadAsync(timeout.Token);
        }
    }

    /// <summary>Answers up to <paramref name="count"/> held calls, oldest first.</summary>
    public int Release(int count = int.MaxValue)
    {
        var released = 0;
        while (released < count && _held.TryDequeue(out var pending))
        {
            if (pending.TrySetResult($"{id}:released"))
            {
                released++;
            }
        }

        return released;
    }

    /// <summary>Fails every held call with <paramref name="exception"/> (the stream broke).</summary>
    public int Fail(Exception exception)
    {
        var failed = 0;
        while (_held.TryDequeue(out var pending))
        {
            if (pending.TrySetException(exception))
            {
                failed++;
            }
        }

        return failed;
    }
}
