"""Loggers: mirror a run's metrics and summary to an external service."""

from enlighten.loggers.base import Logger, NoLogger

__all__ = ["Logger", "NoLogger"]
