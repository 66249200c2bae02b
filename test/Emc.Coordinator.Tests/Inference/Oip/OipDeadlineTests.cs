using Emc.Coordinator.Inference.Oip;
using Emc.Core.Inference;
using Grpc.Core;
using Microsoft.Extensions.Time.Testing;

namespace Emc.Coordinator.Tests.Inference.Oip;

[Collection(OipCollection.Name)]
public sealed class OipDeadlineTests(OipFixture fixture)
{
    private static readonly InferRequest Valid = new() { Inputs = [InferTensor.Create<float>("input", [1, OipFixture.Features], new float[OipFixture.Features])] };

    [Fact]
    public async Task Backend_DeadlinePassed_503()
    {
        var clock = new FakeTimeProvider();
        using var backend = new InProcessOnnxBackend(clock);
        backend.Add("m", fixture.Onnx);

        var error = await Assert.ThrowsAsync<OipException>(() => backend.InferAsync("m", null, Valid, clock.GetUtcNow(), CancellationToken.None));

        Assert.Equal(OipErrorKind.Unavailable, error.Kind);
        Assert.Contains("deadline", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void DeadlineExceeded_OnlyWhenTheDeadlinePassed()
    {
        var now = DateTimeOffset.UnixEpoch;
        var unavailable = OipException.Unavailable("busy");
        Assert.Equal(StatusCode.DeadlineExceeded, OipErrors.ToRpc(unavailable, now, now).StatusCode);
        Assert.Equal(StatusCode.Unavailable, OipErrors.ToRpc(unavailable, now.AddSeconds(1), now).StatusCode);
        Assert.Equal(StatusCode.NotFound, OipErrors.ToRpc(OipException.UnknownModel("m"), now, now).StatusCode);
        Assert.Equal(StatusCode.Internal, OipErrors.ToRpc(new InvalidCastException(), null, now).StatusCode);
    }

    [Theory]
    [InlineData(null, 30_000_000L)]
    [InlineData(0L, 30_000_000L)]
    [InlineData(1_500L, 1_500L)]
    [InlineData(long.MaxValue, 300_000_000L)]
    public void DeadlineFor_TimeoutParameterInMicroseconds_Capped(long? timeout, long expectedMicros)
    {
        var options = new OipOptions();
        var request = timeout is null
            ? Valid
            : new InferRequest { Inputs = Valid.Inputs, Parameters = new Dictionary<string, InferParameter> { ["timeout"] = timeout.Value } };
        var now = DateTimeOffset.UnixEpoch;

        Assert.Equal(TimeSpan.FromMicroseconds(expectedMicros), options.DeadlineFor(request, now) - now);
    }
}
