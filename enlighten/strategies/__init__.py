"""Strategies: what data each training step sees, and which samples count in the loss (the contract:
`enlighten.strategies.base`)."""

from enlighten.strategies.base import Plan, Schedule, StepReport, Strategy, soft_cross_entropy

__all__ = ["Plan", "Schedule", "StepReport", "Strategy", "soft_cross_entropy"]
