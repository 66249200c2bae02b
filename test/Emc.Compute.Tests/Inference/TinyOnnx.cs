using Emc.Compute.Inference;
using Emc.Compute.Onnx;
using Google.Protobuf;

namespace Emc.Compute.Tests.Inference;

/// <summary>Hand-built ONNX files for the datatype and error tests.</summary>
internal static class TinyOnnx
{
    public const long Opset = 21;
    public const long IrVersion = 10;

    public static byte[] Model(OnnxGraphBuilder graph, long opset = Opset, long irVersion = IrVersion) =>
        new ModelProto
        {
            IrVersion = irVersion,
            ProducerName = "emc-tests",
            ProducerVersion = "1",
            Graph = graph.Graph,
            OpsetImport = { new OperatorSetIdProto { Domain = "", Version = opset } },
        }.ToByteArray();

    /// <summary>One FP32 input passed through Identity.</summary>
    public static byte[] Identity(long opset = Opset)
    {
        var graph = new OnnxGraphBuilder("identity");
        var x = graph.Input("x", TensorProto.Types.DataType.Float, "n", 2);
        graph.Output(graph.Node("id", "Identity", [x]), "y", TensorProto.Types.DataType.Float, "n", 2);
        return Model(graph, opset);
    }
}
