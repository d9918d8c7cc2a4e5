"""Stop signals, turned into a clean stop at the next step boundary.

SIGTERM is how SLURM (scancel, the time limit), torchrun, docker and Kubernetes ask a process to end;
SIGUSR2 is SLURM's warning before a preemption or the time limit (`--signal`), which submitit
handles by requeueing the job. Both are only noted when they arrive: the loop reads the note after
the step in flight, writes a checkpoint at that step (so the next attempt resumes exactly there),
and then hands the signal to whoever handled it before us (submitit requeues and exits, or logs and
lets the run go on), or, when nobody did, ends the run with `status: interrupted`.
"""

from __future__ import annotations

import os
import signal
import threading
from typing import Optional

import torch

# submitit reads its preemption signal from this variable (default USR2).
PREEMPTION_SIGNAL = getattr(signal, "SIG" + os.environ.get("SUBMITIT_PREEMPT_SIGNAL", "USR2"), signal.SIGUSR2)


class StopRequests:
    """While entered, SIGTERM and the preemption signal are noted in `received` instead of acted on."""

    def __init__(self) -> None:
        self.received: Optional[int] = None
        self._previous: dict = {}

    def __enter__(self) -> StopRequests:
        if threading.current_thread() is threading.main_thread():  # only there can Python handle signals
            for sig in {signal.SIGTERM, PREEMPTION_SIGNAL}:
                self._previous[sig] = signal.signal(sig, self._note)
        return self

    def __exit__(self, *exc) -> None:
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)
        self._previous = {}
        pending, self.received = self.received, None
        if pending is not None:  # arrived after the last step (final evaluation, summary): act on it now
            signal.raise_signal(pending)

    def _note(self, signum: int, frame) -> None:
        self.received = signum

    def as_tensor(self, device) -> torch.Tensor:
        """[SIGTERM noted, preemption signal noted]: summed over the processes, what any of them noted."""
        return torch.tensor(
            [self.received == signal.SIGTERM, self.received == PREEMPTION_SIGNAL], dtype=torch.float32, device=device
        )

    @staticmethod
    def agreed(noted: torch.Tensor) -> Optional[int]:
        """The one signal all processes act on, from the summed `as_tensor`s: the preemption signal
        when any process noted it (it requeues), else SIGTERM when any did."""
        term, preempt = noted.tolist()
        return PREEMPTION_SIGNAL if preempt > 0 else signal.SIGTERM if term > 0 else None

    def pass_on(self, signum: int) -> bool:
        """Call the handler that was there before ours, as if the signal arrived now (submitit's
        requeues and exits, or logs and returns); False when there was none (the default ends the process)."""
        previous = self._previous.get(signum)
        if callable(previous):
            previous(signum, None)
            return True
        return False
