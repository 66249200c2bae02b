using System.Runtime.InteropServices;
using Emc.Compute.Inference;
using Emc.Compute.Onnx;
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

        Assert.Equal(["INT64", "FP16", "BOOL", "BYTES", "FP64", "UINT8"], session.Info.Inputs.Select(i => i.Datatype));
        Assert.Equal(["INT64", "FP32", "BOOL", "BYTES", "FP64", "UINT8"], session.Info.Outputs.Select(o => o.Datatype));
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
        byte[] text = Strings("héllo", "", "onnx");
        double[] doubles = [Math.PI, -0.0, 1e300];
        byte[] bytes = [0, 1, 255];

        var outputs = session.Run(new Dictionary<string, InferenceTensor>
        {
            ["i64"] = new("INT64", [2, 3], MemoryMarshal.AsBytes(int64s.AsSpan()).ToArray()),
            ["f16"] = new("FP16", [3, 2], MemoryMarshal.AsBytes(halves.AsSpan()).ToArray()),
            ["flags"] = new("BOOL", [6], flags.Select(f => (byte)(f ? 1 : 0)).ToArray()),
            ["text"] = new("BYTES", [3], text),
            ["f64"] = new("FP64", [3], MemoryMarshal.AsBytes(doubles.AsSpan()).ToArray()),
            ["u8"] = new("UINT8", [1, 3], bytes),
        });

        Assert.Equal(6, outputs.Count);
        AssertTensor(outputs["i64_out"], "INT64", [2, 3], MemoryMarshal.AsBytes(int64s.AsSpan()).ToArray());
        var floats = outputs["f32_out"];
        Assert.Equal("FP32", floats.Datatype);
        Assert.Equal([3L, 2], floats.Shape);
        Assert.Equal(halves.Select(h => (float)h), MemoryMarshal.Cast<byte, float>(floats.Data.Span).ToArray());
        AssertTensor(outputs["not_out"], "BOOL", [6], flags.Select(f => (byte)(f ? 0 : 1)).ToArray());
        AssertTensor(outputs["text_out"], "BYTES", [3], text);
        AssertTensor(outputs["f64_out"], "FP64", [3], MemoryMarshal.AsBytes(doubles.AsSpan()).ToArray());
        AssertTensor(outputs["u8_out"], "UINT8", [1, 3], bytes);
    }

    [Fact]
    public void Run_SelectedOutputAndUnalignedSlice_ReturnsOnlyThatOutput()
    {
        using var session = OnnxSession.Load(_plumbing);
        var buffer = new byte[(6 * 8) + 1];
        var values = Enumerable.Range(1, 6).Select(i => (long)i * 1000).ToArray();
        MemoryMarshal.AsBytes(values.AsSpan()).CopyTo(buffer.AsSpan(1));
        var inputs = Inputs(batch: 1);

        // Eight-byte elements at an odd address: the session copies them to an aligned buffer.
        inputs["i64"] = new InferenceTensor("INT64", [2, 3], buffer.AsMemory(1));

        var outputs = session.Run(inputs, ["i64_out"]);

        var output = Assert.Single(outputs);
        Assert.Equal("i64_out", output.Key);
        Assert.Equal(values, MemoryMarshal.Cast<byte, long>(output.Value.Data.Span).ToArray());
    }

    [Fact]
    public void Run_BadInputs_ThrowClearArgumentErrors()
    {
        using var session = OnnxSession.Load(_plumbing);

        var wrongType = Inputs(batch: 1);
        wrongType["i64"] = new InferenceTensor("INT32", [1, 3], new byte[12]);
        Assert.Contains("'i64' is INT64, not INT32", Assert.Throws<ArgumentException>(() => session.Run(wrongType)).Message, StringComparison.Ordinal);

        var wrongShape = Inputs(batch: 1);
        wrongShape["i64"] = new InferenceTensor("INT64", [1, 4], new byte[32]);
        Assert.Contains("the model takes [-1, 3]", Assert.Throws<ArgumentException>(() => session.Run(wrongShape)).Message, StringComparison.Ordinal);

        var wrongLength = Inputs(batch: 1);
        wrongLength["i64"] = new InferenceTensor("INT64", [1, 3], new byte[23]);
        Assert.Contains("needs 24 bytes, not 23", Assert.Throws<ArgumentException>(() => session.Run(wrongLength)).Message, StringComparison.Ordinal);

        var missing = Inputs(batch: 1);
        missing.Remove("f16");
        Assert.Contains("missing input 'f16'", Assert.Throws<ArgumentException>(() => session.Run(missing)).Message, StringComparison.Ordinal);

        var unknown = Inputs(batch: 1);
        unknown["nope"] = new InferenceTensor("FP32", [1], new byte[4]);
        Assert.Contains("no input 'nope'", Assert.Throws<ArgumentException>(() => session.Run(unknown)).Message, StringComparison.Ordinal);

        var badStrings = Inputs(batch: 1);
        badStrings["text"] = new InferenceTensor("BYTES", [1], new byte[] { 9, 0, 0, 0, 1 });
        Assert.Contains("claims 9 bytes", Assert.Throws<ArgumentException>(() => session.Run(badStrings)).Message, StringComparison.Ordinal);

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

        Assert.Throws<ObjectDisposedException>(() => session.Run(new Dictionary<string, InferenceTensor>()));
    }

    private static Dictionary<string, InferenceTensor> Inputs(int batch) => new()
    {
        ["i64"] = new("INT64", [batch, 3], new byte[batch * 3 * 8]),
        ["f16"] = new("FP16", [batch, 2], new byte[batch * 2 * 2]),
        ["flags"] = new("BOOL", [batch], new byte[batch]),
        ["text"] = new("BYTES", [1], Strings("x")),
        ["f64"] = new("FP64", [3], new byte[24]),
        ["u8"] = new("UINT8", [1, 3], new byte[3]),
    };

    private static void AssertTensor(InferenceTensor tensor, string datatype, long[] shape, byte[] data)
    {
        Assert.Equal(datatype, tensor.Datatype);
        Assert.Equal(shape, tensor.Shape);
        Assert.Equal(data, tensor.Data.ToArray());
    }

    /// <summary>BYTES elements: a 4-byte little-endian length, then the UTF-8 bytes.</summary>
    private static byte[] Strings(params string[] values)
    {
        using var stream = new MemoryStream();
        foreach (var value in values)
        {
            var bytes = System.Text.Encoding.UTF8.GetBytes(value);
            stream.Write(BitConverter.GetBytes(bytes.Length));
            stream.Write(bytes);
        }

        return stream.ToArray();
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
