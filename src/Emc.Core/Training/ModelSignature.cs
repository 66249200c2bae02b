using System.Diagnostics.CodeAnalysis;
using System.Globalization;
using Emc.Core.Inference;

namespace Emc.Core.Training;

/// <summary>
/// A model's inputs and outputs as the Open Inference Protocol describes them: written
/// NAME:DATATYPE:SHAPE on the command line (<c>input:FP32:-1,1,28,28</c>, -1 for a variable
/// dimension), and derived for the zoo models the network trains.
/// </summary>
public static class ModelSignature
{
    /// <summary>The input of a trained zoo model, as the ONNX export names it.</summary>
    public const string InputName = "input";

    /// <summary>The output of a trained zoo model, as the ONNX export names it.</summary>
    public const string OutputName = "logits";

    /// <summary>The most dimensions a declared tensor may have.</summary>
    public const int MaxRank = 16;

    /// <summary>
    /// Parses NAME:DATATYPE:SHAPE. The name is everything before the last two ':' (tensor names
    /// such as "x:0" may hold one); the datatype is a protocol name (FP32, INT64, …); the shape is
    /// comma-separated dimensions, each -1 or a positive integer, or empty for a scalar.
    /// </summary>
    public static bool TryParse(string? text, [NotNullWhen(true)] out TensorMetadata? tensor, [NotNullWhen(false)] out string? error)
    {
        tensor = null;
        error = null;
        var shapeColon = text?.LastIndexOf(':') ?? -1;
        var typeColon = shapeColon > 0 ? text!.LastIndexOf(':', shapeColon - 1) : -1;
        if (text is null || typeColon <= 0)
        {
            error = $"'{text}' is not NAME:DATATYPE:SHAPE (for example input:FP32:-1,1,28,28)";
            return false;
        }

        var name = text[..typeColon];
        var typeText = text[(typeColon + 1)..shapeColon];
        var shapeText = text[(shapeColon + 1)..];
        if (name.Length > 256 || name.Any(char.IsControl))
        {
            error = $"'{name}' is not a tensor name (at most 256 characters, no control characters)";
            return false;
        }

        if (!TensorDatatypes.TryParse(typeText, out var datatype))
        {
            error = $"in '{text}': unknown datatype '{typeText}'; expected one of {string.Join(", ", TensorDatatypes.All.Select(d => d.ToWireName()))}";
            return false;
        }

        var shape = new List<long>();
        if (shapeText.Length > 0)
        {
            foreach (var part in shapeText.Split(','))
            {
                if (!long.TryParse(part, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var dim) || dim is 0 or < -1)
                {
                    error = $"in '{text}': '{part}' is not a dimension (-1 for a variable one, or a positive integer)";
                    return false;
                }

                shape.Add(dim);
            }
        }

        if (shape.Count > MaxRank)
        {
            error = $"in '{text}': at most {MaxRank} dimensions";
            return false;
        }

        tensor = new TensorMetadata(name, datatype, shape);
        return true;
    }

    /// <summary>NAME:DATATYPE:SHAPE, the form <see cref="TryParse"/> reads.</summary>
    public static string Format(TensorMetadata tensor)
    {
        ArgumentNullException.ThrowIfNull(tensor);
        return $"{tensor.Name}:{tensor.Datatype.ToWireName()}:{string.Join(",", tensor.Shape.Select(d => d.ToString(CultureInfo.InvariantCulture)))}";
    }

    /// <summary>"NAME DATATYPE[d0, d1, …]" for people.</summary>
    public static string Describe(TensorMetadata tensor)
    {
        ArgumentNullException.ThrowIfNull(tensor);
        return $"{tensor.Name} {tensor.Datatype.ToWireName()}[{string.Join(", ", tensor.Shape.Select(d => d.ToString(CultureInfo.InvariantCulture)))}]";
    }

    /// <summary>
    /// The inputs of a model the network trained (a zoo model or a TorchScript module trained by a
    /// job), as its forward pass takes them: a classifier takes float32 [batch, ...sample shape];
    /// gpt-small takes int64 bytes [batch, sequence].
    /// </summary>
    public static IReadOnlyList<TensorMetadata> TrainedInputs(ModelDescriptor model)
    {
        ArgumentNullException.ThrowIfNull(model);
        return model.IsText
            ? [new TensorMetadata(InputName, TensorDatatype.Int64, [-1, -1])]
            : [new TensorMetadata(InputName, TensorDatatype.Fp32, [-1, .. model.SampleShape.Select(d => (long)d)])];
    }

    /// <summary>The outputs of a model the network trained: logits [batch, classes], or [batch, sequence, 256] for gpt-small.</summary>
    public static IReadOnlyList<TensorMetadata> TrainedOutputs(ModelDescriptor model)
    {
        ArgumentNullException.ThrowIfNull(model);
        return model.IsText
            ? [new TensorMetadata(OutputName, TensorDatatype.Fp32, [-1, -1, ModelSpec.ByteVocabulary])]
            : [new TensorMetadata(OutputName, TensorDatatype.Fp32, [-1, model.Classes])];
    }
}
