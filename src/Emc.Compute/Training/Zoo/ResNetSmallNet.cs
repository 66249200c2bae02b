using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Emc.Compute.Training.Zoo;

/// <summary>
/// The zoo's <c>resnet-small</c>: a 3×3 stem, basic residual blocks (two 3×3 convolutions with
/// GroupNorm; a 1×1 projection where the shape changes), global average pooling, dropout and the
/// classifier. Blocks are numbered in one list across stages; the first block of every stage
/// after the first has stride 2.
/// </summary>
internal sealed class ResNetSmallNet : ZooModule
{
    private readonly Conv2d _stem;
    private readonly GroupNorm _stemNorm;
    private readonly ModuleList<BasicBlock> _blocks;
    private readonly Linear _fc;
    private readonly SeededDropout _dropout;

    public ResNetSmallNet(int inputChannels, int height, int width, IReadOnlyList<int> channels, int blocksPerStage, int classes, double dropout, Generator dropoutGenerator)
        : base("resnet-small")
    {
        _stem = nn.Conv2d(inputChannels, channels[0], kernel_size: 3, padding: 1, bias: false);
        _stemNorm = nn.GroupNorm(Groups(channels[0]), channels[0]);
        long forwardFlops = 2L * inputChannels * 9 * channels[0] * height * width;
        var blocks = new List<BasicBlock>();
        var previous = channels[0];
        for (var stage = 0; stage < channels.Count; stage++)
        {
            for (var b = 0; b < blocksPerStage; b++)
            {
                var stride = stage > 0 && b == 0 ? 2 : 1;
                if (stride == 2)
                {
                    // A 3×3 convolution with padding 1 and stride 2 gives ceil(side / 2).
                    height = (height + 1) / 2;
                    width = (width + 1) / 2;
                }

                var block = new BasicBlock(previous, channels[stage], stride);
                forwardFlops += block.ForwardFlops(height, width);
                blocks.Add(block);
                previous = channels[stage];
            }
        }

        _blocks = nn.ModuleList(blocks.ToArray());
        _fc = nn.Linear(previous, classes);
        _dropout = new SeededDropout(dropout, dropoutGenerator);
        forwardFlops += 2L * previous * classes;
        register_module("stem", _stem);
        register_module("stem_norm", _stemNorm);
        register_module("blocks", _blocks);
        register_module("fc", _fc);
        register_module("dropout", _dropout);
        ForwardFlops = forwardFlops;
    }

    public long ForwardFlops { get; }

    /// <summary>GroupNorm groups for <paramref name="channels"/>: gcd(channels, 8), so 8 wherever the width allows.</summary>
    internal static int Groups(int channels)
    {
        var a = channels;
        var b = 8;
        while (b != 0)
        {
            (a, b) = (b, a % b);
        }

        return a;
    }

    public override Tensor forward(Tensor input)
    {
        using var scope = torch.NewDisposeScope();
        var x = input.dim() == 3 ? input.unsqueeze(1) : input;
        x = nn.functional.relu(_stemNorm.call(_stem.call(x)));
        foreach (var block in _blocks)
        {
            x = block.call(x);
        }

        x = _dropout.call(x.mean([2, 3]));
        return _fc.call(x).MoveToOuterDisposeScope();
    }

    internal sealed class BasicBlock : ZooModule
    {
        private readonly Conv2d _conv1;
        private readonly GroupNorm _norm1;
        private readonly Conv2d _conv2;
        private readonly GroupNorm _norm2;
        private readonly Conv2d? _down;
        private readonly GroupNorm? _downNorm;
        private readonly long _inputs;
        private readonly long _outputs;

        public BasicBlock(int inputs, int outputs, int stride)
            : base("block")
        {
            _inputs = inputs;
            _outputs = outputs;
            _conv1 = nn.Conv2d(inputs, outputs, kernel_size: 3, stride: stride, padding: 1, bias: false);
            _norm1 = nn.GroupNorm(Groups(outputs), outputs);
            _conv2 = nn.Conv2d(outputs, outputs, kernel_size: 3, padding: 1, bias: false);
            _norm2 = nn.GroupNorm(Groups(outputs), outputs);
            register_module("conv1", _conv1);
            register_module("norm1", _norm1);
            register_module("conv2", _conv2);
            register_module("norm2", _norm2);
            if (stride != 1 || inputs != outputs)
            {
                _down = nn.Conv2d(inputs, outputs, kernel_size: 1, stride: stride, bias: false);
                _downNorm = nn.GroupNorm(Groups(outputs), outputs);
                register_module("down", _down);
                register_module("down_norm", _downNorm);
            }
        }

        /// <summary>Forward FLOPs at the block's output resolution.</summary>
        public long ForwardFlops(long height, long width) =>
            2 * height * width * _outputs * ((_inputs * 9) + (_outputs * 9) + (_down is null ? 0 : _inputs));

        public override Tensor forward(Tensor input)
        {
            using var scope = torch.NewDisposeScope();
            var x = nn.functional.relu(_norm1.call(_conv1.call(input)));
            x = _norm2.call(_conv2.call(x));
            var shortcut = _down is null ? input : _downNorm!.call(_down.call(input));
            return nn.functional.relu(x.add(shortcut)).MoveToOuterDisposeScope();
        }
    }
}
