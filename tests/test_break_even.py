"""The break-even report (docs/results/break_even.md): its verdict rules on planted outcomes, and the
committed report rebuilt from its committed data file."""

from __future__ import annotations

import importlib.util
import math

import numpy as np
import pytest

from enlighten.analysis.break_even import BATCHES, LRS, analyse, outcomes, render
from tests.conftest import REPO

spec = importlib.util.spec_from_file_location("break_even_script", REPO / "scripts" / "break_even.py")
script = importlib.util.module_from_spec(spec)
spec.loader.exec_module(script)


def planted_run(lr: float, batch: int, seed: int, peak: float, peak_step: int, enp_end: int, fall: bool = True) -> dict:
    """A run as the data file holds it: K's top eigenvalue rising linearly to `peak` at `peak_step`, then
    falling to half of it at step 1,000 (or staying at `peak`)."""
    rows = []
    for step in range(0, 1001, 10):
        rise = peak * (0.2 + 0.8 * min(step, peak_step) / peak_step)
        after = 1.0 - 0.5 * (step - peak_step) / (1000 - peak_step) if fall and step > peak_step else 1.0
        value = rise * after
        rows.append(
            {
                "step": step,
                "diag/grad_noise_top": value,
                "diag/grad_noise_trace": 5 * value,
                "diag/sharpness": 2 * value,
            }
        )
    if enp_end is not None:
        rows.append({"step": enp_end, "event": "enp_end", "diag/grad_noise_top": 0.0})
    return {
        "status": "completed",
        "config": {"optim": {"lr": lr}, "trainer": {"batch_size": batch}, "seed": seed},
        "enp_end_step": enp_end,
        "final_test_acc": 0.9,
        "_rows": {"diagnostics.jsonl": rows},
        "_dir": f"lr{lr}_b{batch}_s{seed}",
    }


def design(peak_of, step_of, enp_end=50, seeds=6, fall=True) -> list[dict]:
    """Every cell of the plan, each seed's peak `peak_of(lr, batch)` times a log-normal factor (sd 0.1)."""
    rng = np.random.default_rng(0)
    cells = sorted({(lr, 128) for lr in LRS} | {(0.03, b) for b in BATCHES})
    return [
        planted_run(lr, b, s, peak_of(lr, b) * math.exp(0.1 * rng.standard_normal()), step_of(lr, b), enp_end, fall)
        for lr, b in cells
        for s in range(seeds)
    ]


def test_a_run_s_outcomes_are_its_peak_its_step_and_whether_it_fell():
    run = planted_run(0.1, 128, 0, peak=10.0, peak_step=100, enp_end=60)
    out = outcomes(run)
    assert out["peak_K"] == pytest.approx(10.0) and out["peak_step"] == 100 and out["enp_end"] == 60
    assert out["peak_H"] == pytest.approx(20.0) and out["peak_trK"] == pytest.approx(50.0) and out["interior"]
    assert not outcomes(planted_run(0.1, 128, 0, 10.0, 100, 60, fall=False))["interior"]  # a plateau: the last row


def test_planted_break_even_is_reproduced_and_its_reverse_contradicted():
    """Peaks proportional to batch / lr: slopes -1 on the learning rate, +1 on the batch size."""
    result = analyse(design(lambda lr, b: b / lr, lambda lr, b: 80))
    assert result["tests"][("lr", "peak_K")].effect == pytest.approx(-1.0, abs=0.05)
    assert result["verdicts"] == {"P1": "reproduced", "P2": "reproduced", "P3": "holds", "overall": "reproduced"}
    reverse = analyse(design(lambda lr, b: lr / b, lambda lr, b: 80))
    assert reverse["verdicts"]["P1"] == reverse["verdicts"]["P2"] == "contradicted"
    assert reverse["verdicts"]["overall"] == "not reproduced"


def test_no_effect_is_inconclusive_and_a_late_peak_fails_the_timing():
    flat = analyse(design(lambda lr, b: 10.0, lambda lr, b: 500, enp_end=50))
    assert flat["verdicts"]["P1"] == "inconclusive"
    assert flat["verdicts"]["P3"] == "fails" and flat["near_share"] == 0.0 and flat["ratio_median"] == 10.0
    mixed = analyse(design(lambda lr, b: b / lr, lambda lr, b: 500 if lr == 0.01 or b == 512 else 80))
    assert mixed["verdicts"]["P3"] == "mixed" and mixed["near_share"] == 0.6  # 3 of the 5 cells near
    assert mixed["verdicts"]["overall"] == "reproduced"


def test_a_run_whose_enp_never_ended_counts_as_not_near_its_end():
    runs = design(lambda lr, b: b / lr, lambda lr, b: 80)
    for run in runs[: len(runs) // 2]:
        run["enp_end_step"] = None
    result = analyse(runs)
    assert result["near_runs"] == (len(runs) - len(runs) // 2, len(runs)) and result["verdicts"]["P3"] == "mixed"
    text = render(result, ["# head"], None, ["None."], runs)  # the report too: ENP ends of some runs only
    assert "(3 runs)" in text and "## Post-hoc observations" in text


def test_the_committed_report_is_rebuilt_from_the_committed_data(tmp_path):
    """`python scripts/break_even.py --report-only`: docs/results/break_even.md (and its figure, beside it)
    from its data file, byte for byte after the header."""
    results = REPO / "docs" / "results"
    data, committed = results / "break_even_data.jsonl.gz", results / "break_even.md"
    if not data.exists() and not committed.exists():
        pytest.skip("no break-even report committed yet")
    out = tmp_path / "break_even.md"
    assert script.main(["--report-only", "--data", str(data), "--out", str(out)]) == 0
    assert out.read_text().split(script.HEADER_END)[1] == committed.read_text().split(script.HEADER_END)[1]
    assert (tmp_path / "break_even.png").exists()
