"""A small decoder-only transformer for character-level language modelling (GPT-style, pre-norm).

Token and learned position embeddings (`stem`), `depth` of timm's ViT blocks run with causal
self-attention (`stages`), a final LayerNorm and a linear head to the vocabulary, per position:
[B, T] token ids -> logits [B, T, vocab]. The width multiplier scales the embedding size from 128
(rounded to a multiple of `heads`), as `width` scales every model of the zoo.
"""

from __future__ import annotations

import torch
from timm.models.vision_transformer import Block
from torch import nn

from enlighten.models.layers import as_input_shape, check_width


class CausalBlock(Block):
    """timm's pre-norm transformer block, attending only to earlier positions."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x, is_causal=True)


class TokenEmbedding(nn.Module):
    def __init__(self, vocab_size: int, block_size: int, dim: int) -> None:
        super().__init__()
        self.token = nn.Embedding(vocab_size, dim)
        self.position = nn.Parameter(torch.zeros(1, block_size, dim))
        nn.init.normal_(self.token.weight, std=0.02)
        nn.init.normal_(self.position, std=0.02)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        if ids.is_floating_point():
            raise TypeError("char_transformer takes token ids (an integer tensor); inputs cannot be mixed.")
        return self.token(ids) + self.position[:, : ids.shape[1]]


class CharTransformer(nn.Module):
    """stem -> stages -> norm -> head, with timm's method names (`forward_head(pre_logits=True)`
    gives the normalized features of every position)."""

    def __init__(self, vocab_size: int, block_size: int, dim: int, depth: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.num_classes, self.num_features, self.block_size = vocab_size, dim, block_size
        self.stem = TokenEmbedding(vocab_size, block_size, dim)
        self.stages = nn.Sequential(
            *(CausalBlock(dim, heads, mlp_ratio=4.0, proj_drop=dropout, attn_drop=dropout) for _ in range(depth))
        )
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, vocab_size)
        for block in self.stages:  # GPT-2's scaled init of the projections into the residual stream
            for proj in (block.attn.proj, block.mlp.fc2):
                nn.init.normal_(proj.weight, std=0.02 / (2 * depth) ** 0.5)

    def forward_features(self, ids: torch.Tensor) -> torch.Tensor:
        if ids.shape[1] > self.block_size:
            raise ValueError(
                f"sequence of {ids.shape[1]} tokens is longer than the model's block_size {self.block_size}."
            )
        return self.stages(self.stem(ids))

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.norm(x)
        return x if pre_logits else self.head(x)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(ids))


def char_transformer(
    num_classes: int,
    input_shape: tuple[int, ...] | list[int],
    width: float = 1.0,
    depth: int = 4,
    heads: int = 4,
    dropout: float = 0.0,
) -> nn.Module:
    """`num_classes` is the vocabulary size and `input_shape` is (block_size,), both from the dataset."""
    width = check_width(width)
    (block_size,) = as_input_shape(input_shape, ndim=1)
    if depth < 1 or heads < 1:
        raise ValueError(f"model.depth and model.heads must be >= 1, got depth={depth}, heads={heads}.")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"model.dropout must be in [0, 1), got {dropout}.")
    dim = max(heads, int(round(128 * width / heads)) * heads)
    return CharTransformer(num_classes, block_size, dim, depth, heads, dropout)
