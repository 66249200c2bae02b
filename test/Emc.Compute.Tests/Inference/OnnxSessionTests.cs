using System.Runtime.InteropServices;
using Emc.Compute.Inference;
using Emc.Compute.Onnx;
using Emc.Core.Inference;
using static Emc.Compute.Inference.OnnxGraphBuilder;
using DataType = Emc.Compute.Onnx.TensorProto.Types.DataType;

namespace Emc.Compute.Tests.Inference;

public sealed class OnnxSessionTests
{
    /// <summary>
    /// i64 → Identity → i64_out, f16 → Cast(FLOAT) → f32_out, flags → Not → not_out,
    /// text → Identity → text_out, f64 → Identity → f64_out, u8 → Identity → u8_out.
    /// </summary>
    private static readonly byte[] _plumbing = BuildPlumbing();

    [Fact]
    public void Load_Plumbing_InfoListsEveryDatatype()
    {
        using var session = OnnxSession.Load(_plumbing);

        Assert.Equal(["INT64", "FP16", "BOOL", "BYTES", "FP64", "UINT8"], session.Info.Inputs.Select(i => i.TypeName));
        Assert.Equal(
            [TensorDatatype.Int64, TensorDatatype.Fp32, TensorDatatype.Bool, TensorDatatype.Bytes, TensorDatatype.Fp64, TensorDatatype.UInt8],
            session.Info.Outputs.Select(o => o.Datatype));
        Assert.Equal([-1L, 3], session.Info.Inputs[0].Shape);
        Assert.Equal("cpu", session.Device);
    }

    [Fact]
    public void Run_Int64Fp16BoolBytes_RoundTripThroughOnnxRuntime()
    {
        using var session = OnnxSession.Load(_plumbing, new OnnxSessionOptions { IntraOpThreads = 1 });
        long[] int64s = [long.MinValue, -1, 0, 1, 1L << 40, long.MaxValue];
        Half[] halves = [(Half)0.5f, (Half)(-2f), Half.MaxValue, (Half)1e-3f, Half.Epsilon, (Half)65504f];
        bool[] flags = [true, false, true, false, false, true];
        string[] text = ["héllo", "", "onnx"];
        double[] doubles = [Math.PI, -0.0, 1e300];
        byte[] bytes = [0, 1, 255];

        var outputs = session.Run(
        [
            InferTensor.Create<long>("i64", [2, 3], int64s),
            InferTensor.Create<Half>("f16", [3, 2], halves),
            InferTensor.Create<bool>("flags", [6], flags),
            InferTensor.FromStrings("text", [3], text),
            InferTensor.Create<double>("f64", [3], doubles),
            InferTensor.Create<byte>("u8", [1, 3], bytes),
        ]);

        Assert.Equal(["i64_out", "f32_out", "not_out", "text_out", "f64_out", "u8_out"], outputs.Select(o => o.Name));
        AssertTensor(outputs[0], TensorDatatype.Int64, [2, 3], MemoryMarshal.AsBytes(int64s.AsSpan()).ToArray());
        var floats = outputs[1];
        Assert.Equal(TensorDatatype.Fp32, floats.Datatype);
        Assert.Equal([3L, 2], floats.Shape);
        Assert.Equal(halves.Select(h => (float)h), floats.ToArray<float>());
        AssertTensor(outputs[2], TensorDatatype.Bool, [6], flags.Select(f => (byte)(f ? 0 : 1)).ToArray());
        Assert.Equal(TensorDatatype.Bytes, outputs[3].Datatype);
        Assert.Equal([3L], outputs[3].Shape);
        Assert.Equal(text, outputs[3].ToStringArray());
        AssertTensor(outputs[4], TensorDatatype.Fp64, [3], MemoryMarshal.AsBytes(doubles.AsSpan()).ToArray());
        AssertTensor(outputs[5], TensorDatatype.UInt8, [1, 3], bytes);
    }

    [Fact]
    public void Run_SelectedOutputAndUnalignedSlice_ReturnsOnlyThatOutput()
    {
        using var session = OnnxSession.Load(_plumbing);
        var buffer = new byte[(6 * 8) + 1];
        var values = Enumerable.Range(1, 6).Select(i => (long)i * 1000).ToArray();
        MemoryMarshal.AsBytes(values.AsSpan()).CopyTo(buffer.AsSpan(1));

        // Eight-byte elements at an odd address: the session copies them to an aligned buffer.
        var inputs = Inputs(batch: 1, InferTensor.FromRaw("i64", TensorDatatype.Int64, [2, 3], buffer.AsMemory(1)));

        var outputs = session.Run(inputs, ["i64_out"]);

        var output = Assert.Single(outputs);
        Assert.Equal("i64_out", output.Name);
        Assert.Equal(values, output.ToArray<long>());
    }

    [Fact]
    public void Run_BadInputs_ThrowClearArgumentErrors()
    {
        using var session = OnnxSession.Load(_plumbing);

        var wrongType = Inputs(batch: 1, InferTensor.Create<int>("i64", [1, 3], new int[3]));
        Assert.Contains("'i64' is INT64, not INT32", Assert.Throws<ArgumentException>(() => session.Run(wrongType)).Message, StringComparison.Ordinal);

        var wrongShape = Inputs(batch: 1, InferTensor.Create<long>("i64", [1, 4], new long[4]));
        Assert.Contains("the model takes [-1, 3]", Assert.Throws<ArgumentException>(() => session.Run(wrongShape)).Message, StringComparison.Ordinal);

        var missing = Inputs(batch: 1).Where(i => i.Name != "f16").ToList();
        Assert.Contains("missing input 'f16'", Assert.Throws<ArgumentException>(() => session.Run(missing)).Message, StringComparison.Ordinal);

        var unknown = Inputs(batch: 1).Append(InferTensor.Create<float>("nope", [1], new float[1])).ToList();
        Assert.Contains("no input 'nope'", Assert.Throws<ArgumentException>(() => session.Run(unknown)).Message, StringComparison.Ordinal);

        var twice = Inputs(batch: 1).Append(InferTensor.Create<byte>("u8", [1, 3], new byte[3])).ToList();
        Assert.Contains("input 'u8' is given more than once", Assert.Throws<ArgumentException>(() => session.Run(twice)).Message, StringComparison.Ordinal);

        Assert.Contains("no output 'z'", Assert.Throws<ArgumentException>(() => session.Run(Inputs(batch: 1), ["z"])).Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Load_CudaWithoutCudaProvider_SaysSo()
    {
        var ex = Assert.Throws<NotSupportedException>(() => OnnxSession.Load(TinyOnnx.Identity(), new OnnxSessionOptions { Device = "cuda:0" }));

        Assert.Contains("CUDA execution provider", ex.Message, StringComparison.Ordinal);
        Assert.Throws<ArgumentException>(() => OnnxSession.Load(TinyOnnx.Identity(), new OnnxSessionOptions { Device = "tpu" }));
    }

    [Fact]
    public void Run_AfterDispose_Throws()
    {
        var session = OnnxSession.Load(TinyOnnx.Identity());
        session.Dispose();

        Assert.Throws<ObjectDisposedException>(() => session.Run([]));
    }

    /// <summary>Zeros for every input of the plumbing model, with <paramref name="replacement"/> in place of the input of its name.</summary>
    private static List<InferTensor> Inputs(int batch, InferTensor? replacement = null)
    {
        List<InferTensor> inputs =
        [
            InferTensor.Create<long>("i64", [batch, 3], new long[batch * 3]),
            InferTensor.Create<Half>("f16", [batch, 2], new Half[batch * 2]),
            InferTensor.Create<bool>("flags", [batch], new bool[batch]),
            InferTensor.FromStrings("text", [1], ["x"]),
            InferTensor.Create<double>("f64", [3], new double[3]),
            InferTensor.Create<byte>("u8", [1, 3], new byte[3]),
        ];
        return replacement is null ? inputs : [.. inputs.Select(i => i.Name == replacement.Name ? replacement : i)];
    }

    private static void AssertTensor(InferTensor tensor, TensorDatatype datatype, long[] shape, byte[] data)
    {
        Assert.Equal(datatype, tensor.Datatype);
        Assert.Equal(shape, tensor.Shape);
        Assert.Equal(data, tensor.Data.ToArray());
    }

    private static byte[] BuildPlumbing()
    {
        var graph = new OnnxGraphBuilder("plumbing");
        var i64 = graph.Input("i64", DataType.Int64, "n", 3);
        var f16 = graph.Input("f16", DataType.Float16, "m", 2);
        var flags = graph.Input("flags", DataType.Bool, "k");
        var text = graph.Input("text", DataType.String, "s");
        var f64 = graph.Input("f64", DataType.Double, 3);
        var u8 = graph.Input("u8", DataType.Uint8, 1, 3);
        graph.Output(graph.Node("i64", "Identity", [i64]), "i64_out", DataType.Int64, "n", 3);
        graph.Output(graph.Node("f16", "Cast", [f16], Int("to", (long)DataType.Float)), "f32_out", DataType.Float, "m", 2);
        graph.Output(graph.Node("flags", "Not", [flags]), "not_out", DataType.Bool, "k");
        graph.Output(graph.Node("text", "Identity", [text]), "text_out", DataType.String, "s");
        graph.Output(graph.Node("f64", "Identity", [f64]), "f64_out", DataType.Double, 3);
        graph.Output(graph.Node("u8", "Identity", [u8]), "u8_out", DataType.Uint8, 1, 3);
        return TinyOnnx.Model(graph);
    }
}
