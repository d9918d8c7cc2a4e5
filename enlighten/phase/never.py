"""`never`: there is no ENP; every strategy behaves as it does after the ENP from step 0."""

from enlighten.phase.base import PhaseDetector


class Never(PhaseDetector):
    starts_in_enp = False
