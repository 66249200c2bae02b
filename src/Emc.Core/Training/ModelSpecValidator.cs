using System.Globalization;

namespace Emc.Core.Training;

/// <summary>
/// Checks a <see cref="ModelSpec"/> against the data it will train on before a job is accepted,
/// so that a node never fails to build a model; every problem gets a sentence a user can act on.
/// </summary>
public static class ModelSpecValidator
{
    public const int MaxWidth = 65_536;
    public const int MaxHiddenLayers = 16;
    public const int MaxChannels = 1024;
    public const int MaxStages = 6;
    public const int MaxBlocksPerStage = 16;
    public const int MaxInputChannels = 64;
    public const int MaxImageSide = 4096;
    public const int MaxSampleElements = 16 * 1024 * 1024;
    public const int MaxClasses = 65_536;
    public const int MaxLayers = 48;
    public const int MaxHeads = 64;
    public const int MinDim = 8;
    public const int MaxDim = 4096;
    public const int MinContext = 8;
    public const int MaxContext = 4096;

    /// <summary>More parameters than this (2^30, 4 GiB of fp32) is not a job for consumer nodes.</summary>
    public const long MaxParameters = 1L << 30;

    /// <summary>
    /// The problems with training <paramref name="spec"/> on examples of
    /// <paramref name="sampleShape"/> with <paramref name="classes"/> classes, or on a byte
    /// stream when <paramref name="isText"/> (then the sample shape is empty and
    /// <paramref name="classes"/> is ignored). Empty when it is valid.
    /// </summary>
    public static IReadOnlyList<string> Validate(ModelSpec? spec, int[]? sampleShape, int classes, bool isText)
    {
        var errors = new List<string>();
        if (spec is null)
        {
            errors.Add("the model is missing");
            return errors;
        }

        if (!ModelSpec.Names.Contains(spec.Name, StringComparer.Ordinal))
        {
            errors.Add($"model name must be one of {string.Join(", ", ModelSpec.Names)}");
            return errors;
        }

        sampleShape ??= [];
        CheckNotApplicable(spec, errors);
        if (isText)
        {
            if (spec.Name != ModelSpec.GptSmall)
            {
                errors.Add($"{spec.Name} is a classification model; text (byte stream) data trains gpt-small");
            }

            if (sampleShape.Length != 0)
            {
                errors.Add("text data has no sample shape");
            }
        }
        else
        {
            if (spec.Name == ModelSpec.GptSmall)
            {
                errors.Add("gpt-small trains on text (byte stream) data, not on labelled examples");
            }

            CheckClassification(sampleShape, classes, errors);
        }

        if (spec.Dropout is { } dropout && !(dropout >= 0 && dropout < 1))
        {
            errors.Add("dropout must be at least 0 and less than 1");
        }

        if (errors.Count > 0)
        {
            return errors;
        }

        var resolved = spec.WithDefaults();
        switch (resolved.Name)
        {
            case ModelSpec.Mlp:
                CheckMlp(resolved, sampleShape, classes, errors);
                break;
            case ModelSpec.Cnn:
                CheckCnn(resolved, sampleShape, classes, errors);
                break;
            case ModelSpec.ResNetSmall:
                CheckResNet(resolved, sampleShape, errors);
                break;
            case ModelSpec.GptSmall:
                CheckGpt(resolved, errors);
                break;
            case ModelSpec.TorchScript:
                if (!IsSha256Hex(resolved.Script))
                {
                    errors.Add("script must be the lower-case hex SHA-256 (64 characters) of the TorchScript file");
                }

                break;
        }

        return errors;
    }

    private static void CheckNotApplicable(ModelSpec spec, List<string> errors)
    {
        var name = spec.Name;
        void Reject(bool present, string field)
        {
            if (present)
            {
                errors.Add($"{field} does not apply to {name}");
            }
        }

        var zoo = name != ModelSpec.TorchScript;
        var image = name is ModelSpec.Cnn or ModelSpec.ResNetSmall;
        Reject(spec.Hidden is not null && name is not (ModelSpec.Mlp or ModelSpec.Cnn), "hidden");
        Reject(spec.Channels is not null && !image, "channels");
        Reject(spec.Blocks is not null && name != ModelSpec.ResNetSmall, "blocks");
        Reject(spec.Dropout is not null && !zoo, "dropout");
        Reject(spec.Layers is not null && name != ModelSpec.GptSmall, "layers");
        Reject(spec.Heads is not null && name != ModelSpec.GptSmall, "heads");
        Reject(spec.Dim is not null && name != ModelSpec.GptSmall, "dim");
        Reject(spec.Context is not null && name != ModelSpec.GptSmall, "context");
        Reject(spec.Script is not null && zoo, "script");
    }

    private static void CheckClassification(int[] sampleShape, int classes, List<string> errors)
    {
        if (classes < 2 || classes > MaxClasses)
        {
            errors.Add($"classes must be between 2 and {MaxClasses}");
        }

        if (sampleShape.Length == 0 || sampleShape.Length > 3)
        {
            errors.Add("classification examples need a sample shape of 1 to 3 dimensions, such as [784] or [28, 28]");
            return;
        }

        if (sampleShape.Any(d => d < 1))
        {
            errors.Add("every sample dimension must be at least 1");
            return;
        }

        if (sampleShape.Aggregate(1L, (product, d) => product * d) > MaxSampleElements)
        {
            errors.Add($"a sample may have at most {MaxSampleElements} elements");
        }
    }

    private static void CheckMlp(ModelSpec spec, int[] sampleShape, int classes, List<string> errors)
    {
        var hidden = spec.Hidden!;
        if (hidden.Length is < 1 or > MaxHiddenLayers)
        {
            errors.Add($"hidden must list 1 to {MaxHiddenLayers} layer widths");
            return;
        }

        if (hidden.Any(h => h < 1 || h > MaxWidth))
        {
            errors.Add($"hidden layer widths must be between 1 and {MaxWidth}");
            return;
        }

        long parameters = 0;
        long inputs = sampleShape.Aggregate(1L, (product, d) => product * d);
        foreach (var width in hidden.Append(classes))
        {
            parameters += (inputs + 1) * width;
            inputs = width;
        }

        CheckParameters(parameters, errors);
    }

    private static void CheckCnn(ModelSpec spec, int[] sampleShape, int classes, List<string> errors)
    {
        if (!CheckImage(sampleShape, spec.Channels!, errors, out var inputChannels, out var height, out var width))
        {
            return;
        }

        var hidden = spec.Hidden!;
        if (hidden.Length != 1 || hidden[0] < 1 || hidden[0] > MaxWidth)
        {
            errors.Add($"hidden for cnn is one width (the fully connected layer) between 1 and {MaxWidth}");
            return;
        }

        var stages = spec.Channels!.Length;
        if (height >> stages < 1 || width >> stages < 1)
        {
            errors.Add($"cnn halves the image in each of its {stages} stages; a {height}×{width} input allows at most {Math.Min(Log2(height), Log2(width))}");
            return;
        }

        long parameters = 0;
        long previous = inputChannels;
        foreach (var channels in spec.Channels!)
        {
            parameters += ((previous * 9) + 1) * channels;
            previous = channels;
        }

        var flat = previous * (height >> stages) * (width >> stages);
        parameters += ((flat + 1) * hidden[0]) + ((hidden[0] + 1L) * classes);
        CheckParameters(parameters, errors);
    }

    private static void CheckResNet(ModelSpec spec, int[] sampleShape, List<string> errors)
    {
        if (!CheckImage(sampleShape, spec.Channels!, errors, out _, out _, out _))
        {
            return;
        }

        if (spec.Blocks is < 1 or > MaxBlocksPerStage)
        {
            errors.Add($"blocks must be between 1 and {MaxBlocksPerStage} per stage");
        }
    }

    private static bool CheckImage(int[] sampleShape, int[] channels, List<string> errors, out int inputChannels, out int height, out int width)
    {
        (inputChannels, height, width) = sampleShape.Length switch
        {
            2 => (1, sampleShape[0], sampleShape[1]),
            3 => (sampleShape[0], sampleShape[1], sampleShape[2]),
            _ => (0, 0, 0),
        };

        if (inputChannels == 0)
        {
            errors.Add("convolutional models need image samples shaped [height, width] or [channels, height, width]");
            return false;
        }

        if (inputChannels > MaxInputChannels || height > MaxImageSide || width > MaxImageSide)
        {
            errors.Add($"images may have at most {MaxInputChannels} channels and sides of at most {MaxImageSide}");
            return false;
        }

        if (channels.Length is < 1 or > MaxStages)
        {
            errors.Add($"channels must list 1 to {MaxStages} stage widths");
            return false;
        }

        if (channels.Any(c => c < 1 || c > MaxChannels))
        {
            errors.Add($"channel counts must be between 1 and {MaxChannels}");
            return false;
        }

        return true;
    }

    private static void CheckGpt(ModelSpec spec, List<string> errors)
    {
        if (spec.Layers is < 1 or > MaxLayers)
        {
            errors.Add($"layers must be between 1 and {MaxLayers}");
        }

        if (spec.Heads is < 1 or > MaxHeads)
        {
            errors.Add($"heads must be between 1 and {MaxHeads}");
        }

        if (spec.Dim is < MinDim or > MaxDim)
        {
            errors.Add($"dim must be between {MinDim} and {MaxDim}");
        }
        else if (spec.Heads is >= 1 and <= MaxHeads && spec.Dim!.Value % spec.Heads.Value != 0)
        {
            errors.Add("heads must divide dim");
        }

        if (spec.Context is < MinContext or > MaxContext)
        {
            errors.Add($"context must be between {MinContext} and {MaxContext} bytes");
        }

        if (errors.Count == 0)
        {
            long dim = spec.Dim!.Value;
            var parameters = ((ModelSpec.ByteVocabulary + spec.Context!.Value) * dim)
                + (spec.Layers!.Value * ((12 * dim * dim) + (13 * dim)))
                + (2 * dim) + (dim * ModelSpec.ByteVocabulary);
            CheckParameters(parameters, errors);
        }
    }

    private static void CheckParameters(long parameters, List<string> errors)
    {
        if (parameters > MaxParameters)
        {
            errors.Add(string.Create(CultureInfo.InvariantCulture, $"the model would have about {parameters:N0} parameters; at most {MaxParameters:N0} are allowed"));
        }
    }

    private static int Log2(int value) => 31 - int.LeadingZeroCount(value);

    private static bool IsSha256Hex(string? text) =>
        text is { Length: 64 } && text.All(c => c is (>= '0' and <= '9') or (>= 'a' and <= 'f'));
}
