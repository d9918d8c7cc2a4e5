"""The logger interface. Our own files (metrics.jsonl, summary.json) are always written; a logger
mirrors them to an external service. `logger=none` gives this do-nothing logger."""

from __future__ import annotations

from pathlib import Path
from typing import Optional


class Logger:
    def __init__(self, run_dir: Path | str = ".", run_config: Optional[dict] = None) -> None:
        self.run_dir = Path(run_dir)

    def log_metrics(self, metrics: dict, step: int) -> None:
        pass

    def log_summary(self, summary: dict) -> None:
        pass

    def finish(self, exit_code: int = 0) -> None:
        pass

    def __enter__(self) -> "Logger":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        # Always finish, also on failure: in a multirun the next job must get a fresh run.
        self.finish(exit_code=0 if exc_type is None else 1)


class NoLogger(Logger):
    """`logger=none`."""
