using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Emc.Compute.Training.Zoo;

/// <summary>The zoo's <c>mlp</c>: flatten, Linear + ReLU (+ dropout) per hidden width, Linear to the classes.</summary>
internal sealed class MlpNet : ZooModule
{
    private readonly ModuleList<Linear> _hidden;
    private readonly Linear _head;
    private readonly SeededDropout _dropout;

    public MlpNet(long inputs, IReadOnlyList<int> hidden, int classes, double dropout, Generator dropoutGenerator)
        : base("mlp")
    {
        var layers = new List<Linear>();
        long forwardFlops = 0;
        var width = inputs;
        foreach (var next in hidden)
        {
            layers.Add(nn.Linear(width, next));
            forwardFlops += 2 * width * next;
            width = next;
        }

        _hidden = nn.ModuleList(layers.ToArray());
        _head = nn.Linear(width, classes);
        forwardFlops += 2 * width * classes;
        _dropout = new SeededDropout(dropout, dropoutGenerator);
        register_module("hidden", _hidden);
        register_module("head", _head);
        register_module("dropout", _dropout);
        ForwardFlops = forwardFlops;
    }

    /// <summary>Multiply-adds ×2 of one sample's forward pass.</summary>
    public long ForwardFlops { get; }

    public override Tensor forward(Tensor input)
    {
        using var scope = torch.NewDisposeScope();
        var x = input.flatten(1);
        foreach (var layer in _hidden)
        {
            x = _dropout.call(nn.functional.relu(layer.call(x)));
        }

        return _head.call(x).MoveToOuterDisposeScope();
    }
}
