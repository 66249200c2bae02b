using Emc.Compute.Inference;
using Emc.Core.Inference;
using Emc.Node.Inference;

namespace Emc.Node.Tests.Inference;

public sealed class BatchAssemblerTests
{
    [Fact]
    public async Task RunAsync_CompatibleCalls_StackedIntoOneRunAndCutBackPerCall()
    {
        var model = new DoublingModel();
        CallItem[] items = [Call(1, [1f, 2f]), Call(2, [3f, 4f, 5f, 6f])];

        var outcomes = await BatchAssembler.RunAsync(model, items, CancellationToken.None);

        Assert.Equal([3L], model.Runs);
        var first = Assert.Single(outcomes[0].Outputs!);
        Assert.Equal(("y", TensorDatatype.Fp32), (first.Name, first.Datatype));
        Assert.Equal([1L, 2], first.Shape);
        Assert.Equal([2f, 4f], first.ToFloatArray());
        var second = Assert.Single(outcomes[1].Outputs!);
        Assert.Equal([2L, 2], second.Shape);
        Assert.Equal([6f, 8f, 10f, 12f], second.ToFloatArray());
    }

    [Fact]
    public async Task RunAsync_CallWithEmptyFirstDimension_RunsAloneInsteadOfFailingTheBatch()
    {
        var model = new DoublingModel();

        // An empty call counts as one row, which its data does not have: the calls cannot be stacked.
        CallItem[] items = [Call(1, []), Call(1, [1f, 2f])];

        var outcomes = await BatchAssembler.RunAsync(model, items, CancellationToken.None);

        Assert.Equal([0L, 1], model.Runs);
        Assert.Equal([0L, 2], Assert.Single(outcomes[0].Outputs!).Shape);
        Assert.Equal([2f, 4f], Assert.Single(outcomes[1].Outputs!).ToFloatArray());
    }

    private static CallItem Call(int rows, float[] values) =>
        new(0, [InferTensor.Create<float>("x", [values.Length / 2, 2], values)], null, rows, stackable: true);

    /// <summary>x [-1, 2] in, y = 2x out; records the rows of every run.</summary>
    private sealed class DoublingModel : IServedModel
    {
        public List<long> Runs { get; } = [];

        public IReadOnlyList<OnnxTensorInfo> Inputs { get; } = [new("x", TensorDatatype.Fp32, [-1, 2])];

        public IReadOnlyList<OnnxTensorInfo> Outputs { get; } = [new("y", TensorDatatype.Fp32, [-1, 2])];

        public bool Batchable => true;

        public ValueTask<IReadOnlyList<InferTensor>> RunAsync(
            IReadOnlyList<InferTensor> inputs,
            IReadOnlyCollection<string>? outputs,
            CancellationToken cancellationToken)
        {
            var x = Assert.Single(inputs);
            Runs.Add(x.Shape[0]);
            IReadOnlyList<InferTensor> y = [InferTensor.Create<float>("y", [.. x.Shape], x.ToFloatArray().Select(v => v * 2).ToArray())];
            return ValueTask.FromResult(y);
        }

        public void Dispose()
        {
        }
    }
}
