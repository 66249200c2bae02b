using System.Globalization;
using Emc.Compute.Onnx;
using Emc.Compute.Training;
using Emc.Compute.Training.Zoo;
using Emc.Core.Training;
using Google.Protobuf;
using TorchSharp;
using static Emc.Compute.Inference.OnnxGraphBuilder;
using DataType = Emc.Compute.Onnx.TensorProto.Types.DataType;

namespace Emc.Compute.Inference;

/// <summary>
/// Writes trained zoo models as ONNX files that ONNX Runtime runs with the same results as
/// <see cref="TrainableModel.Forward"/> in evaluation mode (dropout off). The graph takes one
/// input, <c>input</c>, exactly as <see cref="TrainableModel.Forward"/> does — float32
/// [batch, ...sampleShape] for classifiers, int64 bytes [batch, sequence] for <c>gpt-small</c>
/// (sequence at most the model's context) — and has one output, <c>logits</c>: [batch, classes],
/// or [batch, sequence, 256]. The batch (and the sequence) is a symbolic dimension.
/// </summary>
public static class OnnxExporter
{
    /// <summary>The standard operator set the exported graphs use (GroupNormalization with per-channel affine is opset 21).</summary>
    public const int Opset = 21;

    /// <summary>The ONNX IR version of the exported files (the one that goes with <see cref="Opset"/>).</summary>
    public const int IrVersion = 10;

    /// <summary>The name of the graph's input.</summary>
    public const string InputName = "input";

    /// <summary>The name of the graph's output.</summary>
    public const string OutputName = "logits";

    /// <summary>The producer name written into every exported file.</summary>
    public const string Producer = "emc";

    /// <summary>The metadata key under which the file carries <see cref="ModelExport.SpecJson"/>.</summary>
    public const string SpecMetadataKey = "emc.spec";

    // TorchSharp's defaults for nn.LayerNorm and nn.GroupNorm, which the zoo does not override.
    private const float NormEpsilon = 1e-5f;

    private const string Batch = "batch";
    private const string Sequence = "sequence";

    private static readonly long[] _zero = [0];
    private static readonly long[] _one = [1];
    private static readonly long[] _zeroZero = [0, 0];
    private static readonly long[] _zeroOne = [0, 1];
    private static readonly long[] _headsFirst = [0, 2, 1, 3];
    private static readonly long[] _keysTransposed = [0, 2, 3, 1];

    /// <summary>
    /// The ONNX file of <paramref name="model"/> with its current weights (read from its
    /// parameters, wherever they live).
    /// </summary>
    /// <exception cref="NotSupportedException">The model is not a zoo model (a TorchScript module: its graph is opaque to the exporter).</exception>
    public static byte[] Export(TrainableModel model)
    {
        ArgumentNullException.ThrowIfNull(model);
        var name = model.Spec.Name;
        if (name == ModelSpec.TorchScript)
        {
            throw new NotSupportedException(
                "TorchScript models cannot be exported to ONNX: their graph is opaque to the exporter. "
                + "Export the TorchScript archive (ModelExport.SaveTorchScript) and convert it with PyTorch's torch.onnx.export.");
        }

        TorchRuntime.EnsureInitialized();
        var weights = ReadWeights(model);
        var graph = new OnnxGraphBuilder($"emc-{name}");
        switch (name)
        {
            case ModelSpec.Mlp:
                Mlp(graph, model, weights);
                break;
            case ModelSpec.Cnn:
                Cnn(graph, model, weights);
                break;
            case ModelSpec.ResNetSmall:
                ResNet(graph, model, weights);
                break;
            case ModelSpec.GptSmall:
                Gpt(graph, model, weights);
                break;
            default:
                throw new NotSupportedException($"the model '{name}' has no ONNX export; the exportable models are mlp, cnn, resnet-small and gpt-small");
        }

        var proto = new ModelProto
        {
            IrVersion = IrVersion,
            ProducerName = Producer,
            ProducerVersion = typeof(OnnxExporter).Assembly.GetName().Version?.ToString() ?? "",
            DocString = string.Create(CultureInfo.InvariantCulture, $"emc {name} (seed {model.Seed}) exported from its trained weights"),
            Graph = graph.Graph,
            OpsetImport = { new OperatorSetIdProto { Domain = "", Version = Opset } },
            MetadataProps = { new StringStringEntryProto { Key = SpecMetadataKey, Value = ModelExport.SpecJson(model) } },
        };
        return proto.ToByteArray();
    }

    private static Dictionary<string, Weight> ReadWeights(TrainableModel model)
    {
        using var scope = torch.NewDisposeScope();
        using var noGrad = torch.no_grad();
        var weights = new Dictionary<string, Weight>(StringComparer.Ordinal);
        foreach (var (name, parameter) in model.Module.named_parameters())
        {
            var cpu = parameter.detach().cpu().contiguous();
            weights[name] = new Weight(cpu.data<float>().ToArray(), cpu.shape);
        }

        return weights;
    }

    private static object[] ClassifierInput(TrainableModel model) => [Batch, .. model.SampleShape.Select(d => (object)(long)d)];

    private static void Mlp(OnnxGraphBuilder graph, TrainableModel model, Dictionary<string, Weight> weights)
    {
        var x = graph.Input(InputName, DataType.Float, ClassifierInput(model));
        x = graph.Node("mlp", "Flatten", [x], Int("axis", 1));
        for (var i = 0; i < model.Spec.Hidden!.Length; i++)
        {
            x = graph.Node($"hidden.{i}", "Relu", [Gemm(graph, x, weights, $"hidden.{i}")]);
        }

        graph.Output(Gemm(graph, x, weights, "head"), OutputName, DataType.Float, Batch, model.Classes);
    }

    private static void Cnn(OnnxGraphBuilder graph, TrainableModel model, Dictionary<string, Weight> weights)
    {
        var x = ImageInput(graph, model);
        for (var i = 0; i < model.Spec.Channels!.Length; i++)
        {
            x = Conv(graph, x, weights, $"convs.{i}", stride: 1, pad: 1);
            x = graph.Node($"convs.{i}", "Relu", [x]);

            // max_pool2d(2): a 2×2 window with stride 2, floor mode, no padding.
            x = graph.Node($"convs.{i}", "MaxPool", [x], Ints("kernel_shape", 2, 2), Ints("strides", 2, 2));
        }

        x = graph.Node("fc", "Flatten", [x], Int("axis", 1));
        x = graph.Node("fc", "Relu", [Gemm(graph, x, weights, "fc")]);
        graph.Output(Gemm(graph, x, weights, "head"), OutputName, DataType.Float, Batch, model.Classes);
    }

    private static void ResNet(OnnxGraphBuilder graph, TrainableModel model, Dictionary<string, Weight> weights)
    {
        var x = ImageInput(graph, model);
        x = GroupNorm(graph, Conv(graph, x, weights, "stem", stride: 1, pad: 1), weights, "stem_norm");
        x = graph.Node("stem", "Relu", [x]);

        var channels = model.Spec.Channels!;
        var blocksPerStage = model.Spec.Blocks!.Value;
        var index = 0;
        for (var stage = 0; stage < channels.Length; stage++)
        {
            for (var b = 0; b < blocksPerStage; b++, index++)
            {
                var prefix = string.Create(CultureInfo.InvariantCulture, $"blocks.{index}");
                var stride = stage > 0 && b == 0 ? 2 : 1;
                var y = GroupNorm(graph, Conv(graph, x, weights, $"{prefix}.conv1", stride, pad: 1), weights, $"{prefix}.norm1");
                y = graph.Node(prefix, "Relu", [y]);
                y = GroupNorm(graph, Conv(graph, y, weights, $"{prefix}.conv2", stride: 1, pad: 1), weights, $"{prefix}.norm2");
                var shortcut = weights.ContainsKey($"{prefix}.down.weight")
                    ? GroupNorm(graph, Conv(graph, x, weights, $"{prefix}.down", stride, pad: 0), weights, $"{prefix}.down_norm")
                    : x;
                x = graph.Node(prefix, "Relu", [graph.Node(prefix, "Add", [y, shortcut])]);
            }
        }

        x = graph.Node("pool", "Flatten", [graph.Node("pool", "GlobalAveragePool", [x])], Int("axis", 1));
        graph.Output(Gemm(graph, x, weights, "fc"), OutputName, DataType.Float, Batch, model.Classes);
    }

    private static void Gpt(OnnxGraphBuilder graph, TrainableModel model, Dictionary<string, Weight> weights)
    {
        var spec = model.Spec;
        var (layers, heads, dim, context) = (spec.Layers!.Value, spec.Heads!.Value, spec.Dim!.Value, spec.Context!.Value);
        var headDim = dim / heads;
        var tokens = graph.Input(InputName, DataType.Int64, Batch, Sequence);

        // Positions 0..T-1 are the first T rows of the position table.
        var length = graph.Node("pos_emb", "Shape", [tokens], Int("start", 1), Int("end", 2));
        var zero = graph.Int64s("zero", _zero, 1);
        var positions = graph.Node("pos_emb", "Slice", [Param(graph, weights, "pos_emb.weight"), zero, length, zero]);
        var x = graph.Node("tok_emb", "Gather", [Param(graph, weights, "tok_emb.weight"), tokens], Int("axis", 0));
        x = graph.Node("embed", "Add", [x, positions]);

        // The causal mask of scaled_dot_product_attention(is_causal): -inf above the diagonal,
        // built once for the whole context and cut to T×T.
        var mask = new float[context * context];
        for (var i = 0; i < context; i++)
        {
            mask.AsSpan((i * context) + i + 1, context - i - 1).Fill(float.NegativeInfinity);
        }

        var square = graph.Node("mask", "Concat", [length, length], Int("axis", 0));
        var causal = graph.Node("mask", "Slice", [
            graph.Floats("causal_mask", mask, context, context),
            graph.Int64s("mask_starts", _zeroZero, 2),
            square,
            graph.Int64s("mask_axes", _zeroOne, 2)]);

        var splitHeads = graph.Int64s("split_heads", [0, 0, heads, headDim], 4);
        var mergeHeads = graph.Int64s("merge_heads", [0, 0, dim], 3);
        var scale = graph.Scalar("attn_scale", (float)(1.0 / Math.Sqrt(headDim)));
        var sqrtHalf = graph.Scalar("gelu_sqrt_half", (float)Math.Sqrt(0.5));
        var half = graph.Scalar("gelu_half", 0.5f);
        var one = graph.Scalar("gelu_one", 1f);

        for (var layer = 0; layer < layers; layer++)
        {
            var prefix = string.Create(CultureInfo.InvariantCulture, $"blocks.{layer}");

            // Attention: the qkv projection is split into its q, k and v thirds (chunk(3, -1)).
            var h = LayerNorm(graph, x, weights, $"{prefix}.ln1");
            var qkv = weights[$"{prefix}.attn.qkv.weight"];
            var qkvBias = weights[$"{prefix}.attn.qkv.bias"];
            string Project(int part, long[] perm)
            {
                var rows = qkv.Values.AsSpan(part * dim * dim, dim * dim);
                var bias = qkvBias.Values.AsSpan(part * dim, dim);
                var name = $"{prefix}.attn.qkv.{"qkv"[part]}";
                var projected = Linear(graph, h, new Weight(rows.ToArray(), [dim, dim]), new Weight(bias.ToArray(), [dim]), name);
                var split = graph.Node(name, "Reshape", [projected, splitHeads]);
                return graph.Node(name, "Transpose", [split], Ints("perm", perm));
            }

            var q = Project(0, _headsFirst);
            var k = Project(1, _keysTransposed);
            var v = Project(2, _headsFirst);
            var scores = graph.Node($"{prefix}.attn", "Mul", [graph.Node($"{prefix}.attn", "MatMul", [q, k]), scale]);
            var probabilities = graph.Node($"{prefix}.attn", "Softmax", [graph.Node($"{prefix}.attn", "Add", [scores, causal])], Int("axis", -1));
            var attended = graph.Node($"{prefix}.attn", "Transpose", [graph.Node($"{prefix}.attn", "MatMul", [probabilities, v])], Ints("perm", _headsFirst));
            attended = graph.Node($"{prefix}.attn", "Reshape", [attended, mergeHeads]);
            var projection = Linear(graph, attended, weights[$"{prefix}.attn.proj.weight"], weights[$"{prefix}.attn.proj.bias"], $"{prefix}.attn.proj");
            x = graph.Node(prefix, "Add", [x, projection]);

            // MLP with exact (erf) GELU, as nn.functional.gelu computes by default: x·½·(1 + erf(x/√2)).
            h = LayerNorm(graph, x, weights, $"{prefix}.ln2");
            h = Linear(graph, h, weights[$"{prefix}.mlp.fc.weight"], weights[$"{prefix}.mlp.fc.bias"], $"{prefix}.mlp.fc");
            var erf = graph.Node($"{prefix}.mlp.gelu", "Erf", [graph.Node($"{prefix}.mlp.gelu", "Mul", [h, sqrtHalf])]);
            var gate = graph.Node($"{prefix}.mlp.gelu", "Mul", [graph.Node($"{prefix}.mlp.gelu", "Add", [erf, one]), half]);
            h = graph.Node($"{prefix}.mlp.gelu", "Mul", [h, gate]);
            h = Linear(graph, h, weights[$"{prefix}.mlp.proj.weight"], weights[$"{prefix}.mlp.proj.bias"], $"{prefix}.mlp.proj");
            x = graph.Node(prefix, "Add", [x, h]);
        }

        x = LayerNorm(graph, x, weights, "ln_f");
        var head = weights["head.weight"];
        var logits = graph.Node("head", "MatMul", [x, graph.Floats("head.weight_t", Transpose(head), head.Shape[1], head.Shape[0])]);
        graph.Output(logits, OutputName, DataType.Float, Batch, Sequence, ModelSpec.ByteVocabulary);
    }

    /// <summary>The input as [B, C, H, W]: a 2-D sample [H, W] gains its channel dimension, as in the zoo's forward.</summary>
    private static string ImageInput(OnnxGraphBuilder graph, TrainableModel model)
    {
        var x = graph.Input(InputName, DataType.Float, ClassifierInput(model));
        return model.SampleShape.Count == 2
            ? graph.Node("input", "Unsqueeze", [x, graph.Int64s("channel_axis", _one, 1)])
            : x;
    }

    private static string Param(OnnxGraphBuilder graph, Dictionary<string, Weight> weights, string name)
    {
        var weight = weights[name];
        return graph.Floats(name, weight.Values, weight.Shape);
    }

    /// <summary>nn.Linear on a [B, in] matrix: Gemm with the weight as stored ([out, in], transB).</summary>
    private static string Gemm(OnnxGraphBuilder graph, string x, Dictionary<string, Weight> weights, string module) =>
        graph.Node(module, "Gemm", [x, Param(graph, weights, $"{module}.weight"), Param(graph, weights, $"{module}.bias")], Int("transB", 1));

    /// <summary>nn.Linear on [..., in]: MatMul by the transposed weight, then the bias.</summary>
    private static string Linear(OnnxGraphBuilder graph, string x, Weight weight, Weight bias, string module)
    {
        var transposed = graph.Floats($"{module}.weight_t", Transpose(weight), weight.Shape[1], weight.Shape[0]);
        var product = graph.Node(module, "MatMul", [x, transposed]);
        return graph.Node(module, "Add", [product, graph.Floats($"{module}.bias", bias.Values, bias.Shape)]);
    }

    private static string Conv(OnnxGraphBuilder graph, string x, Dictionary<string, Weight> weights, string module, int stride, int pad)
    {
        var weight = weights[$"{module}.weight"];
        List<string> inputs = [x, Param(graph, weights, $"{module}.weight")];
        if (weights.ContainsKey($"{module}.bias"))
        {
            inputs.Add(Param(graph, weights, $"{module}.bias"));
        }

        return graph.Node(module, "Conv", [.. inputs],
            Ints("kernel_shape", weight.Shape[2], weight.Shape[3]),
            Ints("strides", stride, stride),
            Ints("pads", pad, pad, pad, pad));
    }

    private static string GroupNorm(OnnxGraphBuilder graph, string x, Dictionary<string, Weight> weights, string module)
    {
        var channels = (int)weights[$"{module}.weight"].Shape[0];
        return graph.Node(module, "GroupNormalization",
            [x, Param(graph, weights, $"{module}.weight"), Param(graph, weights, $"{module}.bias")],
            Float("epsilon", NormEpsilon),
            Int("num_groups", ResNetSmallNet.Groups(channels)));
    }

    private static string LayerNorm(OnnxGraphBuilder graph, string x, Dictionary<string, Weight> weights, string module) =>
        graph.Node(module, "LayerNormalization",
            [x, Param(graph, weights, $"{module}.weight"), Param(graph, weights, $"{module}.bias")],
            Int("axis", -1),
            Float("epsilon", NormEpsilon));

    private static float[] Transpose(Weight weight)
    {
        var (rows, columns) = ((int)weight.Shape[0], (int)weight.Shape[1]);
        var transposed = new float[weight.Values.Length];
        for (var r = 0; r < rows; r++)
        {
            for (var c = 0; c < columns; c++)
            {
                transposed[(c * rows) + r] = weight.Values[(r * columns) + c];
            }
        }

        return transposed;
    }

    private sealed record Weight(float[] Values, long[] Shape);
}
