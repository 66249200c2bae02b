using Emc.Node.Work;

namespace Emc.Node.Tests.Work;

public sealed class TaskExecutorsTests
{
    [Fact]
    public void CreateDefault_HasTheBuiltIns()
    {
        var executors = TaskExecutors.CreateDefault(new FakeProbe());

        Assert.Equal(["benchmark", "sleep"], executors.Kinds);
        Assert.True(executors.TryGet("benchmark", out var benchmark));
        Assert.IsType<BenchmarkExecutor>(benchmark);
        Assert.False(executors.TryGet("Benchmark", out _));
    }

    [Fact]
    public void Add_KindTaken_Throws()
    {
        var executors = TaskExecutors.CreateDefault(new FakeProbe()).Add(new ControlledExecutor("fake"));

        Assert.Throws<ArgumentException>(() => executors.Add(new ControlledExecutor("sleep")));
        Assert.Throws<ArgumentException>(() => executors.Add(new ControlledExecutor("")));
        Assert.Equal(["benchmark", "fake", "sleep"], executors.Kinds);
    }
}
