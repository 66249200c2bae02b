using Emc.Node.Work;

namespace Emc.Node.Tests.Work;

public sealed class SleepExecutorTests
{
    [Theory]
    [InlineData("")]
    [InlineData("not json")]
    [InlineData("null")]
    [InlineData("[]")]
    [InlineData("{}")]
    [InlineData("{\"milliseconds\": 5}")]
    [InlineData("{\"ms\": \"10\"}")]
    [InlineData("{\"ms\": null}")]
    [InlineData("{\"ms\": 1.5}")]
    [InlineData("{\"ms\": -1}")]
    [InlineData("{\"ms\": 3600001}")]
    [InlineData("{\"ms\": 99999999999999999999999}")]
    public async Task RunAsync_BadInput_FailsWithoutRetry(string input)
    {
        var executor = new SleepExecutor();

        var failure = await Assert.ThrowsAsync<TaskFailedException>(() => executor.RunAsync(Context(input), CancellationToken.None));

        Assert.False(failure.Retryable);
        Assert.StartsWith("sleep input must be a JSON object {\"ms\": N} with N a whole number from 0 to 3600000", failure.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("{\"ms\": 0}", 0)]
    [InlineData("{\"ms\": 3600000}", 3_600_000)]
    [InlineData("{ \"ms\": 250, \"note\": \"extra fields are ignored\" }", 250)]
    public void ParseInput_InRange_ReturnsMilliseconds(string input, long expected)
    {
        Assert.Equal(expected, SleepExecutor.ParseInput(input));
    }

    [Fact]
    public async Task RunAsync_Zero_ReturnsSleptMs()
    {
        var output = await new SleepExecutor().RunAsync(Context("{\"ms\": 0}"), CancellationToken.None);

        Assert.Equal("{\"sleptMs\":0}", output);
    }

    [Fact]
    public async Task RunAsync_HoldsForTheGivenTime()
    {
        var time = new ManualTimeProvider();
        var running = new SleepExecutor(time).RunAsync(Context("{\"ms\": 1500}"), CancellationToken.None);

        time.Advance(TimeSpan.FromMilliseconds(1499));
        Assert.False(running.IsCompleted);
        time.Advance(TimeSpan.FromMilliseconds(1));

        Assert.Equal("{\"sleptMs\":1500}", await running.WaitAsync(Wait.Timeout));
    }

    [Fact]
    public async Task RunAsync_Cancelled_StopsWithOperationCanceled()
    {
        using var cancel = new CancellationTokenSource();
        var running = new SleepExecutor(new ManualTimeProvider()).RunAsync(Context("{\"ms\": 3600000}"), cancel.Token);

        await cancel.CancelAsync();

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => running.WaitAsync(Wait.Timeout));
    }

    private static TaskContext Context(string input) => new("t#1", "t", "j", input, "cpu");
}
