"""The claims analysis (enlighten/analysis/claims.py through scripts/claims.py): known answers on
constructed sweeps (a planted effect is found, none is found where none was planted, duplicates are
refused), the statistics against scipy, the arm configs, and `make claims-smoke` on real MNIST."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from scipy import stats

from enlighten.analysis.claims import EXPERIMENTS
from enlighten.analysis.runs import SET_BY_GROUP, identity, pairs
from enlighten.analysis.stats import holm, minimum_detectable_effect, one_sample, paired
from enlighten.config import flatten, under, validate
from tests.conftest import REPO, SHARED_DATA, compose_cfg, needs_shared

sys.path.insert(0, str(REPO / "scripts"))
import claims as claims_script  # noqa: E402

SEEDS = range(5)
FRACTIONS = (0.01, 0.02, 0.05, 0.1)
WIDTHS = (0.25, 0.5, 1.0)
ARMS = {"vanilla": ("NoMixing", 1.0), "mixup_a0.2": ("EveryStep", 0.2), "mixup_a1": ("EveryStep", 1.0),
        "pause_a1": ("MixupPause", 1.0), "boost_a0.2_to_1": ("AlphaBoost", 0.2)}


def write_run(root: Path, name: str, seed: int, fraction: float, width: float, arm: str, phase: str = "accuracy",
              phase_cfg: dict | None = None, **summary) -> Path:
    """One run directory as train.py leaves it: summary.json (config, choices) and its .jsonl files."""
    strategy, alpha = ARMS[arm]
    d = root / name.split("/")[-1] / f"{arm}_{fraction}_{width}_{phase}_{json.dumps(phase_cfg)}_{seed}"
    (d / ".hydra").mkdir(parents=True)
    rows = summary.pop("diag_rows", [])
    curve = summary.pop("curve", [])
    config = {"name": name, "seed": seed, "dataset": {"fraction": fraction}, "model": {"width": width},
              "mix": {"alpha": alpha, "pairing": "permutation"}, "strategy": {"mixer": {"alpha": alpha}, "schedule": {"_target_": strategy}},
              "diagnostics": {"alpha": alpha}, "phase": phase_cfg or {"threshold": 0.5}, "trainer": {"max_steps": 300}}
    if arm == "boost_a0.2_to_1":
        config["strategy"]["schedule"]["boost_alpha"] = 1.0
    (d / "summary.json").write_text(json.dumps({"status": "completed", "config": config, "wall_time_s": 1.0,
                                                "choices": {"arm": arm, "phase": phase, "strategy": strategy,
                                                            "experiment": name},
                                                **summary}))
    (d / "diagnostics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (d / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in curve))
    return d


def build_sweeps(root: Path, planted: bool) -> None:
    """Claims sweeps with every effect the paper claims planted (or none), plus seed noise."""
    rng = np.random.default_rng(0)
    for seed in SEEDS:
        for f in FRACTIONS:
            for w in WIDTHS:
                n = int(60000 * f)
                r = {p: (0.5 * (n / 600) ** -0.5 * w ** -0.3 if planted else 0.2) * math.exp(rng.normal(0, 0.05))
                     for p in ("permutation", "flip")}
                write_run(root, "claims/interference", seed, f, w, "mixup_a1", **{
                    "init/data/num_samples": n, **{f"init/data/{p}/r_perp_clean": v for p, v in r.items()}})
                base = 0.9 + rng.normal(0, 0.01)  # the cell and seed's accuracy, shared by its arms
                gain = (2.0 - 0.5 * math.log(f / 0.01) - 0.5 * math.log(w / 0.25)) if planted else 0.0
                zero = {"vanilla": 0.5, "mixup_a0.2": 0.45, "mixup_a1": 0.40} if planted else {}
                for arm in ARMS:
                    z = zero.get(arm, 0.5)
                    rows = [{"step": s, "grid": True, "diag/zero_act": z + rng.normal(0, 0.005)} for s in (0, 1, 2, 5, 10, 20, 50)]
                    acc = base + (gain / 100 if arm == "pause_a1" else 0) + rng.normal(0, 0.002)
                    write_run(root, "claims/training", seed, f, w, arm, final_test_acc=acc, enp_end_step=30,
                              enp_end_train_acc=0.52, diag_rows=rows,
                              curve=[{"step": s, "train_acc": 0.1 + s / 400} for s in (9, 18, 27)])
                    if (f, w) == (0.01, 0.5) and arm == "pause_a1":  # claim (d)'s cell
                        detector_acc = acc if planted else acc - 0.03
                        write_run(root, "claims/detectors", seed, f, w, arm, phase="chance_adjusted",
                                  phase_cfg={"tau": 0.5}, final_test_acc=detector_acc, enp_end_step=35)
                        for frac in (0.025, 0.1, 0.4):
                            grid_acc = acc - (0 if frac == 0.1 else 0.01) + rng.normal(0, 0.0005)
                            write_run(root, "claims/pause_grid", seed, f, w, arm, phase="fraction",
                                      phase_cfg={"fraction": frac}, final_test_acc=grid_acc, enp_end_step=int(frac * 300))


def report(tmp_path: Path, planted: bool, *flags: str) -> str:
    build_sweeps(tmp_path / "sweeps", planted)
    out = tmp_path / "report" / "claims.md"
    assert claims_script.main(["--report-only", "--dir", str(tmp_path / "sweeps"), "--out", str(out), *flags]) == 0
    return out.read_text()


def verdicts(text: str) -> dict[str, str]:
    rows = [line.split("|") for line in text.split("## Verdicts")[1].split("\n\n")[1].splitlines()[2:]]
    return {cells[1].strip(): cells[2].strip() for cells in rows if cells[1].strip()}


def test_planted_effects_are_found(tmp_path):
    text = report(tmp_path, planted=True)
    assert verdicts(text) == {"a": "supported", "b": "supported", "c": "supported", "d": "supported"}
    # the planted slope -1/2 on log N and -0.3 on log width come back within their CIs
    slope_n = next(line for line in text.splitlines() if "permutation pairing: slope of log r on log N" in line)
    effect = float(slope_n.split("|")[4].split("[")[0])
    assert abs(effect + 0.5) < 0.02
    assert "The ENP ended in all 320 runs of the training, pause-grid and detectors sweeps" in text
    for stem in ("interference", "activations", "pause_gain", "pause_grid", "learning_curves"):
        assert (tmp_path / "report" / f"claims_{stem}.png").stat().st_size > 10_000


def test_no_effect_is_found_where_none_was_planted(tmp_path):
    text = report(tmp_path, False, "--no-figures")
    found = verdicts(text)
    assert found["a"] == found["b"] == found["c"] == "inconclusive at this scale"
    # the 50% detector's runs (claims/training's Mixup Pause) match the best grid point; the chance-adjusted
    # detector's were planted 3 points worse
    assert found["d"] == "mixed"
    assert "chance-adjusted detector's pause minus the best fixed pause (chosen on the other seeds; p one-sided, " \
           "non-inferiority by 0.5) (points): contradicted" in text


def test_duplicate_runs_are_refused_naming_both(tmp_path):
    build_sweeps(tmp_path, planted=True)
    original = next((tmp_path / "training").iterdir())
    copy = tmp_path / "training" / "copy_of_a_run"
    copy.mkdir()
    (copy / "summary.json").write_text((original / "summary.json").read_text())
    with pytest.raises(SystemExit) as error:
        claims_script.main(["--report-only", "--dir", str(tmp_path), "--out", str(tmp_path / "r.md"), "--no-figures"])
    assert "repeat another run's config and seed" in str(error.value)
    assert str(original) in str(error.value) and str(copy) in str(error.value)


def test_what_the_runs_cannot_support_is_listed_as_not_tested(tmp_path):
    """One width: the slopes on width cannot be fitted, and the claims that need them say so."""
    build_sweeps(tmp_path / "sweeps", planted=True)
    for sweep in ("interference", "training"):
        for d in (tmp_path / "sweeps" / sweep).iterdir():
            if "_0.25_" in d.name or "_1.0_" in d.name:
                shutil.rmtree(d)
    out = tmp_path / "claims.md"
    claims_script.main(["--report-only", "--dir", str(tmp_path / "sweeps"), "--out", str(out), "--no-figures"])
    found = verdicts(out.read_text())
    assert found["a"] == "supported (2 of 4 tests not run)" and found["c"] == "supported (1 of 3 tests not run)"
    assert "permutation pairing: slope of log r on log width (log-log slope): not tested" in out.read_text()


def test_pairs_refuse_an_ambiguous_baseline():
    runs = [{"_dir": f"d{i}", "config": {"seed": 0, "phase": {"fraction": f}}, "choices": {"phase": "fraction"}}
            for i, f in enumerate((0.1, 0.2))]
    with pytest.raises(ValueError, match="ambiguous pairing on phase: d0 and d1"):
        pairs(runs[:1], runs, ("phase",))


def test_statistics_match_scipy_and_holm_by_hand():
    a, b = [0.91, 0.82, 0.73, 0.95], [0.90, 0.80, 0.70, 0.93]
    t = paired(a, b)
    assert t.p == pytest.approx(stats.ttest_rel(a, b).pvalue) and t.effect == pytest.approx(0.02)
    ci = stats.ttest_rel(a, b).confidence_interval()
    assert (t.ci_low, t.ci_high) == pytest.approx((ci.low, ci.high))
    assert math.isnan(one_sample([1.0, 1.0, 1.0]).p)  # no spread: no test
    # Holm: sorted p 0.01, 0.03, 0.04 times 3, 2, 1, made monotone
    assert holm([0.04, 0.01, 0.03, math.nan]) == pytest.approx([0.06, 0.03, 0.06, math.nan], nan_ok=True)
    # the minimum detectable effect has the power it claims: simulate a t-test at that effect
    rng, n = np.random.default_rng(0), 5
    mde = minimum_detectable_effect(1.0, n)
    hits = stats.ttest_1samp(rng.normal(mde, 1.0, (4000, n)), 0, axis=1).pvalue < 0.05
    assert 0.74 < hits.mean() < 0.86


def test_every_arm_sets_only_what_the_pairing_ignores():
    """Comparing arms pairs runs on everything but the keys SET_BY_GROUP['arm'] names: an arm setting
    anything else would pair runs that differ in it."""
    for path in sorted((REPO / "conf" / "arm").glob("*.yaml")):
        cfg = yaml.safe_load(path.read_text())
        assert [d for d in cfg.pop("defaults") if not str(d).startswith("{'override /strategy'")] == [], path
        assert all(under(k, SET_BY_GROUP["arm"]) for k in flatten(cfg)), path
    run = {"config": {"seed": 0, "mix": {"alpha": 1.0, "pairing": "flip"}, "strategy": {"alpha": 1.0}},
           "choices": {"arm": "mixup_a1", "strategy": "mixup"}}
    other = {"config": {"seed": 0, "mix": {"alpha": 0.2, "pairing": "flip"}, "strategy": {"alpha": 0.2}},
             "choices": {"arm": "vanilla", "strategy": "vanilla"}}
    assert identity(run, ("arm",)) == identity(other, ("arm",)) and identity(run) != identity(other)


@pytest.mark.slow
@needs_shared("MNIST")
def test_claims_smoke_runs_the_whole_pipeline_on_mnist(tmp_path):
    """`make claims-smoke`: every sweep tiny on real MNIST, then the report and its figures (about 2
    minutes on 2 cores: `slow`, so the default suite keeps its 10-minute budget)."""
    out = tmp_path / "claims.md"
    proc = subprocess.run([sys.executable, str(REPO / "scripts" / "claims.py"), "--profile", "smoke", "--dir",
                           str(tmp_path / "sweeps"), "--out", str(out), f"paths.data_dir={SHARED_DATA}"],
                          capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    text = out.read_text()
    found = verdicts(text)
    assert set(found) == set("abcd") and not any(v.startswith("not tested") for v in found.values()), found
    assert "## Where the detectors fired" in text
    assert len(list(tmp_path.glob("claims_*.png"))) == 5


@pytest.mark.parametrize("arm", sorted(p.stem for p in (REPO / "conf" / "arm").glob("*.yaml")))
def test_every_arm_composes_to_its_strategy_and_alphas(arm, tmp_path):
    cfg = compose_cfg([f"arm={arm}"], tmp_path)
    validate(cfg)
    kind, _, alphas = arm.partition("_a")
    target = {"vanilla": "NoMixing", "mixup": "EveryStep", "pause": "MixupPause", "boost": "AlphaBoost",
              "dosematched": "DoseMatchedPause", "early": "MixupEarly"}[kind]
    assert cfg.strategy.schedule._target_.endswith(target)
    if kind != "vanilla":
        base, _, boosted = alphas.partition("_to_")
        assert cfg.mix.alpha == float(base) and cfg.strategy.mixer.alpha == float(base)
        assert kind != "boost" or cfg.strategy.schedule.boost_alpha == float(boosted)


def test_claims_experiments_take_another_dataset_and_the_paper_scale_composes(tmp_path):
    for name in EXPERIMENTS:
        cfg = compose_cfg([f"experiment={name}", "dataset=fashion_mnist", "paths.data_dir=/elsewhere"], tmp_path)
        validate(cfg)
        assert cfg.dataset.name == "fashion_mnist" and cfg.dataset.root == "/elsewhere" and cfg.name == name
    for name, command in claims_script.sweep_commands("paper", tmp_path, []):
        overrides = [o.split(",")[0] for o in command[command.index("-m") + 1:] if not o.startswith("hydra.")]
        cfg = compose_cfg(overrides, tmp_path)  # the first point of each swept list
        validate(cfg)
        assert cfg.model._target_.endswith("resnet18") and cfg.dataset.name == "cifar10" and cfg.name == name
    for name, command in claims_script.sweep_commands("cifar", tmp_path, ["dataset.root=/cifar"]):
        cfg = compose_cfg([o for o in command[command.index("-m") + 1:] if not o.startswith("hydra.")], tmp_path)
        validate(cfg)
        assert cfg.dataset._target_.endswith("image_folder") and cfg.dataset.root == "/cifar"
