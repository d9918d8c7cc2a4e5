"""Model zoo. Every factory takes ``(num_classes, input_shape, width=1.0, ...)`` and returns a model
with timm's ``forward_features`` / ``forward_head(x, pre_logits=...)`` interface; our own models also
expose ``stem``, ``stages`` and ``head`` for Manifold Mixup and per-group parameter settings."""

from enlighten.models.cnn import cnn
from enlighten.models.mlp import mlp
from enlighten.models.preact_resnet import preactresnet18, preactresnet50
from enlighten.models.resnet import resnet18
from enlighten.models.vit import vit_small, vit_tiny

__all__ = ["cnn", "mlp", "preactresnet18", "preactresnet50", "resnet18", "vit_small", "vit_tiny"]
