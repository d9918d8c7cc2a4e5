"""Phase detectors: when the Enlightenment Period ends."""

from enlighten.phase.base import EnpEnd, PhaseDetector, Progress
from enlighten.phase.never import Never

__all__ = ["EnpEnd", "Never", "PhaseDetector", "Progress"]
