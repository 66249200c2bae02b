namespace Emc.Core.Training;

/// <summary>
/// A model a training job asks the nodes to train: a built-in zoo architecture chosen by name
/// plus its hyper-parameters, or a TorchScript file named by the hash of its bytes. Nodes run
/// nothing else, so this record is the whole of what a user can make a node execute.
/// </summary>
/// <remarks>
/// Fields left null take the defaults of <see cref="WithDefaults"/>; a field that does not
/// apply to the chosen model must stay null. The zoo, in order of the fields that apply:
/// <list type="bullet">
/// <item><c>mlp</c>: <see cref="Hidden"/> (default [256, 128, 100], the "MLP 256-128-100" of the
/// Fashion-MNIST benchmark table), ReLU after each hidden layer, <see cref="Dropout"/> after each
/// ReLU (default 0). The input is flattened.</item>
/// <item><c>cnn</c>: <see cref="Channels"/> (default [32, 64]); each stage is a 3×3 convolution
/// with padding 1, ReLU and 2×2 max-pooling; then a fully connected layer of
/// <see cref="Hidden"/>[0] units (default 128), ReLU, <see cref="Dropout"/> (default 0.25) and the
/// classifier.</item>
/// <item><c>resnet-small</c>: a 3×3 stem to <see cref="Channels"/>[0], then one stage per entry of
/// <see cref="Channels"/> (default [16, 32, 64]) with <see cref="Blocks"/> basic blocks each
/// (default 1); every stage after the first halves the resolution. Normalisation is GroupNorm,
/// which has no running-statistics buffers — a model whose updates are averaged across nodes
/// should not carry per-node batch statistics. Global average pooling,
/// <see cref="Dropout"/> (default 0), classifier.</item>
/// <item><c>gpt-small</c>: a byte-level (vocabulary 256) decoder-only transformer with
/// <see cref="Layers"/> (default 4), <see cref="Heads"/> (default 4), <see cref="Dim"/> (default
/// 128) and <see cref="Context"/> bytes (default 128); learned positions, pre-LayerNorm blocks,
/// causal self-attention, a 4×<see cref="Dim"/> GELU MLP, <see cref="Dropout"/> (default 0) on
/// each residual branch, untied output head.</item>
/// <item><c>torchscript</c>: <see cref="Script"/> is the lower-case hex SHA-256 of a TorchScript
/// archive saved by <c>torch.jit.save</c>; its forward takes one float tensor [B, ...] and
/// returns class logits [B, classes].</item>
/// </list>
/// </remarks>
public sealed record ModelSpec
{
    public const string Mlp = "mlp";
    public const string Cnn = "cnn";
    public const string ResNetSmall = "resnet-small";
    public const string GptSmall = "gpt-small";
    public const string TorchScript = "torchscript";

    /// <summary>The byte vocabulary of <c>gpt-small</c>.</summary>
    public const int ByteVocabulary = 256;

    /// <summary>The model names nodes know, in the order the documentation lists them.</summary>
    public static IReadOnlyList<string> Names { get; } = [Mlp, Cnn, ResNetSmall, GptSmall, TorchScript];

    /// <summary>One of <see cref="Names"/>.</summary>
    public string Name { get; init; } = "";

    /// <summary>Hidden layer widths (mlp), or the one fully connected width before the classifier (cnn).</summary>
    public int[]? Hidden { get; init; }

    /// <summary>Output channels per stage (cnn, resnet-small).</summary>
    public int[]? Channels { get; init; }

    /// <summary>Basic blocks per stage (resnet-small).</summary>
    public int? Blocks { get; init; }

    /// <summary>Dropout probability in [0, 1) for the zoo models.</summary>
    public double? Dropout { get; init; }

    /// <summary>Transformer blocks (gpt-small).</summary>
    public int? Layers { get; init; }

    /// <summary>Attention heads; must divide <see cref="Dim"/> (gpt-small).</summary>
    public int? Heads { get; init; }

    /// <summary>Model width (gpt-small).</summary>
    public int? Dim { get; init; }

    /// <summary>Context length in bytes, which is also the training window (gpt-small).</summary>
    public int? Context { get; init; }

    /// <summary>Lower-case hex SHA-256 of the TorchScript archive (torchscript).</summary>
    public string? Script { get; init; }

    /// <summary>
    /// This spec with every field that applies to its model filled in with its default and every
    /// other field cleared; the form nodes build from and exports describe. An unknown name is
    /// returned unchanged.
    /// </summary>
    public ModelSpec WithDefaults() => Name switch
    {
        Mlp => new ModelSpec { Name = Mlp, Hidden = Hidden ?? [256, 128, 100], Dropout = Dropout ?? 0.0 },
        Cnn => new ModelSpec { Name = Cnn, Channels = Channels ?? [32, 64], Hidden = Hidden ?? [128], Dropout = Dropout ?? 0.25 },
        ResNetSmall => new ModelSpec { Name = ResNetSmall, Channels = Channels ?? [16, 32, 64], Blocks = Blocks ?? 1, Dropout = Dropout ?? 0.0 },
        GptSmall => new ModelSpec
        {
            Name = GptSmall,
            Layers = Layers ?? 4,
            Heads = Heads ?? 4,
            Dim = Dim ?? 128,
            Context = Context ?? 128,
            Dropout = Dropout ?? 0.0,
        },
        TorchScript => new ModelSpec { Name = TorchScript, Script = Script },
        _ => this,
    };
}
