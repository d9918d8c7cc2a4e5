"""Small Vision Transformers for low-resolution images, built on timm's VisionTransformer.

Patch size 4 (instead of ImageNet's 16) so a 32x32 image gives 64 tokens rather than 4.
timm's model already follows the forward_features / forward_head(pre_logits) convention
the rest of the code relies on.
"""

from __future__ import annotations

from timm.models.vision_transformer import VisionTransformer
from torch import nn

from enlighten.models.layers import as_input_shape, check_width


def _vit(
    num_classes: int,
    input_shape: tuple[int, ...] | list[int],
    width: float,
    patch_size: int,
    embed_dim: int,
    depth: int,
    num_heads: int,
) -> VisionTransformer:
    width = check_width(width)
    in_chans, height, width_px = as_input_shape(input_shape)
    if height != width_px:
        raise ValueError(f"ViT needs a square input, got input_shape {(in_chans, height, width_px)}.")
    if patch_size < 1 or height % patch_size != 0:
        raise ValueError(
            f"ViT img_size {height} (input_shape {(in_chans, height, width_px)}) is not divisible by "
            f"patch_size {patch_size}; choose a patch_size that divides it."
        )
    # Keep embed_dim a multiple of num_heads so every head keeps an integer dimension.
    dim = max(num_heads, int(round(embed_dim * width / num_heads)) * num_heads)
    return VisionTransformer(
        img_size=height,
        patch_size=patch_size,
        in_chans=in_chans,
        num_classes=num_classes,
        embed_dim=dim,
        depth=depth,
        num_heads=num_heads,
        mlp_ratio=4.0,
    )


def vit_tiny(
    num_classes: int,
    input_shape: tuple[int, ...] | list[int],
    width: float = 1.0,
    patch_size: int = 4,
) -> nn.Module:
    """ViT-Tiny: embed 192, depth 12, 3 heads (5,362,762 parameters at 32x32, patch 4, 10 classes)."""
    return _vit(num_classes, input_shape, width, patch_size, embed_dim=192, depth=12, num_heads=3)


def vit_small(
    num_classes: int,
    input_shape: tuple[int, ...] | list[int],
    width: float = 1.0,
    patch_size: int = 4,
) -> nn.Module:
    """ViT-Small: embed 384, depth 12, 6 heads (21,342,346 parameters at 32x32, patch 4, 10 classes)."""
    return _vit(num_classes, input_shape, width, patch_size, embed_dim=384, depth=12, num_heads=6)
