namespace Emc.Core.Data;

/// <summary>What one file (or .npz entry) contributes to a split: features, labels, both (CSV) or text.</summary>
internal sealed class ParsedPart
{
    public required string Source { get; init; }

    public required string Split { get; init; }

    public FeatureArray? Features { get; init; }

    public LabelArray? Labels { get; init; }

    public byte[]? Text { get; init; }
}

/// <summary>Examples of one shape, U8 or little-endian F32.</summary>
internal sealed record FeatureArray(ElementType ElementType, int[] SampleShape, int Count, byte[] Data);

/// <summary>Non-negative labels and how to say where label i came from ("at index 5", "in row 7").</summary>
internal sealed record LabelArray(long[] Values, Func<int, string> Position);

/// <summary>Builds features and labels from a decoded numeric array, with the checks IDX and .npy share.</summary>
internal static class Arrays
{
    /// <summary>The role a file name's words give an .npy file or .npz entry; null when they name none or both.</summary>
    public static bool? IsLabels(string name)
    {
        var words = NameWords.Of(name);
        var features = words.Any(word => word is "x" or "images" or "image" or "features" or "feature" or "data" or "inputs" or "input");
        var labels = words.Any(word => word is "y" or "labels" or "label" or "targets" or "target");
        return features == labels ? null : labels;
    }

    public static string RoleHint => "name features like x_train.npy (or images/features/data) and labels like y_train.npy (or labels/targets)";

    public static string FormatShape(ReadOnlySpan<int> shape) => $"[{string.Join(", ", shape.ToArray())}]";

    /// <summary>Elements in an array of <paramref name="shape"/>; an error when a dimension is not positive or the total is absurd.</summary>
    public static long Elements(ReadOnlySpan<int> shape, SourceStream source)
    {
        long elements = 1;
        for (var i = 0; i < shape.Length; i++)
        {
            if (shape[i] <= 0)
            {
                throw source.Error(i == 0
                    ? "the array holds no examples"
                    : $"dimension {i} of the shape {FormatShape(shape)} is {shape[i]}; every example dimension must be at least 1");
            }

            elements *= shape[i];
            if (elements > Array.MaxLength)
            {
                throw source.Error($"the shape {FormatShape(shape)} has more elements than one array can hold ({Array.MaxLength})");
            }
        }

        return elements;
    }

    /// <summary>Features from an array whose first dimension counts examples: U8 stays U8, anything else becomes F32.</summary>
    public static FeatureArray Features(byte[] native, NumericKind kind, int[] shape, SourceStream source)
    {
        var sampleShape = shape[1..];
        if (kind == NumericKind.U8)
        {
            return new FeatureArray(ElementType.U8, sampleShape, shape[0], native);
        }

        var elements = native.Length / NumericArrays.Size(kind);
        if (elements * 4L > Array.MaxLength)
        {
            throw source.Error($"as float32 the features take {elements * 4L} bytes, more than one array can hold ({Array.MaxLength} bytes)");
        }

        return new FeatureArray(ElementType.F32, sampleShape, shape[0], NumericArrays.ToF32(native, kind));
    }

    public static LabelArray Labels(byte[] native, NumericKind kind, SourceStream source) =>
        new(NumericArrays.ToLabels(native, kind, source), static index => $"at index {index}");
}
