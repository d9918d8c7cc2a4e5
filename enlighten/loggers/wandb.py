"""Weights & Biases, offline by default: no account, no network, files inside the run directory.

Offline runs write only W&B's binary `.wandb` log (sync it later with `wandb sync`); tables and
figures are made from our own metrics.jsonl and summary.json, never from W&B.

What a run holds there: the epoch rows of metrics.jsonl under their own keys (`test_acc`, `in_enp`,
`diag/zero_act`, ... on W&B's step axis, the optimizer step); the rows of diagnostics.jsonl on their
own axis `probe/step`, as `probe/<key>` (a probe measurement), `enp_end/<key>` (measured where the
ENP ended) and `dataset/<point>/<key>` (the dataset scope), and the rows of detector.jsonl as
`detector/<key>` (what the phase detector measured), so that a single measurement and an
epoch's mean never share a chart; a summary of the final numbers only (W&B would otherwise keep the
last value of every key logged).
"""

from __future__ import annotations

import configparser
import os
import socket
import threading
import time
import urllib.parse
from collections.abc import Sequence
from pathlib import Path
from typing import Optional

from enlighten.console import log
from enlighten.loggers.base import Logger
from enlighten.results import RUN_RECORD_KEYS

# Online W&B without a network: wandb.init waits (and retries) for about 105 s before it gives up,
# once per job of a sweep. We decide within 15 s instead (a 5 s check, then 10 s for wandb.init), once
# per process.
CHECK_S, INIT_S = 5, 10
PROBE_PREFIXES = ("probe", "enp_end", "dataset", "detector")
# In the W&B config already (config, choices), or bookkeeping that is no result.
_offline_because: Optional[str] = None  # why online W&B failed earlier in this process


def _server_url(wandb) -> Optional[str]:
    """The server W&B would use: WANDB_BASE_URL, else the one `wandb login --host` saved, else its
    default. None behind a proxy, where a direct connection proves nothing."""
    if any(os.environ.get(v) for v in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY")):
        return None
    if os.environ.get("WANDB_BASE_URL"):
        return os.environ["WANDB_BASE_URL"]
    saved = configparser.ConfigParser()
    saved.read(Path(os.environ.get("WANDB_CONFIG_DIR", Path.home() / ".config" / "wandb")) / "settings")
    return saved.get("default", "base_url", fallback=None) or wandb.Settings().base_url


def _unreachable(url: str, timeout: float = CHECK_S) -> Optional[str]:
    """Why W&B's server at `url` cannot be reached (name lookup or TCP connect), or None. Checked in a
    thread, so a name lookup that hangs without a network is bounded by `timeout` too."""
    parts = urllib.parse.urlsplit(url)
    address = (parts.hostname or "", parts.port or (443 if parts.scheme == "https" else 80))
    outcome: list = []

    def connect() -> None:
        try:
            socket.create_connection(address, timeout=timeout).close()
            outcome.append(None)
        except OSError as e:
            outcome.append(f"{address[0]}:{address[1]} unreachable: {e}")

    thread = threading.Thread(target=connect, daemon=True)
    thread.start()
    thread.join(timeout)
    return outcome[0] if outcome else f"{address[0]}:{address[1]} did not answer within {timeout:.0f} s"


class WandbLogger(Logger):
    def __init__(
        self,
        run_dir: Path | str,
        run_config: Optional[dict] = None,
        project: str = "enlighten",
        entity: Optional[str] = None,
        group: Optional[str] = None,
        job_type: Optional[str] = None,
        name: Optional[str] = None,
        tags: Sequence[str] = (),
        mode: str = "offline",
        resume_id: Optional[str] = None,
    ) -> None:
        super().__init__(run_dir, run_config)
        import wandb

        if mode not in ("offline", "online", "disabled"):
            raise ValueError(f"logger.mode must be offline, online or disabled, got {mode!r}.")
        self._wandb = wandb
        kwargs = dict(
            project=project,
            entity=entity,
            group=group,
            job_type=job_type,
            name=name,
            tags=[str(t) for t in tags if t],
            config=run_config,
            dir=str(self.run_dir),
            # A resumed run (from a checkpoint) continues the W&B run it started.
            id=resume_id,
            resume="allow" if resume_id else None,
            # A multirun calls init once per job in one process: never hand back the previous run.
            reinit="finish_previous",
        )
        global _offline_because
        if mode == "online" and _offline_because is None and (url := _server_url(wandb)):
            _offline_because = _unreachable(url)
        try:
            if mode == "online" and _offline_because is not None:
                raise ConnectionError(_offline_because)
            self.run = self._init(mode, kwargs)
        except Exception as e:  # noqa: BLE001 - no network, no key, service down: never lose the run for it
            if mode != "online":
                raise
            _offline_because = _offline_because or f"{type(e).__name__}: {e}"
            log.warning(
                f"W&B could not start online ({_offline_because}); logging offline to {self.run_dir / 'wandb'} "
                f"instead (so will every later run of this process). Upload it later with `wandb sync`."
            )
            self.run = self._init("offline", kwargs)
        self.run_id = self.run.id
        self.run.define_metric("probe/step", summary="none")
        for prefix in PROBE_PREFIXES:
            self.run.define_metric(f"{prefix}/*", step_metric="probe/step", summary="none")
        self.run.define_metric("*", summary="none")  # the summary: what log_summary writes, nothing else
        self._defined: set = set()

    def _init(self, mode: str, kwargs: dict, waits: Sequence[float] = (1, 2, 4, 8)):
        """wandb.init; when resuming right after the previous process was killed, W&B's service of that
        process may still hold the run id for a few seconds ("run ID ... is in use"): wait for it, and
        if it stays taken continue in a new W&B run rather than lose the training run for its logger."""
        for wait in (*waits, None):
            try:
                return self._wandb.init(mode=mode, settings=self._settings(), **kwargs)
            except Exception as e:  # noqa: BLE001 - W&B raises its own error types
                if not kwargs.get("id") or "in use" not in str(e):
                    raise
                if wait is None:
                    log.warning(f"W&B run {kwargs['id']} stays in use ({e}); continuing in a new W&B run.")
                    return self._wandb.init(
                        mode=mode, settings=self._settings(), **{**kwargs, "id": None, "resume": None}
                    )
                time.sleep(wait)

    def _settings(self):
        # Fresh for every init: wandb.init writes the run id into the Settings object it is given, so a
        # shared one would carry the id that is in use into the fallback run.
        # W&B's own wait for its server is 90 s; ours is INIT_S unless WANDB_INIT_TIMEOUT says otherwise.
        timeout = {} if "WANDB_INIT_TIMEOUT" in os.environ else {"init_timeout": INIT_S}
        return self._wandb.Settings(silent=True, console="off", x_disable_stats=True, disable_git=True, **timeout)

    def _log(self, values: dict, step: int, step_metric: Optional[str] = None) -> None:
        # W&B's globs do not reach a key with a dot (`diag/cos@0.1`: a dot means nesting there): such a
        # key is defined on its own, escaped, the first time it comes.
        for key in values.keys() - self._defined:
            if "." in key:
                self.run.define_metric(
                    key.replace(".", "\\."), summary="none", **({"step_metric": step_metric} if step_metric else {})
                )
            self._defined.add(key)
        self.run.log(values, step=step)

    def log_metrics(self, metrics: dict, step: int) -> None:
        self._log({k: v for k, v in metrics.items() if v is not None}, step=step)

    def log_probe(self, row: dict) -> None:
        event = row.get("event")
        prefix = "probe" if event is None else f"dataset/{row['point']}" if event == "dataset" else event
        values = {
            f"{prefix}/{k}": int(v) if isinstance(v, bool) else v
            for k, v in row.items()
            if k not in ("step", "epoch", "event", "point", "grid") and v is not None and not isinstance(v, str)
        }
        self._log({"probe/step": row["step"], **values}, step=row["step"], step_metric="probe/step")

    def log_summary(self, summary: dict) -> None:
        for k, v in summary.items():
            if k not in RUN_RECORD_KEYS and v is not None:
                self.run.summary[k] = v

    def finish(self, exit_code: int = 0) -> None:
        if self.run is not None:
            self.run.finish(exit_code=exit_code)
            self.run = None
