"""PyTorch definitions of EMC's model zoo, for models trained on an EMC network.

Every module here has exactly the state_dict names and shapes of the zoo model a node builds
(src/Emc.Compute/Training/Zoo), so a state_dict exported with ModelExport.SaveStateDict loads
strictly:

    import json, torch, emc_zoo
    spec = json.load(open("model.json"))        # ModelExport.SpecJson(model)
    m = emc_zoo.build(spec)
    m.load_state_dict(torch.load("model.pt"))
    m.eval()

or simply ``m = emc_zoo.load("model.pt", "model.json")``.

The spec is a dict such as ``{"name": "cnn", "channels": [32, 64], "hidden": [128],
"dropout": 0.25, "sampleShape": [28, 28], "classes": 10}``; fields left out take the same
defaults as on the nodes (ModelSpec.WithDefaults). snake_case keys (``sample_shape``) are
accepted too. Inputs are what the nodes feed: images as float32 in [0, 1] shaped [B, H, W] or
[B, C, H, W] (pixels / 255), byte windows as int64 [B, T] for gpt-small.

Works with PyTorch 1.13 and later (gpt-small uses scaled_dot_product_attention where it exists,
an explicit causal mask otherwise; both compute the same thing).
"""

import json
import math
from typing import Any, Dict, List, Optional

import torch
from torch import nn
from torch.nn import functional as F

BYTE_VOCABULARY = 256

DEFAULTS: Dict[str, Dict[str, Any]] = {
    "mlp": {"hidden": [256, 128, 100], "dropout": 0.0},
    "cnn": {"channels": [32, 64], "hidden": [128], "dropout": 0.25},
    "resnet-small": {"channels": [16, 32, 64], "blocks": 1, "dropout": 0.0},
    "gpt-small": {"layers": 4, "heads": 4, "dim": 128, "context": 128, "dropout": 0.0},
}


def _image_dims(sample_shape: List[int]):
    if len(sample_shape) == 2:
        return 1, sample_shape[0], sample_shape[1]
    if len(sample_shape) == 3:
        return sample_shape[0], sample_shape[1], sample_shape[2]
    raise ValueError("convolutional models need samples shaped [H, W] or [C, H, W]")


class Mlp(nn.Module):
    """flatten; Linear + ReLU + dropout per hidden width; Linear to the classes."""

    def __init__(self, inputs: int, hidden: List[int], classes: int, dropout: float) -> None:
        super().__init__()
        widths = [inputs] + list(hidden)
        self.hidden = nn.ModuleList([nn.Linear(a, b) for a, b in zip(widths, widths[1:])])
        self.head = nn.Linear(widths[-1], classes)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.flatten(1)
        for layer in self.hidden:
            x = self.dropout(F.relu(layer(x)))
        return self.head(x)


class Cnn(nn.Module):
    """Per stage: 3x3 conv (padding 1), ReLU, 2x2 max-pool; then FC, ReLU, dropout, classifier."""

    def __init__(self, in_channels: int, height: int, width: int, channels: List[int], hidden: int,
                 classes: int, dropout: float) -> None:
        super().__init__()
        convs = []
        previous = in_channels
        for c in channels:
            convs.append(nn.Conv2d(previous, c, 3, padding=1))
            previous = c
            height //= 2
            width //= 2
        self.convs = nn.ModuleList(convs)
        self.fc = nn.Linear(previous * height * width, hidden)
        self.head = nn.Linear(hidden, classes)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 3:
            x = x.unsqueeze(1)
        for conv in self.convs:
            x = F.max_pool2d(F.relu(conv(x)), 2)
        x = self.dropout(F.relu(self.fc(x.flatten(1))))
        return self.head(x)


def _groups(channels: int) -> int:
    return math.gcd(channels, 8)


class BasicBlock(nn.Module):
    def __init__(self, inputs: int, outputs: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inputs, outputs, 3, stride=stride, padding=1, bias=False)
        self.norm1 = nn.GroupNorm(_groups(outputs), outputs)
        self.conv2 = nn.Conv2d(outputs, outputs, 3, padding=1, bias=False)
        self.norm2 = nn.GroupNorm(_groups(outputs), outputs)
        self.down: Optional[nn.Conv2d] = None
        self.down_norm: Optional[nn.GroupNorm] = None
        if stride != 1 or inputs != outputs:
            self.down = nn.Conv2d(inputs, outputs, 1, stride=stride, bias=False)
            self.down_norm = nn.GroupNorm(_groups(outputs), outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.norm1(self.conv1(x)))
        out = self.norm2(self.conv2(out))
        shortcut = x if self.down is None else self.down_norm(self.down(x))
        return F.relu(out + shortcut)


class ResNetSmall(nn.Module):
    """3x3 stem + GroupNorm; basic blocks (stride 2 at each new stage); global average pool; FC."""

    def __init__(self, in_channels: int, channels: List[int], blocks: int, classes: int, dropout: float) -> None:
        super().__init__()
        self.stem = nn.Conv2d(in_channels, channels[0], 3, padding=1, bias=False)
        self.stem_norm = nn.GroupNorm(_groups(channels[0]), channels[0])
        layers = []
        previous = channels[0]
        for stage, c in enumerate(channels):
            for b in range(blocks):
                layers.append(BasicBlock(previous, c, 2 if stage > 0 and b == 0 else 1))
                previous = c
        self.blocks = nn.ModuleList(layers)
        self.fc = nn.Linear(previous, classes)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 3:
            x = x.unsqueeze(1)
        x = F.relu(self.stem_norm(self.stem(x)))
        for block in self.blocks:
            x = block(x)
        return self.fc(self.dropout(x.mean(dim=(2, 3))))


class Attention(nn.Module):
    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, length, dim = x.shape
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        q, k, v = (t.view(batch, length, self.heads, dim // self.heads).transpose(1, 2) for t in (q, k, v))
        if hasattr(F, "scaled_dot_product_attention"):
            out = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:
            scores = q @ k.transpose(-2, -1) / math.sqrt(dim // self.heads)
            mask = torch.ones(length, length, dtype=torch.bool, device=x.device).triu(1)
            out = scores.masked_fill(mask, float("-inf")).softmax(dim=-1) @ v
        return self.proj(out.transpose(1, 2).reshape(batch, length, dim))


class GptMlp(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.fc = nn.Linear(dim, 4 * dim)
        self.proj = nn.Linear(4 * dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(F.gelu(self.fc(x)))


class GptBlock(nn.Module):
    def __init__(self, dim: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, heads)
        self.ln2 = nn.LayerNorm(dim)
        self.mlp = GptMlp(dim)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.dropout(self.attn(self.ln1(x)))
        return x + self.dropout(self.mlp(self.ln2(x)))


class GptSmall(nn.Module):
    """Byte-level decoder: token + learned position embeddings, pre-LN blocks, final LN, untied head."""

    def __init__(self, layers: int, heads: int, dim: int, context: int, dropout: float) -> None:
        super().__init__()
        self.context = context
        self.tok_emb = nn.Embedding(BYTE_VOCABULARY, dim)
        self.pos_emb = nn.Embedding(context, dim)
        self.blocks = nn.ModuleList([GptBlock(dim, heads, dropout) for _ in range(layers)])
        self.ln_f = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, BYTE_VOCABULARY, bias=False)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        length = tokens.shape[1]
        if length > self.context:
            raise ValueError(f"gpt-small takes at most {self.context} tokens")
        x = self.tok_emb(tokens) + self.pos_emb(torch.arange(length, device=tokens.device))
        for block in self.blocks:
            x = block(x)
        return self.head(self.ln_f(x))


def _get(spec: Dict[str, Any], camel: str, snake: str):
    return spec[camel] if camel in spec else spec.get(snake)


def build(spec: Dict[str, Any]) -> nn.Module:
    """The zoo module a spec dict (as ModelExport.SpecJson writes it) describes, freshly initialised."""
    name = spec["name"]
    if name == "torchscript":
        raise ValueError("a torchscript model is loaded with torch.jit.load, not built")
    if name not in DEFAULTS:
        raise ValueError(f"unknown zoo model {name!r}; expected one of {sorted(DEFAULTS)}")
    p = dict(DEFAULTS[name])
    p.update({k: v for k, v in spec.items() if v is not None})
    dropout = float(p["dropout"])
    if name == "gpt-small":
        return GptSmall(int(p["layers"]), int(p["heads"]), int(p["dim"]), int(p["context"]), dropout)
    sample_shape = [int(d) for d in _get(spec, "sampleShape", "sample_shape")]
    classes = int(spec["classes"])
    if name == "mlp":
        return Mlp(math.prod(sample_shape), [int(h) for h in p["hidden"]], classes, dropout)
    in_channels, height, width = _image_dims(sample_shape)
    if name == "cnn":
        return Cnn(in_channels, height, width, [int(c) for c in p["channels"]], int(p["hidden"][0]), classes, dropout)
    return ResNetSmall(in_channels, [int(c) for c in p["channels"]], int(p["blocks"]), classes, dropout)


def load(state_dict_path: str, spec_path: str, map_location: str = "cpu") -> nn.Module:
    """Builds the model of the spec file and loads the exported state_dict into it (strictly), in eval mode."""
    with open(spec_path, encoding="utf-8") as f:
        spec = json.load(f)
    model = build(spec)
    model.load_state_dict(torch.load(state_dict_path, map_location=map_location))
    return model.eval()
