"""Diagnostics: what we measure about the ENP (gradient interference, activation revival, BENR, ATD)."""
