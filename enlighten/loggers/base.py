"""The logger interface. Our own files (metrics.jsonl, summary.json) are always written; a logger
mirrors them to an external service. `logger=none` gives this do-nothing logger."""

from __future__ import annotations

from pathlib import Path
from typing import Optional


class Logger:
    run_id: Optional[str] = None  # kept in checkpoints so a resumed run continues the same external run

    def __init__(self, run_dir: Path | str = ".", run_config: Optional[dict] = None) -> None:
        self.run_dir = Path(run_dir)

    def log_metrics(self, metrics: dict, step: int) -> None:
        """An epoch's row of metrics.jsonl."""

    def log_probe(self, row: dict) -> None:
        """A row of diagnostics.jsonl: a probe measurement, the ENP end, or the dataset scope."""

    def log_summary(self, summary: dict) -> None:
        pass

    def finish(self, exit_code: int = 0) -> None:
        pass


class NoLogger(Logger):
    """`logger=none`."""
