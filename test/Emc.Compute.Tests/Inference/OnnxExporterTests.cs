using System.Globalization;
using System.Runtime.InteropServices;
using Emc.Compute.Inference;
using Emc.Compute.Tests.Training;
using Emc.Compute.Training;
using Emc.Core.Inference;
using Emc.Core.Training;
using TorchSharp;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace Emc.Compute.Tests.Inference;

/// <summary>
/// Every zoo model exported to ONNX gives, in ONNX Runtime, the logits TorchSharp's forward gives
/// in evaluation mode. The weights are perturbed away from their initial values first so that the
/// norms' scales and shifts (1 and 0 at initialisation) are really carried over.
/// </summary>
[Collection(TorchCollection.Name)]
public sealed class OnnxExporterTests(ITestOutputHelper output)
{
    private const double Tolerance = 1e-4;

    public static TheoryData<string, int[], int> Classifiers => new()
    {
        { ModelSpec.Mlp, [28, 28], 10 },
        { ModelSpec.Cnn, [28, 28], 10 },
        { ModelSpec.Cnn, [3, 32, 32], 7 },
        { ModelSpec.ResNetSmall, [28, 28], 10 },
        { ModelSpec.ResNetSmall, [3, 17, 17], 4 },
    };

    [Theory]
    [MemberData(nameof(Classifiers))]
    public void Export_Classifier_OnnxRuntimeMatchesTorchSharp(string name, int[] sampleShape, int classes)
    {
        using var model = TrainableModel.Create(new ModelSpec { Name = name }, sampleShape, classes, false, "cpu", 11);
        Perturb(model, 0.05f);

        using var session = OnnxSession.Load(OnnxExporter.Export(model), new OnnxSessionOptions { IntraOpThreads = 1 });

        var input = Assert.Single(session.Info.Inputs);
        Assert.Equal(new OnnxTensorInfo("input", TensorDatatype.Fp32, input.Shape), input);
        Assert.Equal([-1L, .. sampleShape.Select(d => (long)d)], input.Shape);
        Assert.Equal([-1L, classes], Assert.Single(session.Info.Outputs).Shape);
        Assert.Equal("emc", session.Info.Producer);

        var worst = 0.0;
        foreach (var batch in new[] { 1, 3, 8 })
        {
            using var scope = torch.NewDisposeScope();
            using var generator = new Generator((ulong)batch, torch.CPU);
            var x = torch.rand([batch, .. sampleShape.Select(d => (long)d)], generator: generator);
            worst = Math.Max(worst, Compare(model, session, x, TensorDatatype.Fp32, MemoryMarshal.AsBytes(x.data<float>().ToArray().AsSpan()).ToArray()));
        }

        output.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{name} [{string.Join(", ", sampleShape)}]: max |onnx - torch| = {worst:E2}"));
        Assert.True(worst <= Tolerance, $"max abs difference {worst}");
    }

    [Fact]
    public void Export_GptSmall_OnnxRuntimeMatchesTorchSharpForEveryLength()
    {
        var spec = new ModelSpec { Name = ModelSpec.GptSmall, Layers = 2, Heads = 2, Dim = 32, Context = 16, Dropout = 0.1 };
        using var model = TrainableModel.Create(spec, [], ModelSpec.ByteVocabulary, true, "cpu", 5);
        Perturb(model, 0.1f);

        using var session = OnnxSession.Load(OnnxExporter.Export(model), new OnnxSessionOptions { IntraOpThreads = 1 });

        var input = Assert.Single(session.Info.Inputs);
        Assert.Equal(TensorDatatype.Int64, input.Datatype);
        Assert.Equal([-1L, -1], input.Shape);
        Assert.Equal([-1L, -1, 256], Assert.Single(session.Info.Outputs).Shape);

        var worst = 0.0;
        foreach (var (batch, length) in new[] { (1, 1), (2, 5), (3, 16), (1, 16) })
        {
            using var scope = torch.NewDisposeScope();
            using var generator = new Generator((ulong)(batch * 100 + length), torch.CPU);
            var tokens = torch.randint(0, 256, [batch, length], ScalarType.Int64, generator: generator);
            worst = Math.Max(worst, Compare(model, session, tokens, TensorDatatype.Int64, MemoryMarshal.AsBytes(tokens.data<long>().ToArray().AsSpan()).ToArray()));
        }

        output.WriteLine(string.Create(CultureInfo.InvariantCulture, $"gpt-small: max |onnx - torch| = {worst:E2}"));
        Assert.True(worst <= Tolerance, $"max abs difference {worst}");
    }

    [Fact]
    public void Export_WritesProducerOpsetAndSpec()
    {
        using var model = TrainingData.SmallMlp();

        var info = OnnxModelInfo.Read(OnnxExporter.Export(model));

        Assert.Equal(OnnxExporter.Producer, info.Producer);
        Assert.Equal(OnnxExporter.Opset, info.Opset);
        Assert.Equal(ModelExport.SpecJson(model), info.Metadata[OnnxExporter.SpecMetadataKey]);
    }

    [Fact]
    public void Export_TorchScriptModel_ThrowsNotSupported()
    {
        using var model = TorchScriptTrainingTests.LoadScript();

        var ex = Assert.Throws<NotSupportedException>(() => OnnxExporter.Export(model));

        Assert.Contains("TorchScript", ex.Message, StringComparison.Ordinal);
    }

    /// <summary>Runs both and returns the largest absolute difference of the logits.</summary>
    private static double Compare(TrainableModel model, OnnxSession session, Tensor input, TensorDatatype datatype, byte[] bytes)
    {
        model.Module.eval();
        float[] expected;
        using (torch.no_grad())
        {
            using var torchLogits = model.Forward(input);
            expected = torchLogits.data<float>().ToArray();
        }

        var logits = Assert.Single(session.Run([InferTensor.FromRaw("input", datatype, input.shape, bytes)]));
        Assert.Equal("logits", logits.Name);
        Assert.Equal(input.shape.Length == 2 && datatype == TensorDatatype.Int64 ? [.. input.shape, 256] : [input.shape[0], model.Classes], logits.Shape);
        var actual = MemoryMarshal.Cast<byte, float>(logits.Data.Span);
        Assert.Equal(expected.Length, actual.Length);

        // Logits near zero would make any tolerance meaningless.
        Assert.True(expected.Max(Math.Abs) > 0.1, $"the logits are all within ±{expected.Max(Math.Abs)}");
        var worst = 0.0;
        for (var i = 0; i < expected.Length; i++)
        {
            worst = Math.Max(worst, Math.Abs(expected[i] - actual[i]));
        }

        return worst;
    }

    /// <summary>Adds uniform noise in ±<paramref name="amplitude"/> to every weight.</summary>
    private static void Perturb(TrainableModel model, float amplitude)
    {
        var random = new Random(1234);
        var vector = model.ReadVector();
        for (var i = 0; i < vector.Length; i++)
        {
            vector[i] += ((random.NextSingle() * 2) - 1) * amplitude;
        }

        model.WriteVector(vector);
    }
}
