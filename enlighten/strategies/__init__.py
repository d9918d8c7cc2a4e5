"""Strategies: what data each training step sees, and which samples count in the loss."""

from enlighten.strategies.base import Strategy, soft_cross_entropy
from enlighten.strategies.mixup import MixupStrategy

__all__ = ["MixupStrategy", "Strategy", "soft_cross_entropy"]
