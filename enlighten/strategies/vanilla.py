"""`vanilla`: no mixing at any time, every sample counts (the base `Strategy` as it is)."""

from enlighten.strategies.base import Strategy


class Vanilla(Strategy):
    pass
