"""Errors a user fixes by changing the input (a setting, a file, a directory), not the code, and the
two other ways a run ends early: a stop signal and divergence.

Each carries a message that names the setting or file and the fix. Hydra prints exceptions of its
`CompactHydraException` family as the message alone, as it does its own composition errors (a
traceback would only bury the message), so every such error derives from `UserError`.
`HYDRA_FULL_ERROR=1` still shows the traceback.
"""

import signal

from hydra.errors import CompactHydraException


class UserError(CompactHydraException):
    """Bad input, reported with what to do about it."""


class Interrupted(CompactHydraException):
    """A stop signal (SIGTERM, SLURM's preemption warning) ended the run at a step boundary, after a
    checkpoint there."""

    def __init__(self, signum: int, step: int, checkpoint: str | None) -> None:
        self.signum, self.signal_name = signum, signal.Signals(signum).name
        where = f"a checkpoint at that step is in {checkpoint}" if checkpoint else "no checkpoint was written"
        super().__init__(
            f"Stopped by {self.signal_name} after step {step}; {where}. Run the same command again to "
            f"continue from there."
        )
        self.step, self.checkpoint = step, checkpoint


class Diverged(CompactHydraException, RuntimeError):
    """The training loss became non-finite: a result (summary status `diverged`), not a bug."""

    def __init__(self, step: int, epoch: int) -> None:
        super().__init__(f"non-finite training loss by step {step} (epoch {epoch})")
        self.step, self.epoch = step, epoch
