"""Data: what the samples are. Every loader returns an object with the `InMemoryData` interface."""

from enlighten.data.base import DataError, InMemoryData, Normalize, balanced_subset

__all__ = ["DataError", "InMemoryData", "Normalize", "balanced_subset"]
