using System.Globalization;
using System.Runtime.InteropServices;
using Emc.Compute.Onnx;
using Google.Protobuf;

namespace Emc.Compute.Inference;

/// <summary>
/// Builds an ONNX graph node by node: constants become initialisers, every node gets a fresh
/// output name under a readable prefix (the PyTorch module path it comes from).
/// </summary>
internal sealed class OnnxGraphBuilder
{
    private readonly GraphProto _graph;
    private readonly HashSet<string> _names = new(StringComparer.Ordinal);
    private int _counter;

    public OnnxGraphBuilder(string name)
    {
        _graph = new GraphProto { Name = name };
    }

    public GraphProto Graph => _graph;

    public string Input(string name, TensorProto.Types.DataType type, params object[] dims)
    {
        _graph.Input.Add(ValueInfo(name, type, dims));
        _names.Add(name);
        return name;
    }

    /// <summary>Declares <paramref name="value"/> a graph output named <paramref name="name"/> (through an Identity when the names differ).</summary>
    public void Output(string value, string name, TensorProto.Types.DataType type, params object[] dims)
    {
        if (value != name)
        {
            _graph.Node.Add(new NodeProto { OpType = "Identity", Name = name, Input = { value }, Output = { name } });
        }

        _graph.Output.Add(ValueInfo(name, type, dims));
    }

    public string Floats(string name, ReadOnlySpan<float> values, params long[] dims) =>
        Initializer(name, TensorProto.Types.DataType.Float, MemoryMarshal.AsBytes(values), dims);

    public string Int64s(string name, ReadOnlySpan<long> values, params long[] dims) =>
        Initializer(name, TensorProto.Types.DataType.Int64, MemoryMarshal.AsBytes(values), dims);

    public string Scalar(string name, float value) => Floats(name, [value]);

    /// <summary>Adds a node with one output and returns that output's name.</summary>
    public string Node(string prefix, string opType, string[] inputs, params AttributeProto[] attributes)
    {
        var node = new NodeProto
        {
            OpType = opType,
            Name = Unique($"{prefix}/{opType}"),
        };
        node.Input.Add(inputs);
        node.Output.Add(node.Name);
        node.Attribute.Add(attributes);
        _graph.Node.Add(node);
        return node.Name;
    }

    public static AttributeProto Int(string name, long value) =>
        new() { Name = name, Type = AttributeProto.Types.AttributeType.Int, I = value };

    public static AttributeProto Float(string name, float value) =>
        new() { Name = name, Type = AttributeProto.Types.AttributeType.Float, F = value };

    public static AttributeProto Ints(string name, params long[] values) =>
        new() { Name = name, Type = AttributeProto.Types.AttributeType.Ints, Ints = { values } };

    private string Initializer(string name, TensorProto.Types.DataType type, ReadOnlySpan<byte> littleEndian, long[] dims)
    {
        if (!BitConverter.IsLittleEndian)
        {
            throw new PlatformNotSupportedException("ONNX raw_data is little-endian; exporting on a big-endian machine is not supported");
        }

        var tensor = new TensorProto
        {
            Name = Unique(name),
            DataType = (int)type,
            RawData = ByteString.CopyFrom(littleEndian),
        };
        tensor.Dims.Add(dims);
        _graph.Initializer.Add(tensor);
        return tensor.Name;
    }

    private string Unique(string name)
    {
        var unique = name;
        while (!_names.Add(unique))
        {
            unique = string.Create(CultureInfo.InvariantCulture, $"{name}_{++_counter}");
        }

        return unique;
    }

    private static ValueInfoProto ValueInfo(string name, TensorProto.Types.DataType type, object[] dims)
    {
        var shape = new TensorShapeProto();
        foreach (var dim in dims)
        {
            shape.Dim.Add(dim switch
            {
                string symbol => new TensorShapeProto.Types.Dimension { DimParam = symbol },
                _ => new TensorShapeProto.Types.Dimension { DimValue = Convert.ToInt64(dim, CultureInfo.InvariantCulture) },
            });
        }

        return new ValueInfoProto
        {
            Name = name,
            Type = new TypeProto { TensorType = new TypeProto.Types.Tensor { ElemType = (int)type, Shape = shape } },
        };
    }
}
