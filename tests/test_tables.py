"""scripts/make_tables.py on result directories: cells, paired statistics, failed and missing runs."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO, read_run


def write_run(root, name, strategy, seed, acc, status="completed", enp_end_step=10):
    d = root / name
    (d / ".hydra").mkdir(parents=True)
    summary = {
        "status": status,
        "final_test_acc": acc,
        "enp_end_step": enp_end_step,
        "enp_end_epoch": 1,
        "enp_end_train_acc": 0.5,
        "enp_mean/diag/r_perp_clean": 0.4,
        "enp_mean/diag/zero_act": 0.3,
        "choices": {"strategy": strategy},
        "overrides": [f"strategy={strategy}", f"seed={seed}"],
        "config": {"seed": seed, "mix": {"alpha": 1.0}},
        "error": None if status == "completed" else "boom",
    }
    (d / "summary.json").write_text(json.dumps(summary))


def tables(*args):
    return subprocess.run(
        [sys.executable, str(REPO / "scripts" / "make_tables.py"), *map(str, args)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout


@pytest.mark.e2e
def test_paired_difference_ci_and_p_value(tmp_path):
    for seed, (base, pause) in enumerate([(0.90, 0.91), (0.80, 0.82), (0.70, 0.73)]):
        write_run(tmp_path, f"m{seed}", "mixup", seed, base)
        write_run(tmp_path, f"p{seed}", "mixup_pause", seed, pause)
    write_run(tmp_path, "failed", "mixup_pause", 3, None, status="failed")
    (tmp_path / "killed" / ".hydra").mkdir(parents=True)
    out = tables(tmp_path, "--baseline", "strategy=mixup")
    pause = next(line for line in out.splitlines() if line.startswith("| mixup_pause"))
    cells = [c.strip() for c in pause.strip("|").split("|")]
    assert cells[1] == "3" and cells[2] == "82.00 ± 9.00"
    # differences 1, 2, 3 points: mean 2, t = 2 / (1 / sqrt 3) = 3.46 with 2 dof, two-sided p = 0.074
    assert cells[-3] == "+2.00" and cells[-1] == "0.074"
    assert cells[-2] == "[-0.48, +4.48]"  # 2 ± t(0.975, 2) * 1 / sqrt 3 = 2 ± 2.48
    assert "failed:" in out and "boom" in out and "missing:" in out and "killed" in out
    latex = tables(tmp_path, "--format", "latex")
    assert "\\begin{tabular}" in latex and "$\\pm$" in latex
    csv_out = tables(tmp_path, "--format", "csv", "--out", tmp_path / "t.csv")
    assert (tmp_path / "t.csv").read_text() in csv_out
    pivot = tables(tmp_path, "--rows", "mix.alpha", "--cols", "strategy", "--wandb")
    assert pivot.splitlines()[0].split("|")[1:4] == [" mix.alpha ", " strategy=mixup ", " strategy=mixup_pause "]
    assert "| 1.0       | 80.00 ± 10.00" in pivot
    assert list((tmp_path / "wandb").glob("offline-run-*/run-*.wandb"))  # the table went to W&B (offline)


def test_enp_columns_say_when_the_enp_was_not_reached(tmp_path):
    for seed in range(2):
        write_run(tmp_path, f"never{seed}", "mixup", seed, 0.9, enp_end_step=None)
        write_run(tmp_path, f"some{seed}", "mixup_pause", seed, 0.9, enp_end_step=None if seed else 10)
        write_run(tmp_path, f"all{seed}", "alpha_boost", seed, 0.9)
    lines = {
        line.split("|")[1].strip(): [c.strip() for c in line.strip("|").split("|")]
        for line in tables(tmp_path, "--rows", "strategy").splitlines()[2:]
    }
    header = [c.strip() for c in tables(tmp_path, "--rows", "strategy").splitlines()[0].strip("|").split("|")]
    enp = [header.index(h) for h in ("ENP end epoch", "train acc at ENP end", "ENP r_perp_clean", "ENP zero_act")]
    assert [lines["mixup"][i] for i in enp] == ["ENP not reached"] * 4  # never a whole-run mean
    assert lines["mixup_pause"][enp[2]] == "0.400 ± 0.000 (1/2 reached)"
    assert lines["alpha_boost"][enp[2]] == "0.400 ± 0.000"


@pytest.mark.e2e
def test_runs_are_compared_at_a_step_of_the_shared_grid_paired_by_seed(tmp_path):
    """--at-step: a diag/ measure read from each run's diagnostics.jsonl row at that grid step."""
    zero_act = {"vanilla": [0.50, 0.52, 0.48], "mixup": [0.47, 0.50, 0.44]}  # differences -0.03, -0.02, -0.04
    for strategy, values in zero_act.items():
        for seed, value in enumerate(values):
            write_run(tmp_path, f"{strategy}{seed}", strategy, seed, 0.9)
            rows = [
                {"step": 0, "grid": True, "diag/zero_act": 0.5},
                {"step": 40, "event": "enp_end", "diag/zero_act": 0.1},  # an event row at the same step is not it
                {"step": 40, "grid": False, "in_enp": True, "diag/zero_act": 0.2},
                {"step": 50, "grid": True, "diag/zero_act": value},
            ]
            (tmp_path / f"{strategy}{seed}" / "diagnostics.jsonl").write_text(
                "".join(json.dumps(r) + "\n" for r in rows)
            )
    out = tables(
        tmp_path, "--rows", "strategy", "--baseline", "strategy=vanilla", "--metric", "diag/zero_act", "--at-step", "50"
    )
    header = [c.strip() for c in out.splitlines()[0].strip("|").split("|")]
    mixup = [c.strip() for c in next(x for x in out.splitlines() if x.startswith("| mixup")).strip("|").split("|")]
    assert mixup[header.index("step50/diag/zero_act")] == "0.470 ± 0.030"
    i = header.index("Δ vs strategy=vanilla (step50/diag/zero_act)")
    assert mixup[i] == "-0.030" and mixup[i + 2] == "0.035"  # mean -0.03, sd 0.01: t = -5.20 with 2 dof
    missing = subprocess.run(
        [
            sys.executable,
            str(REPO / "scripts" / "make_tables.py"),
            str(tmp_path),
            "--metric",
            "diag/zero_act",
            "--at-step",
            "7",
        ],
        capture_output=True,
        text=True,
    )
    assert missing.returncode != 0 and "at a step of the grid" in missing.stderr


def _runs_with_rows(root, values: dict[str, list[float]]) -> None:
    """Runs whose diagnostics.jsonl holds grid rows and an enp_end row where diag/sharpness is `value`."""
    for strategy, per_seed in values.items():
        for seed, value in enumerate(per_seed):
            write_run(root, f"{strategy}{seed}", strategy, seed, 0.9, enp_end_step=40 + 10 * seed)
            rows = [
                {"step": 0, "grid": True, "in_enp": True, "diag/sharpness": 1.0, "diag/sharpness/head": 0.5},
                {"step": 40 + 10 * seed, "event": "enp_end", "diag/sharpness": value},
                {"step": 100, "grid": True, "in_enp": False, "diag/sharpness": 9.0 + seed},
            ]
            (root / f"{strategy}{seed}" / "diagnostics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


@pytest.mark.e2e
def test_any_measure_is_tabulated_where_each_run_s_enp_ended(tmp_path):
    """--at-enp-end: a diag/ key read from each run's enp_end row (whatever its step), not a grid row."""
    _runs_with_rows(tmp_path, {"vanilla": [2.0, 4.0, 6.0], "mixup": [3.0, 5.0, 10.0]})
    out = tables(
        tmp_path, "--rows", "strategy", "--baseline", "strategy=vanilla", "--metric", "diag/sharpness", "--at-enp-end"
    )
    header = [c.strip() for c in out.splitlines()[0].strip("|").split("|")]
    mixup = [c.strip() for c in next(x for x in out.splitlines() if x.startswith("| mixup")).strip("|").split("|")]
    assert mixup[header.index("enp_end/diag/sharpness")] == "6.000 ± 3.606"
    assert mixup[header.index("Δ vs strategy=vanilla (enp_end/diag/sharpness)")] == "+2.000"  # 1, 1, 4
    both = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "make_tables.py"), str(tmp_path), "--at-enp-end", "--at-step", "0"],
        capture_output=True,
        text=True,
    )
    assert both.returncode != 0 and "give one" in both.stderr


def test_each_group_s_enp_end_is_drawn_at_its_median_in_its_colour(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from enlighten.analysis.figures import measures_against_step
    from enlighten.analysis.runs import load_runs

    _runs_with_rows(tmp_path, {"vanilla": [2.0, 4.0, 6.0]})  # ENP ends at 40, 50, 60
    fig, ax = plt.subplots()
    measures_against_step(lambda i: ax, {"vanilla": load_runs([tmp_path])}, ["diag/sharpness"])
    mean_line, enp_line = ax.lines
    assert list(enp_line.get_xdata()) == [50.0, 50.0] and enp_line.get_color() == mean_line.get_color()
    assert list(mean_line.get_xdata()) == [0.5, 100.0]  # probe rows only (not the enp_end events); step 0 at 0.5
    plt.close(fig)


@pytest.mark.e2e
def test_plot_measures_draws_a_panel_per_measure_with_the_enp_end(tmp_path):
    _runs_with_rows(tmp_path / "runs", {"vanilla": [2.0, 4.0], "mixup": [3.0, 5.0]})
    script = str(REPO / "scripts" / "plot_measures.py")
    out = subprocess.run(
        [sys.executable, script, str(tmp_path / "runs"), "--group", "strategy", "--out", str(tmp_path / "fig")],
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip().endswith("fig.png") and (tmp_path / "fig.png").stat().st_size > 10_000
    bad = subprocess.run(
        [sys.executable, script, str(tmp_path / "runs"), "--measures", "diag/nothing", "--out", str(tmp_path / "f")],
        capture_output=True,
        text=True,
    )
    assert bad.returncode != 0 and "diag/sharpness" in bad.stderr  # names the measures there are


def test_language_model_runs_are_compared_in_bits_per_character(tmp_path):
    """With final_test_bpc in the summaries the comparison is in bpc (lower is better), with loss and
    bpc columns; each --baseline adds its own comparison."""
    bpc = {"vanilla": [2.50, 2.60, 2.55], "high_loss_removal": [2.48, 2.57, 2.54], "random_removal": [2.51, 2.61, 2.55]}
    for strategy, values in bpc.items():
        for seed, b in enumerate(values):
            d = tmp_path / f"{strategy}{seed}"
            d.mkdir()
            summary = {
                "status": "completed",
                "final_test_acc": 0.45,
                "final_test_bpc": b,
                "final_test_loss": b * math.log(2),
                "choices": {"strategy": strategy},
                "overrides": [f"strategy={strategy}", f"seed={seed}"],
                "config": {"seed": seed},
            }
            (d / "summary.json").write_text(json.dumps(summary))
    out = tables(tmp_path, "--baseline", "strategy=vanilla", "--baseline", "strategy=random_removal")
    header = [c.strip() for c in out.splitlines()[0].strip("|").split("|")]
    assert header[3:5] == ["final test loss", "final test bpc"]
    assert header.count("p (paired t)") == 2 and "Δ vs strategy=random_removal (bpc)" in header
    hlr = [
        c.strip()
        for c in next(x for x in out.splitlines() if x.startswith("| high_loss_removal")).strip("|").split("|")
    ]
    assert hlr[4] == "2.530 ± 0.046"
    # vs vanilla: differences -0.02, -0.03, -0.01 (mean -0.02, sd 0.01): t = -3.46, p = 0.074
    i = header.index("Δ vs strategy=vanilla (bpc)")
    assert hlr[i : i + 3] == ["-0.020", "[-0.045, +0.005]", "0.074"]
    # vs random removal: -0.03, -0.04, -0.01
    j = header.index("Δ vs strategy=random_removal (bpc)")
    assert hlr[j] == "-0.027"
    accuracy = tables(tmp_path, "--baseline", "strategy=vanilla", "--metric", "final_test_acc")
    assert "Δ vs strategy=vanilla (pts)" in accuracy


def _plot_runs(tmp_path, alphas=(0.2, 1.0), fractions=(0.5, 1.0), detector=None, width=1.0) -> None:
    """Constructed runs; `detector`: what detector.jsonl holds (None: no file; "mixed": train_acc for
    mixup's runs and nothing for the others; "loss": train_loss only, as loss_stage writes)."""
    n = 0
    for strategy in ("mixup", "mixup_pause"):
        for alpha in alphas:
            for fraction in fractions:
                for seed in (0, 1):
                    d = tmp_path / f"{n}"
                    n += 1
                    d.mkdir(parents=True)
                    acc = 0.8 + 0.01 * seed + (0.02 if strategy == "mixup_pause" else 0.0) + 0.05 * fraction
                    summary = {
                        "status": "completed",
                        "final_test_acc": acc,
                        "enp_end_step": 3,
                        "enp_mean/diag/r_perp_clean": 0.3 + 0.1 * alpha,
                        "enp_mean/diag/zero_act": 0.5,
                        "choices": {"strategy": strategy},
                        "config": {
                            "seed": seed,
                            "mix": {"alpha": alpha},
                            "dataset": {"fraction": fraction},
                            "model": {} if width is None else {"width": width},
                        },
                    }
                    (d / "summary.json").write_text(json.dumps(summary))
                    (d / "metrics.jsonl").write_text(
                        "".join(
                            json.dumps(
                                {
                                    "epoch": e,
                                    "step": 10 * (e + 1),
                                    "train_acc": 0.5 + 0.1 * e,
                                    "train_loss": 2 - e,
                                    "test_acc": 0.6 + 0.1 * e,
                                }
                            )
                            + "\n"
                            for e in range(3)
                        )
                    )
                    key = {"mixed": "train_acc" if strategy == "mixup" else None}.get(detector, detector)
                    if key:
                        (d / "detector.jsonl").write_text(
                            "".join(
                                json.dumps({"step": s, "epoch": 0, key: 0.1 * s + 0.01 * seed}) + "\n"
                                for s in (1, 2, 3)
                            )
                        )


def _figure(tmp_path, **kwargs):
    import importlib.util

    from enlighten.analysis.runs import load_runs

    _plot_runs(tmp_path, **kwargs)
    spec = importlib.util.spec_from_file_location("plot_tradeoff", REPO / "scripts" / "plot_tradeoff.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    fig = module.figure(load_runs([tmp_path]))
    panels = [ax for ax in fig.axes if ax.get_label() != "<colorbar>"]
    assert all(ax.lines or ax.images or ax.collections for ax in panels), "an empty panel"
    # every learning-curve panel holds a band per strategy, not only the ENP-end lines
    assert all(len(ax.collections) == 2 for ax in panels[:3]), [len(ax.collections) for ax in panels[:3]]
    return fig, panels


@pytest.mark.e2e
def test_plot_tradeoff_writes_png_and_pdf(tmp_path):
    _plot_runs(tmp_path)
    out = subprocess.run(
        [
            sys.executable,
            str(REPO / "scripts" / "plot_tradeoff.py"),
            str(tmp_path),
            "--out",
            str(tmp_path / "fig" / "tradeoff"),
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "wrote" in out
    assert (tmp_path / "fig" / "tradeoff.png").stat().st_size > 20_000
    assert (tmp_path / "fig" / "tradeoff.pdf").read_bytes().startswith(b"%PDF")


def test_figure_panels_follow_what_the_sweep_varied(tmp_path):
    """Alpha and fraction both swept: learning curves, a heatmap, the mechanism against fraction
    (width has one value: no panel). Only seeds: curves by step (detector.jsonl) and the difference
    with its CI, no heatmap of one cell, no mechanism."""
    fig, panels = _figure(tmp_path / "grid")
    assert len(panels) == 3 + 1 + 2 and len(panels[3].images) == 1
    assert [ax.get_xlabel() for ax in panels[4:]] == ["dataset.fraction", "dataset.fraction"]
    fig, panels = _figure(tmp_path / "seeds", alphas=(1.0,), fractions=(1.0,), detector="train_acc")
    assert len(panels) == 3 + 1 and not panels[3].images
    assert panels[0].get_title().startswith("clean training accuracy (%), by step")
    assert [t.get_text() for t in panels[3].get_xticklabels()] == ["mixup_pause"]
    assert all(line.get_xdata()[0] >= 1 for line in panels[0].lines if len(line.get_xdata()) > 1)
    # A detector that measured no accuracy (loss_stage), or only some runs': per epoch where it did not.
    for detector in ("loss", "mixed"):
        fig, panels = _figure(tmp_path / detector, alphas=(1.0,), fractions=(1.0,), detector=detector)
        assert "else per epoch" in panels[0].get_title()
    # Runs without a model width (an MLP): no width panels, no crash.
    fig, panels = _figure(tmp_path / "nowidth", width=None)
    assert len(panels) == 3 + 1 + 2 and "width" not in panels[3].get_title()


def _run(root, name, strategy, seed, acc, alpha):
    d = root / name
    d.mkdir(parents=True)
    (d / "summary.json").write_text(
        json.dumps(
            {
                "status": "completed",
                "final_test_acc": acc,
                "choices": {"strategy": strategy},
                "overrides": [f"strategy={strategy}", f"mix.alpha={alpha}", f"seed={seed}"],
                "config": {
                    "seed": seed,
                    "mix": {"alpha": alpha},
                    "paths": {"output_dir": str(d)},
                    "strategy": {"_target_": strategy},
                },
            }
        )
    )


def _tables(*args):
    return subprocess.run(
        [sys.executable, str(REPO / "scripts" / "make_tables.py"), *map(str, args)], capture_output=True, text=True
    )


@pytest.mark.e2e
def test_pairs_agree_on_every_setting_but_the_seed_and_the_compared_key(tmp_path):
    """Mixup Pause is planted 1 point above Mixup at alpha 0.2 and 3 points at alpha 1, on baselines 40
    points apart. Rows asked by strategy alone would pool the two alphas as seeds of one cell: the table
    adds mix.alpha to the rows (and says so), and each alpha's runs pair with their own baseline (+1.00 and
    +3.00 over 3 pairs; pairing by seed alone would set a run at one alpha against the other's baseline)."""
    for seed in range(3):
        for alpha, base, gain in ((0.2, 0.5, 0.01), (1.0, 0.9, 0.03)):
            _run(tmp_path, f"m{alpha}_{seed}", "mixup", seed, base + 0.01 * seed, alpha)
            _run(tmp_path, f"p{alpha}_{seed}", "mixup_pause", seed, base + 0.01 * seed + gain, alpha)
    result = _tables(tmp_path, "--rows", "strategy", "--baseline", "strategy=mixup")
    assert "do not separate runs that differ in mix.alpha" in result.stderr
    pause = [
        [c.strip() for c in x.strip("|").split("|")]
        for x in result.stdout.splitlines()
        if x.startswith("| mixup_pause")
    ]
    assert [(p[1], p[2], p[-3]) for p in pause] == [("0.2", "3", "+1.00"), ("1.0", "3", "+3.00")]


@pytest.mark.e2e
def test_a_run_repeated_in_another_directory_is_refused_or_counted_once(tmp_path):
    for seed in range(2):
        for strategy, acc in (("mixup", 0.80), ("mixup_pause", 0.81 + 0.01 * seed)):
            _run(tmp_path / "first", f"{strategy}{seed}", strategy, seed, acc, 1.0)
            _run(tmp_path / "again", f"{strategy}{seed}", strategy, seed, acc, 1.0)  # the same sweep, re-run
    refused = _tables(tmp_path / "first", tmp_path / "again", "--baseline", "strategy=mixup")
    assert refused.returncode != 0 and "Traceback" not in refused.stderr
    assert "4 run(s) repeat" in refused.stderr and str(tmp_path / "first" / "mixup0") in refused.stderr
    assert str(tmp_path / "again" / "mixup0") in refused.stderr and "--keep-newest" in refused.stderr
    kept = _tables(tmp_path / "first", tmp_path / "again", "--baseline", "strategy=mixup", "--keep-newest")
    pause = [
        c.strip()
        for c in next(x for x in kept.stdout.splitlines() if x.startswith("| mixup_pause")).strip("|").split("|")
    ]
    assert kept.returncode == 0 and pause[1] == "2"  # two seeds, not four
    assert kept.stdout.count("- duplicate: ") == 4 and str(tmp_path / "first" / "mixup0") in kept.stdout


def test_a_baseline_or_row_key_that_matches_no_run_is_an_error_listing_the_valid_ones(tmp_path):
    for seed in range(2):
        _run(tmp_path, f"m{seed}", "mixup", seed, 0.8, 1.0)
        _run(tmp_path, f"p{seed}", "mixup_pause", seed, 0.8, 1.0)
    typo = _tables(tmp_path, "--rows", "strategy", "--baseline", "strategy=mixpu")
    assert typo.returncode != 0 and "strategy=mixpu matches no completed run" in typo.stderr
    assert "['mixup', 'mixup_pause']" in typo.stderr
    rows = _tables(tmp_path, "--rows", "strategy,mix.alfa")
    assert rows.returncode != 0 and "['mix.alfa'] match no completed run" in rows.stderr and "mix.alpha" in rows.stderr


@pytest.mark.e2e
def test_a_summary_holding_null_where_a_number_was_expected_gives_a_table_not_a_traceback(tmp_path):
    write_run(tmp_path, "null", "mixup", 0, None)
    write_run(tmp_path, "number", "mixup", 1, 0.9)
    for args in (
        [],
        ["--rows", "strategy", "--cols", "seed"],
        ["--baseline", "strategy=mixup"],
        ["--rows", "seed", "--baseline", "seed=0"],
    ):
        out = tables(tmp_path, *args)  # check=True: a traceback would fail here
        assert "90.00 ± 0.00" in out


@pytest.mark.e2e
def test_collect_writes_one_row_per_run_for_pandas(tmp_path):
    """The swept keys, the choices and the summary's numbers, as CSV and as Parquet, read back equal."""
    import csv

    import pyarrow.parquet as pq

    from enlighten.run import run
    from tests.conftest import compose_cfg

    tiny = [
        "dataset=synthetic",
        "dataset.num_train=128",
        "dataset.num_test=32",
        "dataset.image_size=8",
        "model=mlp",
        "model.hidden=16",
        "trainer.batch_size=32",
        "trainer.epochs=1",
        "logger=none",
        "trainer.device=cpu",
    ]
    summaries = {}
    for strategy, alpha, seed in (("mixup", 1, 0), ("mixup", 0.2, 1), ("vanilla", 1, 0)):
        out = tmp_path / "sweep" / f"{strategy}_{alpha}_{seed}"
        summaries[str(out)] = run(
            compose_cfg(tiny + [f"strategy={strategy}", f"mix.alpha={alpha}", f"seed={seed}"], out)
        )
    (tmp_path / "sweep" / "never_finished" / ".hydra").mkdir(parents=True)
    proc = subprocess.run(
        [
            sys.executable,
            str(REPO / "scripts" / "collect.py"),
            str(tmp_path / "sweep"),
            "--out",
            str(tmp_path / "runs.csv"),
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    assert "4 runs (3 completed, 1 missing)" in proc.stdout
    rows = {r["run_dir"]: r for r in csv.DictReader((tmp_path / "runs.csv").open())}
    for run_dir, summary in summaries.items():
        row = rows[run_dir]
        assert float(row["final_test_acc"]) == summary["final_test_acc"] and row["status"] == "completed"
        assert row["mix.alpha"] == str(summary["config"]["mix"]["alpha"]) and row["seed"] == str(
            summary["config"]["seed"]
        )
        assert row["runtime.device"] == "cpu" and float(row["wall_time_s"]) == summary["wall_time_s"]
    assert "trainer.epochs" not in next(iter(rows.values()))  # the same in every run: not a column
    assert rows[str(tmp_path / "sweep" / "never_finished")]["status"] == "missing"
    subprocess.run(
        [
            sys.executable,
            str(REPO / "scripts" / "collect.py"),
            str(tmp_path / "sweep"),
            "--out",
            str(tmp_path / "runs.parquet"),
        ],
        check=True,
        capture_output=True,
    )
    table = pq.read_table(tmp_path / "runs.parquet").to_pylist()
    assert [r["run_dir"] for r in table] == list(rows)
    assert {r["run_dir"]: r["final_test_acc"] for r in table if r["status"] == "completed"} == {
        d: s["final_test_acc"] for d, s in summaries.items()
    }
    # The learning curves, long format: every number of metrics.jsonl and diagnostics.jsonl, with the
    # run's choices and varying settings, read back with pandas as the docs show.
    import pandas as pd

    proc = subprocess.run(
        [
            sys.executable,
            str(REPO / "scripts" / "collect.py"),
            str(tmp_path / "sweep"),
            "--curves",
            "--out",
            str(tmp_path / "curves.csv"),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    points = pd.read_csv(tmp_path / "curves.csv")
    assert f"{len(points)} curve points of 4 runs" in proc.stdout
    for run_dir, summary in summaries.items():
        metrics, _ = read_run(Path(run_dir))
        acc = points[(points.run_dir == run_dir) & (points.file == "metrics") & (points.measure == "test_acc")]
        assert acc.step.tolist() == [m["step"] for m in metrics] and acc.value.tolist() == [
            m["test_acc"] for m in metrics
        ]
        assert set(acc["mix.alpha"]) == {summary["config"]["mix"]["alpha"]}
    assert set(points.file) == {"metrics", "diagnostics"}
    refused = subprocess.run(
        [
            sys.executable,
            str(REPO / "scripts" / "collect.py"),
            str(tmp_path / "sweep"),
            "--out",
            str(tmp_path / "runs.xlsx"),
        ],
        capture_output=True,
        text=True,
    )
    assert refused.returncode == 2 and "must end in .csv or .parquet" in refused.stderr


def test_results_written_before_the_validation_split_read_under_todays_names(tmp_path):
    """A summary and metrics rows from before 2026-12-07 name the test split's numbers val_*: read back,
    they are test_* (best_val_acc, the best test accuracy, becomes best_test_acc), and they pair with
    today's runs in a table."""
    from enlighten.analysis.runs import load_runs, read_rows

    old, new = tmp_path / "old", tmp_path / "new"
    for d, summary, row in (
        (old, {"final_val_acc": 0.5, "best_val_acc": 0.6, "final_val_loss": 1.0}, {"step": 3, "val_acc": 0.5}),
        (new, {"final_test_acc": 0.7, "final_val_acc": 0.65, "best_val_acc": 0.66}, {"step": 3, "test_acc": 0.7}),
    ):
        d.mkdir()
        strategy = "vanilla" if d == old else "mixup"
        (d / "summary.json").write_text(
            json.dumps(
                {
                    "status": "completed",
                    **summary,
                    "choices": {"strategy": strategy},
                    "overrides": [f"strategy={strategy}"],
                    "config": {"seed": 0},
                }
            )
        )
        (d / "metrics.jsonl").write_text(json.dumps(row) + "\n")
        (d / "detector.jsonl").write_text(json.dumps({"step": 2, "val_acc": 0.4}) + "\n")
    runs = {Path(r["_dir"]).name: r for r in load_runs([tmp_path])}
    assert (
        runs["old"]["final_test_acc"] == 0.5
        and runs["old"]["best_test_acc"] == 0.6
        and "final_val_acc" not in runs["old"]
    )
    assert runs["old"]["final_test_loss"] == 1.0 and read_rows(runs["old"], "metrics.jsonl") == [
        {"step": 3, "test_acc": 0.5}
    ]
    assert runs["new"]["final_test_acc"] == 0.7 and runs["new"]["final_val_acc"] == 0.65  # today's names stay
    assert read_rows(runs["old"], "detector.jsonl") == [{"step": 2, "test_acc": 0.4}]  # then: the test split's
    assert read_rows(runs["new"], "detector.jsonl") == [{"step": 2, "val_acc": 0.4}]  # today: the validation split's
    out = tables(tmp_path, "--baseline", "strategy=vanilla")
    mixup = [c.strip() for c in next(x for x in out.splitlines() if x.startswith("| mixup")).strip("|").split("|")]
    assert mixup[2] == "70.00 ± 0.00" and "+20.00" in mixup


@pytest.mark.e2e
def test_runs_of_different_experiments_are_never_one_cell(tmp_path):
    """An `experiment=demo` run and a plain run, both seed 0 and strategy mixup, differ in what the experiment
    sets (its name, batch size, learning rate, detector): the table splits them by the experiment's name and
    says so, instead of one cell of "2 seeds"; the figure refuses to draw them as one curve."""
    for name, (experiment, batch, lr, phase, acc) in {
        "demo": ("demo", 64, 0.05, "accuracy", 0.9),
        "plain": ("default", 128, 0.1, "never", 0.5),
    }.items():
        d = tmp_path / name
        d.mkdir()
        (d / "summary.json").write_text(
            json.dumps(
                {
                    "status": "completed",
                    "final_test_acc": acc,
                    "choices": {"strategy": "mixup", "phase": phase},
                    "overrides": ["strategy=mixup", "seed=0", *(["experiment=demo"] if name == "demo" else [])],
                    "config": {"seed": 0, "name": experiment, "trainer": {"batch_size": batch}, "optim": {"lr": lr}},
                }
            )
        )
    proc = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "make_tables.py"), str(tmp_path)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "note: the rows (strategy) do not separate runs that differ in name; those keys are added" in proc.stderr
    rows = [
        [c.strip() for c in line.strip("|").split("|")] for line in proc.stdout.splitlines()[2:] if line.startswith("|")
    ]
    assert [(r[0], r[1], r[2], r[3]) for r in rows] == [
        ("mixup", "default", "1", "50.00 ± 0.00"),
        ("mixup", "demo", "1", "90.00 ± 0.00"),
    ]
    figure = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "plot_tradeoff.py"), str(tmp_path), "--out", str(tmp_path / "fig")],
        capture_output=True,
        text=True,
    )
    assert figure.returncode != 0 and "runs that differ in name would be drawn as seeds of one curve" in figure.stderr


@pytest.mark.e2e
def test_collect_refuses_a_folder_without_our_runs_and_names_what_it_skipped(tmp_path):
    empty, mixed = tmp_path / "empty", tmp_path / "mixed"
    empty.mkdir()
    (mixed / "other_tool").mkdir(parents=True)
    (mixed / "other_tool" / "summary.json").write_text(json.dumps({"accuracy": 0.9}))  # not train.py's
    for d in (empty, mixed):
        proc = subprocess.run(
            [sys.executable, str(REPO / "scripts" / "collect.py"), str(d), "--out", str(tmp_path / "r.csv")],
            capture_output=True,
            text=True,
        )
        assert proc.returncode != 0 and "no runs of train.py under" in proc.stderr and "Traceback" not in proc.stderr
    assert "skipped 1 summary.json file(s) that train.py did not write" in proc.stderr
    write_run(mixed, "ours", "mixup", 0, 0.8)
    proc = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "collect.py"), str(mixed), "--out", str(tmp_path / "r.csv")],
        capture_output=True,
        text=True,
        check=True,
    )
    assert proc.stdout.startswith("1 runs (1 completed)") and "skipped 1 summary.json" in proc.stderr


def test_a_cell_counts_the_values_it_averages_and_no_completed_run_is_said_plainly(tmp_path):
    write_run(tmp_path, "a", "mixup", 0, 0.8)
    write_run(tmp_path, "b", "mixup", 1, None)  # completed, but its summary lacks the number
    row = [
        c.strip()
        for c in next(x for x in tables(tmp_path).splitlines() if x.startswith("| mixup")).strip("|").split("|")
    ]
    assert row[1] == "1 (of 2: 1 without final_test_acc)" and row[2] == "80.00 ± 0.00"
    failed = tmp_path / "failed"
    write_run(failed, "c", "mixup", 0, None, status="failed")
    proc = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "make_tables.py"), str(failed)], capture_output=True, text=True
    )
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert f"error: no completed run under {failed} (1 failed): nothing to tabulate. c: boom" in proc.stderr


def test_a_job_another_copy_of_the_sweep_is_training_is_running_not_missing(tmp_path):
    """Two copies of a sweep share its jobs: the one that ends first must not call the other's job missing."""
    from enlighten.analysis.runs import load_runs
    from enlighten.results import RunDirLock

    for name in ("busy", "abandoned"):
        (tmp_path / name / ".hydra").mkdir(parents=True)
    lock = RunDirLock(tmp_path / "busy")
    lock.acquire()  # as the other copy's process holds it
    try:
        statuses = {Path(r["_dir"]).name: r["status"] for r in load_runs([tmp_path])}
    finally:
        lock.release()
    assert statuses == {"busy": "running", "abandoned": "missing"}
    assert {Path(r["_dir"]).name: r["status"] for r in load_runs([tmp_path])}["busy"] == "missing"  # let go
