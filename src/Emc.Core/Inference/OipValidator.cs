namespace Emc.Core.Inference;

/// <summary>Checks an inference request against the model it is for, before it is sent to a node.</summary>
public static class OipValidator
{
    /// <summary>
    /// What is wrong with <paramref name="request"/> for <paramref name="model"/>, one message per problem;
    /// empty when nothing is. Every model input must be given, with the model's datatype and rank and
    /// each fixed dimension equal (-1 dimensions take any size); no other input may be given; every
    /// requested output must exist.
    /// </summary>
    public static IReadOnlyList<string> Validate(InferRequest request, ModelMetadata model)
    {
        ArgumentNullException.ThrowIfNull(request);
        ArgumentNullException.ThrowIfNull(model);
        var problems = new List<string>();
        var given = new Dictionary<string, InferTensor>(StringComparer.Ordinal);
        foreach (var input in request.Inputs)
        {
            if (!given.TryAdd(input.Name, input))
            {
                problems.Add($"input '{input.Name}' is given more than once");
            }
        }

        foreach (var expected in model.Inputs)
        {
            if (!given.Remove(expected.Name, out var input))
            {
                problems.Add($"input '{expected.Name}' of model '{model.Name}' is missing");
                continue;
            }

            if (input.Datatype != expected.Datatype)
            {
                problems.Add(
                    $"input '{input.Name}' is {input.Datatype.ToWireName()} but model '{model.Name}' expects {expected.Datatype.ToWireName()}");
            }

            var shape = TensorShape.Format(input.Shape);
            var wanted = TensorShape.Format(expected.Shape);
            if (input.Shape.Count != expected.Shape.Count)
            {
                problems.Add(
                    $"input '{input.Name}' has shape {shape} (rank {input.Shape.Count}) but model '{model.Name}' expects rank {expected.Shape.Count}: {wanted}");
                continue;
            }

            for (var i = 0; i < expected.Shape.Count; i++)
            {
                if (expected.Shape[i] != -1 && expected.Shape[i] != input.Shape[i])
                {
                    problems.Add(
                        $"input '{input.Name}' has shape {shape} but model '{model.Name}' expects {wanted}: dimension {i} must be {expected.Shape[i]}");
                }
            }
        }

        foreach (var name in given.Keys)
        {
            problems.Add($"input '{name}' is not an input of model '{model.Name}' (its inputs: {Names(model.Inputs)})");
        }

        var outputs = new HashSet<string>(model.Outputs.Select(o => o.Name), StringComparer.Ordinal);
        var requested = new HashSet<string>(StringComparer.Ordinal);
        foreach (var output in request.Outputs)
        {
            if (!requested.Add(output.Name))
            {
                problems.Add($"output '{output.Name}' is requested more than once");
            }
            else if (!outputs.Contains(output.Name))
            {
                problems.Add($"output '{output.Name}' is not an output of model '{model.Name}' (its outputs: {Names(model.Outputs)})");
            }
        }

        return problems;
    }

    /// <summary>Throws a 400 <see cref="OipException"/> listing every problem <see cref="Validate"/> finds.</summary>
    public static void EnsureValid(InferRequest request, ModelMetadata model)
    {
        var problems = Validate(request, model);
        if (problems.Count > 0)
        {
            throw new OipException(OipErrorKind.BadRequest, string.Join("; ", problems));
        }
    }

    private static string Names(IReadOnlyList<TensorMetadata> tensors) =>
        tensors.Count == 0 ? "none" : string.Join(", ", tensors.Select(t => t.Name));
}
