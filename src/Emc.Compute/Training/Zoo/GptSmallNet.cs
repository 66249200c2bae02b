using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Emc.Compute.Training.Zoo;

/// <summary>
/// The zoo's <c>gpt-small</c>: a byte-level decoder-only transformer. Token and learned position
/// embeddings, pre-LayerNorm blocks of causal self-attention and a 4× GELU MLP (dropout on each
/// residual branch), a final LayerNorm and an untied head to the 256 byte values.
/// </summary>
internal sealed class GptSmallNet : ZooModule
{
    private readonly Embedding _tokens;
    private readonly Embedding _positions;
    private readonly ModuleList<Block> _blocks;
    private readonly LayerNorm _finalNorm;
    private readonly Linear _head;
    private readonly int _context;

    public GptSmallNet(int layers, int heads, int dim, int context, double dropout, Generator dropoutGenerator)
        : base("gpt-small")
    {
        _context = context;
        _tokens = nn.Embedding(Core.Training.ModelSpec.ByteVocabulary, dim);
        _positions = nn.Embedding(context, dim);
        _blocks = nn.ModuleList(Enumerable.Range(0, layers).Select(_ => new Block(dim, heads, dropout, dropoutGenerator)).ToArray());
        _finalNorm = nn.LayerNorm(dim);
        _head = nn.Linear(dim, Core.Training.ModelSpec.ByteVocabulary, hasBias: false);
        register_module("tok_emb", _tokens);
        register_module("pos_emb", _positions);
        register_module("blocks", _blocks);
        register_module("ln_f", _finalNorm);
        register_module("head", _head);

        // Per window of `context` tokens: 2 FLOPs per weight per token for the matrices, plus the
        // attention scores and their weighted sum (2·T·dim each per token and layer).
        long d = dim;
        var matrices = (layers * 12 * d * d) + (d * Core.Training.ModelSpec.ByteVocabulary);
        ForwardFlops = context * ((2 * matrices) + (layers * 4L * context * d));
    }

    public long ForwardFlops { get; }

    public override Tensor forward(Tensor input)
    {
        using var scope = torch.NewDisposeScope();
        var length = input.shape[1];
        if (length > _context)
        {
            throw new ArgumentException($"gpt-small takes at most {_context} tokens, not {length}", nameof(input));
        }

        var positions = torch.arange(length, ScalarType.Int64, input.device);
        var x = _tokens.call(input).add(_positions.call(positions));
        foreach (var block in _blocks)
        {
            x = block.call(x);
        }

        return _head.call(_finalNorm.call(x)).MoveToOuterDisposeScope();
    }

    internal sealed class Block : ZooModule
    {
        private readonly LayerNorm _norm1;
        private readonly Attention _attention;
        private readonly LayerNorm _norm2;
        private readonly Mlp _mlp;
        private readonly SeededDropout _dropout;

        public Block(int dim, int heads, double dropout, Generator dropoutGenerator)
            : base("block")
        {
            _norm1 = nn.LayerNorm(dim);
            _attention = new Attention(dim, heads);
            _norm2 = nn.LayerNorm(dim);
            _mlp = new Mlp(dim);
            _dropout = new SeededDropout(dropout, dropoutGenerator);
            register_module("ln1", _norm1);
            register_module("attn", _attention);
            register_module("ln2", _norm2);
            register_module("mlp", _mlp);
            register_module("dropout", _dropout);
        }

        public override Tensor forward(Tensor input)
        {
            using var scope = torch.NewDisposeScope();
            var x = input.add(_dropout.call(_attention.call(_norm1.call(input))));
            return x.add(_dropout.call(_mlp.call(_norm2.call(x)))).MoveToOuterDisposeScope();
        }
    }

    internal sealed class Attention : ZooModule
    {
        private readonly Linear _qkv;
        private readonly Linear _proj;
        private readonly int _heads;

        public Attention(int dim, int heads)
            : base("attn")
        {
            _heads = heads;
            _qkv = nn.Linear(dim, 3 * dim);
            _proj = nn.Linear(dim, dim);
            register_module("qkv", _qkv);
            register_module("proj", _proj);
        }

        public override Tensor forward(Tensor input)
        {
            using var scope = torch.NewDisposeScope();
            var (batch, length, dim) = (input.shape[0], input.shape[1], input.shape[2]);
            var parts = _qkv.call(input).chunk(3, -1);
            Tensor Heads(Tensor t) => t.view(batch, length, _heads, dim / _heads).transpose(1, 2);
            var attended = nn.functional.scaled_dot_product_attention(Heads(parts[0]), Heads(parts[1]), Heads(parts[2]), is_casual: true);
            var merged = attended.transpose(1, 2).reshape(batch, length, dim);
            return _proj.call(merged).MoveToOuterDisposeScope();
        }
    }

    internal sealed class Mlp : ZooModule
    {
        private readonly Linear _fc;
        private readonly Linear _proj;

        public Mlp(int dim)
            : base("mlp")
        {
            _fc = nn.Linear(dim, 4 * dim);
            _proj = nn.Linear(4 * dim, dim);
            register_module("fc", _fc);
            register_module("proj", _proj);
        }

        public override Tensor forward(Tensor input)
        {
            using var scope = torch.NewDisposeScope();
            return _proj.call(nn.functional.gelu(_fc.call(input))).MoveToOuterDisposeScope();
        }
    }
}
