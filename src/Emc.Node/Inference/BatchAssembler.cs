using System.Buffers;
using Emc.Core.Inference;

namespace Emc.Node.Inference;

/// <summary>One inference call waiting in a replica's batcher.</summary>
internal sealed class CallItem(ulong callId, InferTensor[] inputs, string[]? outputs, int rows, bool stackable)
{
    public ulong CallId { get; } = callId;

    /// <summary>The inputs, each name once.</summary>
    public InferTensor[] Inputs { get; } = inputs;

    /// <summary>The outputs asked for; null for all.</summary>
    public string[]? Outputs { get; } = outputs;

    /// <summary>Rows along the batch dimension (1 when the item cannot be stacked).</summary>
    public int Rows { get; } = rows;

    /// <summary>Whether the item may be stacked with others (every input has the same first dimension).</summary>
    public bool Stackable { get; } = stackable;
}

/// <summary>What became of one call: its outputs, or the failure to report.</summary>
internal readonly record struct CallOutcome(IReadOnlyList<InferTensor>? Outputs, Exception? Error);

/// <summary>
/// Runs a batch of calls as few model runs as it can: calls whose inputs agree in datatype and in
/// every dimension but the first, and that ask for the same outputs, are stacked along the first
/// dimension into one run and the outputs are cut back into rows per call. Anything that cannot be
/// stacked, or a stacked run the model refuses, runs call by call, so one bad call never fails the
/// others of its batch.
/// </summary>
internal static class BatchAssembler
{
    public static async ValueTask<IReadOnlyList<CallOutcome>> RunAsync(IServedModel model, IReadOnlyList<CallItem> items, CancellationToken cancellationToken)
    {
        var outcomes = new CallOutcome[items.Count];
        if (items.Count == 1 || !model.Batchable)
        {
            for (var i = 0; i < items.Count; i++)
            {
                outcomes[i] = await RunOneAsync(model, items[i], cancellationToken);
            }

            return outcomes;
        }

        // Usually every call fits with the first; otherwise they are grouped by what they fit with.
        var done = new bool[items.Count];
        for (var first = 0; first < items.Count; first++)
        {
            if (done[first])
            {
                continue;
            }

            var group = new List<int> { first };
            done[first] = true;
            if (items[first].Stackable)
            {
                for (var j = first + 1; j < items.Count; j++)
                {
                    if (!done[j] && items[j].Stackable && Compatible(items[first], items[j]))
                    {
                        group.Add(j);
                        done[j] = true;
                    }
                }
            }

            if (group.Count == 1 || !await TryRunStackedAsync(model, items, group, outcomes, cancellationToken))
            {
                foreach (var index in group)
                {
                    outcomes[index] = await RunOneAsync(model, items[index], cancellationToken);
                }
            }
        }

        return outcomes;
    }

    private static async ValueTask<CallOutcome> RunOneAsync(IServedModel model, CallItem item, CancellationToken cancellationToken)
    {
        try
        {
            return new CallOutcome(await model.RunAsync(item.Inputs, item.Outputs, cancellationToken), null);
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            return new CallOutcome(null, ex);
        }
    }

    private static bool Compatible(CallItem a, CallItem b)
    {
        if (a.Inputs.Length != b.Inputs.Length || !SameOutputs(a.Outputs, b.Outputs))
        {
            return false;
        }

        foreach (var x in a.Inputs)
        {
            if (Find(b.Inputs, x.Name) is not { } y || x.Datatype != y.Datatype || x.Shape.Count != y.Shape.Count || x.Datatype == TensorDatatype.Bytes)
            {
                return false;
            }

            for (var d = 1; d < x.Shape.Count; d++)
            {
                if (x.Shape[d] != y.Shape[d])
                {
                    return false;
                }
            }
        }

        return true;
    }

    private static bool SameOutputs(string[]? a, string[]? b) =>
        a is null ? b is null : b is not null && a.AsSpan().SequenceEqual(b);

    private static InferTensor? Find(InferTensor[] tensors, string name)
    {
        foreach (var tensor in tensors)
        {
            if (tensor.Name == name)
            {
                return tensor;
            }
        }

        return null;
    }

    /// <summary>Stacks the group into one run; false (nothing set) when the model refused it or its outputs cannot be cut back.</summary>
    private static async ValueTask<bool> TryRunStackedAsync(IServedModel model, IReadOnlyList<CallItem> items, List<int> group, CallOutcome[] outcomes, CancellationToken cancellationToken)
    {
        var head = items[group[0]];
        var totalRows = 0;
        foreach (var index in group)
        {
            totalRows += items[index].Rows;
        }

        var rented = new List<byte[]>(head.Inputs.Length);
        try
        {
            var stacked = new InferTensor[head.Inputs.Length];
            for (var i = 0; i < stacked.Length; i++)
            {
                var first = head.Inputs[i];
                var total = 0;
                foreach (var index in group)
                {
                    total += Find(items[index].Inputs, first.Name)!.Data.Length;
                }

                var buffer = ArrayPool<byte>.Shared.Rent(Math.Max(total, 1));
                rented.Add(buffer);
                var offset = 0;
                foreach (var index in group)
                {
                    var data = Find(items[index].Inputs, first.Name)!.Data.Span;
                    data.CopyTo(buffer.AsSpan(offset));
                    offset += data.Length;
                }

                var shape = first.Shape.ToArray();
                shape[0] = totalRows;
                try
                {
                    stacked[i] = InferTensor.FromRaw(first.Name, first.Datatype, shape, buffer.AsMemory(0, total));
                }
                catch (ArgumentException)
                {
                    // Rows the data does not have: a call with an empty first dimension counts as one row.
                    return false;
                }
            }

            IReadOnlyList<InferTensor> outputs;
            try
            {
                outputs = await model.RunAsync(stacked, head.Outputs, cancellationToken);
            }
            catch (Exception ex) when (ex is not OperationCanceledException)
            {
                return false;
            }

            var split = new InferTensor[group.Count][];
            for (var g = 0; g < group.Count; g++)
            {
                split[g] = new InferTensor[outputs.Count];
            }

            for (var o = 0; o < outputs.Count; o++)
            {
                var output = outputs[o];
                if (output.Datatype == TensorDatatype.Bytes || output.Shape.Count == 0 || output.Shape[0] != totalRows || output.Data.Length % totalRows != 0)
                {
                    return false;
                }

                var rowBytes = output.Data.Length / totalRows;
                var offset = 0;
                for (var g = 0; g < group.Count; g++)
                {
                    var rows = items[group[g]].Rows;
                    var shape = output.Shape.ToArray();
                    shape[0] = rows;
                    split[g][o] = InferTensor.FromRaw(output.Name, output.Datatype, shape, output.Data.Slice(offset, rows * rowBytes));
                    offset += rows * rowBytes;
                }
            }

            for (var g = 0; g < group.Count; g++)
            {
                outcomes[group[g]] = new CallOutcome(split[g], null);
            }

            return true;
        }
        finally
        {
            foreach (var buffer in rented)
            {
                ArrayPool<byte>.Shared.Return(buffer);
            }
        }
    }
}
