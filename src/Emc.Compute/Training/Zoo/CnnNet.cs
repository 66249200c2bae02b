using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Emc.Compute.Training.Zoo;

/// <summary>
/// The zoo's <c>cnn</c>: per stage a 3×3 convolution (padding 1), ReLU and 2×2 max-pooling; then
/// a fully connected layer, ReLU, dropout and the classifier.
/// </summary>
internal sealed class CnnNet : ZooModule
{
    private readonly ModuleList<Conv2d> _convs;
    private readonly Linear _fc;
    private readonly Linear _head;
    private readonly SeededDropout _dropout;

    public CnnNet(int inputChannels, int height, int width, IReadOnlyList<int> channels, int hidden, int classes, double dropout, Generator dropoutGenerator)
        : base("cnn")
    {
        var convs = new List<Conv2d>();
        long forwardFlops = 0;
        long previous = inputChannels;
        foreach (var next in channels)
        {
            convs.Add(nn.Conv2d(previous, next, kernel_size: 3, padding: 1));
            forwardFlops += 2L * previous * 9 * next * height * width;
            previous = next;
            height /= 2;
            width /= 2;
        }

        var flat = previous * height * width;
        _convs = nn.ModuleList(convs.ToArray());
        _fc = nn.Linear(flat, hidden);
        _head = nn.Linear(hidden, classes);
        _dropout = new SeededDropout(dropout, dropoutGenerator);
        forwardFlops += (2 * flat * hidden) + (2L * hidden * classes);
        register_module("convs", _convs);
        register_module("fc", _fc);
        register_module("head", _head);
        register_module("dropout", _dropout);
        ForwardFlops = forwardFlops;
    }

    public long ForwardFlops { get; }

    public override Tensor forward(Tensor input)
    {
        using var scope = torch.NewDisposeScope();
        var x = input.dim() == 3 ? input.unsqueeze(1) : input;
        foreach (var conv in _convs)
        {
            x = nn.functional.max_pool2d(nn.functional.relu(conv.call(x)), 2);
        }

        x = _dropout.call(nn.functional.relu(_fc.call(x.flatten(1))));
        return _head.call(x).MoveToOuterDisposeScope();
    }
}
