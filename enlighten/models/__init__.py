"""Models. Every factory takes ``(num_classes, input_shape, width=1.0, ...)`` and returns a model with
timm's ``forward_features`` / ``forward_head(x, pre_logits=...)`` interface; our own models also expose
``stem``, ``stages`` and ``head`` (for Manifold Mixup and per-group diagnostics). Configs name the
factories by module path, e.g. ``enlighten.models.cnn.cnn``."""
