using System.Threading.Channels;
using Emc.Contracts.Node.V1;
using Emc.Core.Hardware;
using Emc.Node.Connection;
using Emc.Node.Work;
using DeviceBenchmark = Emc.Core.Hardware.DeviceBenchmark;

namespace Emc.Node.Tests.Work;

/// <summary>How long a test waits for something that should happen at once.</summary>
internal static class Wait
{
    public static readonly TimeSpan Timeout = TimeSpan.FromSeconds(10);
}

/// <summary>An outbox that records what is sent, in order.</summary>
internal sealed class RecordingOutbox : INodeOutbox
{
    private readonly Channel<NodeMessage> _messages = Channel.CreateUnbounded<NodeMessage>();

    public ValueTask SendAsync(NodeMessage message, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        _messages.Writer.TryWrite(message);
        return ValueTask.CompletedTask;
    }

    /// <summary>The next message sent, waiting for it if need be.</summary>
    public async Task<NodeMessage> NextAsync() =>
        await _messages.Reader.ReadAsync().AsTask().WaitAsync(Wait.Timeout);

    /// <summary>The next message, which must be of <paramref name="expected"/> kind.</summary>
    public async Task<NodeMessage> NextAsync(NodeMessage.BodyOneofCase expected)
    {
        var message = await NextAsync();
        Assert.Equal(expected, message.BodyCase);
        return message;
    }

    /// <summary>Whether anything was sent that has not been read yet.</summary>
    public bool HasMore => _messages.Reader.TryPeek(out _);
}

/// <summary>
/// An executor whose runs the test finishes by hand: each call shows up on <see cref="NextRunAsync"/>
/// and ends when the test completes its outcome, or when the lease is cancelled.
/// </summary>
internal sealed class ControlledExecutor(string kind) : ITaskExecutor
{
    private readonly Channel<ControlledRun> _runs = Channel.CreateUnbounded<ControlledRun>();

    public string Kind => kind;

    public async Task<string> RunAsync(TaskContext context, CancellationToken cancellationToken)
    {
        var run = new ControlledRun(context);
        _runs.Writer.TryWrite(run);
        try
        {
            return await run.Outcome.Task.WaitAsync(cancellationToken);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            run.Cancelled.TrySetResult();
            throw;
        }
    }

    public async Task<ControlledRun> NextRunAsync() =>
        await _runs.Reader.ReadAsync().AsTask().WaitAsync(Wait.Timeout);
}

internal sealed class ControlledRun(TaskContext context)
{
    public TaskContext Context { get; } = context;

    public TaskCompletionSource<string> Outcome { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public TaskCompletionSource Cancelled { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
}

/// <summary>A device probe that reports fixed speeds and records the devices asked for.</summary>
internal sealed class FakeProbe : IDeviceProbe
{
    public List<string> Benchmarked { get; } = [];

    public int CudaDeviceCount => 1;

    public DeviceBenchmark Benchmark(string device, CancellationToken cancellationToken)
    {
        lock (Benchmarked)
        {
            Benchmarked.Add(device);
        }

        return new DeviceBenchmark { Device = device, MatmulGflops = 12.5, MemoryBandwidthGBps = 3.25 };
    }
}

/// <summary>A clock that moves only when told; timers fire inside <see cref="Advance"/>.</summary>
internal sealed class ManualTimeProvider : TimeProvider
{
    private readonly Lock _gate = new();
    private readonly List<ManualTimer> _timers = [];
    private DateTimeOffset _now = new(2025, 1, 1, 0, 0, 0, TimeSpan.Zero);

    public override DateTimeOffset GetUtcNow()
    {
        lock (_gate)
        {
            return _now;
        }
    }

    public override long TimestampFrequency => TimeSpan.TicksPerSecond;

    public override long GetTimestamp() => GetUtcNow().UtcTicks;

    public override ITimer CreateTimer(TimerCallback callback, object? state, TimeSpan dueTime, TimeSpan period)
    {
        var timer = new ManualTimer(this, callback, state);
        timer.Change(dueTime, period);
        return timer;
    }

    public void Advance(TimeSpan by)
    {
        List<ManualTimer> due;
        lock (_gate)
        {
            _now += by;
            due = _timers.Where(t => t.DueAt <= _now).ToList();
            foreach (var timer in due)
            {
                timer.DueAt = timer.Period > TimeSpan.Zero ? _now + timer.Period : null;
                if (timer.DueAt is null)
                {
                    _timers.Remove(timer);
                }
            }
        }

        foreach (var timer in due)
        {
            timer.Fire();
        }
    }

    private sealed class ManualTimer(ManualTimeProvider owner, TimerCallback callback, object? state) : ITimer
    {
        public DateTimeOffset? DueAt { get; set; }

        public TimeSpan Period { get; private set; }

        public bool Change(TimeSpan dueTime, TimeSpan period)
        {
            lock (owner._gate)
            {
                owner._timers.Remove(this);
                Period = period == Timeout.InfiniteTimeSpan ? TimeSpan.Zero : period;
                DueAt = dueTime == Timeout.InfiniteTimeSpan ? null : owner._now + dueTime;
                if (DueAt is not null)
                {
                    owner._timers.Add(this);
                }
            }

            return true;
        }

        public void Fire() => callback(state);

        public void Dispose()
        {
            lock (owner._gate)
            {
                owner._timers.Remove(this);
            }
        }

        public ValueTask DisposeAsync()
        {
            Dispose();
            return ValueTask.CompletedTask;
        }
    }
}
