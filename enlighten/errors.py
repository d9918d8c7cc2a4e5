"""Errors a user fixes by changing the input (a setting, a file, a directory), not the code.

Each carries a message that names the setting or file and the fix. Hydra prints exceptions of its
`CompactHydraException` family as the message alone, as it does its own composition errors (a
traceback would only bury the message), so every such error derives from `UserError`.
`HYDRA_FULL_ERROR=1` still shows the traceback.
"""

from hydra.errors import CompactHydraException


class UserError(CompactHydraException):
    """Bad input, reported with what to do about it."""


class Interrupted(CompactHydraException):
    """A stop signal (SIGTERM, SLURM's preemption warning) ended the run at a step boundary, after a
    checkpoint there."""

    def __init__(self, signal_name: str, step: int, checkpoint: str | None) -> None:
        where = f"a checkpoint at that step is in {checkpoint}" if checkpoint else "no checkpoint was written"
        super().__init__(f"Stopped by {signal_name} after step {step}; {where}. Run the same command again to "
                         f"continue from there.")
        self.signal_name, self.step, self.checkpoint = signal_name, step, checkpoint
