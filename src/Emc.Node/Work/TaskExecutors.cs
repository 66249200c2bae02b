using System.Diagnostics.CodeAnalysis;
using Emc.Core.Hardware;

namespace Emc.Node.Work;

/// <summary>
/// The executors a node offers, by kind. Filled before the agent starts and only read afterwards,
/// so lookups need no lock.
/// </summary>
public sealed class TaskExecutors
{
    private readonly Dictionary<string, ITaskExecutor> _byKind = new(StringComparer.Ordinal);

    /// <summary>An empty registry.</summary>
    public TaskExecutors()
    {
    }

    /// <summary>A registry holding <paramref name="executors"/>; each kind at most once.</summary>
    public TaskExecutors(IEnumerable<ITaskExecutor> executors)
    {
        ArgumentNullException.ThrowIfNull(executors);
        foreach (var executor in executors)
        {
            Add(executor);
        }
    }

    /// <summary>The kinds this node runs, in ordinal order.</summary>
    public IReadOnlyList<string> Kinds => _byKind.Keys.Order(StringComparer.Ordinal).ToList();

    /// <summary>The built-in executors: <c>benchmark</c> over <paramref name="probe"/>, and <c>sleep</c>.</summary>
    public static TaskExecutors CreateDefault(IDeviceProbe probe, TimeProvider? time = null) =>
        new([new BenchmarkExecutor(probe), new SleepExecutor(time)]);

    /// <summary>Adds an executor; throws <see cref="ArgumentException"/> when its kind is taken or empty.</summary>
    public TaskExecutors Add(ITaskExecutor executor)
    {
        ArgumentNullException.ThrowIfNull(executor);
        if (string.IsNullOrEmpty(executor.Kind))
        {
            throw new ArgumentException("An executor must name its kind.", nameof(executor));
        }

        if (!_byKind.TryAdd(executor.Kind, executor))
        {
            throw new ArgumentException($"An executor for kind '{executor.Kind}' is already registered.", nameof(executor));
        }

        return this;
    }

    /// <summary>The executor of <paramref name="kind"/>, if this node has one.</summary>
    public bool TryGet(string kind, [NotNullWhen(true)] out ITaskExecutor? executor) =>
        _byKind.TryGetValue(kind, out executor);
}
