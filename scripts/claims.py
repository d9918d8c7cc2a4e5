"""The paper's four claims, under the analysis plan of docs/claims.md: stage 1 (the regime map), then
stage 2 (the claims sweeps) and the report, rebuilt from a committed data file.

    python scripts/claims.py --stage regime [--jobs 2]   # stage 1: docs/results/claims_regime.md and the design
    python scripts/claims.py [--jobs 2]                  # stage 2: the sweeps, the data file, the report
    python scripts/claims.py --report-only               # the report from docs/results/claims_data.jsonl.gz
    python scripts/claims.py --profile smoke             # both stages tiny (make claims-smoke)
    python scripts/claims.py --profile paper --dry-run   # the design at the paper's scale (GPU;
                                                         # add hydra/launcher=slurm)

Options: [--profile cpu|smoke|cifar|paper] [--dir DIR] [--out REPORT] [--data FILE] [--jobs K]
[--threads T] [--pilot DIR] [--no-figures] [OVERRIDE...]. OVERRIDEs go to every sweep (e.g.
`paths.data_dir=/data`). Each sweep writes into DIR/<sweep>; running again skips the completed jobs, so
an interrupted stage resumes. `--jobs K` runs K copies of each sweep side by side, which share its jobs
(a job's directory lock), each on `--threads` CPU threads (1 by default: results depend on the thread
count). Stage 2 reads stage 1's design (<REPORT stem>_design.json beside the report).
"""

from __future__ import annotations

import argparse
import datetime
import importlib.metadata
import json
import os
import platform
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from enlighten.analysis.claims import ROWS, analyse, render, wants_rows  # noqa: E402
from enlighten.analysis.claims_plan import (
    DOSE,
    EARLY,
    LEVEL,
    MIXUP,
    PAUSE,
    REGIME_ARMS,
    Design,
    Rules,  # noqa: E402
    choose_design,
    regime_map,
    render_regime,
)
from enlighten.analysis.runs import (
    DuplicateRuns,
    drop_duplicates,
    export_runs,
    load_runs,
    load_runs_file,  # noqa: E402
    lookup,
    pairs,
    plan_deviations,
)
from enlighten.analysis.stats import minimum_detectable_effect, seeds_needed  # noqa: E402
from enlighten.results import atomic_write_text  # noqa: E402


class Profile:
    """A scale of the same design: its grids, what every sweep gets, and stage 1's rules."""

    def __init__(self, fractions, widths, regime_seeds, rules=None, common=(), per_sweep=None, note=""):
        self.fractions, self.widths, self.regime_seeds = fractions, widths, regime_seeds
        self.rules, self.common, self.per_sweep, self.note = rules or Rules(), list(common), per_sweep or {}, note


PROFILES = {
    "cpu": Profile((0.0125, 0.0375, 0.125), (0.25, 0.5, 1.0), 3),
    # The pipeline tiny (under 5 minutes): 150 steps, two sizes at width 0.5, 2 seeds; the rules' seed
    # range is (2, 2) and their budget unlimited, so they choose every cell.
    "smoke": Profile(
        (0.0125, 0.0375),
        (0.5,),
        2,
        Rules(
            seeds=(2, 2),
            budget_hours=1e9,
            interference_seeds=2,
            interference_fractions=(0.0125, 0.0375),
            interference_widths=(0.5,),
        ),
        common=["trainer.max_steps=150"],
        per_sweep={
            "interference": ["dataset.fraction=0.0125,0.0375", "model.width=0.5", "seed=0,1"],
            "interference_mlp": ["dataset.fraction=0.0125,0.0375", "seed=0,1"],
            "interference_enp": [
                "dataset.fraction=0.0125",
                "seed=0",
                "diagnostics.measures.interference.dataset_steps=[0,10]",
            ],
            "pause_grid": ["phase.fraction=0.1,0.4"],
        },
    ),
    # The CIFAR-10 copy as an image folder (add dataset.root=DIR, made by its prepare.py): the 50% detector
    # needs 190-260 steps at 600 images and 530-660 at 6,000 (width 0.5, 2026-12-01), so 10,000 steps a run
    # (the ENP then 2-7% of it); not run here.
    "cifar": Profile(
        (0.0125, 0.0375, 0.125), (0.25, 0.5, 1.0), 3, common=["dataset=image_folder", "trainer.max_steps=10000"]
    ),
}
REGIME_SWEEP = "regime"


def sweep(name: str, experiment: str, overrides: list[str], root: Path, profile: Profile, extra: list[str]) -> tuple:
    return (
        name,
        [
            sys.executable,
            str(REPO / "train.py"),
            "-m",
            f"experiment={experiment}",
            *profile.common,
            *overrides,
            *profile.per_sweep.get(name, []),
            *extra,
            f"hydra.sweep.dir={root / name}",
        ],
    )


def seeds(first: int, last: int) -> str:
    return ",".join(str(s) for s in range(first, last))


def regime_commands(profile: Profile, root: Path, extra: list[str]) -> list[tuple]:
    return [
        sweep(
            REGIME_SWEEP,
            "claims/training",
            [
                f"arm={','.join(REGIME_ARMS)}",
                f"dataset.fraction={','.join(map(str, profile.fractions))}",
                f"model.width={','.join(map(str, profile.widths))}",
                f"seed={seeds(0, profile.regime_seeds)}",
            ],
            root,
            profile,
            extra,
        )
    ]


def stage2_commands(profile: Profile, design: Design, root: Path, extra: list[str]) -> list[tuple]:
    """Stage 2's sweeps from stage 1's design: Mixup Pause and Mixup Early at every seed, then the
    dose-matched control (`dose_commands`: it needs the Pause runs' ENP lengths), the stage-1 arms at the
    seeds stage 1 did not run (so no run is trained twice), claim (a)'s measurements, the pause grid and
    the chance-adjusted detector at the grid cells."""
    fractions = sorted({f for f, _ in design.cells})
    widths = sorted({w for _, w in design.cells})
    if len(design.cells) != len(fractions) * len(widths):
        raise SystemExit(f"error: stage 2's cells {design.cells} are not a grid of sizes x widths")
    cells = [f"dataset.fraction={','.join(map(str, fractions))}", f"model.width={','.join(map(str, widths))}"]
    grid = [f"dataset.fraction={','.join(map(str, design.grid_fractions))}", f"seed={seeds(0, design.seeds)}"]
    commands = [
        sweep(
            "training",
            "claims/training",
            [f"arm={PAUSE},{EARLY}", *cells, f"seed={seeds(0, design.seeds)}"],
            root,
            profile,
            extra,
        ),
        (DOSE_SWEEP, None),
    ]  # built once the Pause runs exist
    if design.seeds > profile.regime_seeds:
        commands.append(
            sweep(
                "regime_more_seeds",
                "claims/training",
                [f"arm={','.join(REGIME_ARMS)}", *cells, f"seed={seeds(profile.regime_seeds, design.seeds)}"],
                root,
                profile,
                extra,
            )
        )
    commands += [
        sweep(name.split("/")[-1], name, [], root, profile, extra)
        for name in ("claims/interference", "claims/interference_mlp", "claims/interference_enp")
    ]
    commands += [
        sweep("pause_grid", "claims/pause_grid", grid, root, profile, extra),
        sweep("detectors", "claims/detectors", grid, root, profile, extra),
    ]
    return commands


DOSE_SWEEP = "dose"


def dose_commands(profile: Profile, design: Design, root: Path, extra: list[str]) -> list[list[str]]:
    """One run of the dose-matched control per cell and seed, withholding Mixup for as many steps as that
    cell and seed's Mixup Pause run spent in the ENP (`strategy.schedule.steps`), right after its own ENP;
    none where the Pause run is missing or never left the ENP (its pair is left out of the test anyway)."""
    ends = {}
    for run in load_runs([root / "training"]) if (root / "training").exists() else []:
        if run.get("status") == "completed" and lookup(run, "arm") == PAUSE and run.get("enp_end_step") is not None:
            ends[(lookup(run, "dataset.fraction"), lookup(run, "model.width"), lookup(run, "seed"))] = run[
                "enp_end_step"
            ]
    commands = []
    for f, w in design.cells:
        for seed in range(design.seeds):
            if (f, w, seed) in ends:
                commands.append(
                    [
                        sys.executable,
                        str(REPO / "train.py"),
                        "experiment=claims/training",
                        f"arm={DOSE}",
                        f"dataset.fraction={f}",
                        f"model.width={w}",
                        f"seed={seed}",
                        f"strategy.schedule.steps={ends[(f, w, seed)]}",
                        *profile.common,
                        *extra,
                        f"hydra.run.dir={root / DOSE_SWEEP / f'fraction_{f}_width_{w}_seed_{seed}'}",
                    ]
                )
    return commands


# ------------------------------------------------------------------------------------ the paper's scale
PAPER_ARMS = ("vanilla", "mixup_a1", "pause_a1", "boost_a1_to_2", "dosematched_a1", "early_a1")
PAPER_SETTINGS = (
    "dataset=cifar10 model=resnet18",
    "dataset=cifar10 model=preactresnet18",
    "dataset=cifar100 model=resnet18",
    "dataset=cifar100 model=preactresnet18",
)
PAPER_EFFECT = 0.10  # points: the paper's CIFAR-10 Pause gain
ASSUMED_SD = 0.15  # points: the paired sd of Pause - Mixup assumed without a pilot (not measured)
PAPER_RUN_GPU_HOURS = 0.3  # 200 epochs of CIFAR at an assumed 10,000 images/s on an A100/H100-class GPU (not measured)


def paper_design(pilot: Path | None) -> tuple[int, float, str]:
    """(seeds, sd, where the sd comes from): the seeds that detect the paper's +0.10 points with 80%
    power at the worst Holm level of claim (c)'s family, from a pilot's paired Pause - Mixup spread on
    the validation split, or an assumed one."""
    source = f"assumed {ASSUMED_SD} points (no pilot measured)"
    sd = ASSUMED_SD
    if pilot is not None:
        runs = [r for r in load_runs([pilot]) if r.get("status") == "completed" and r.get("final_val_acc") is not None]
        matched = pairs(
            [r for r in runs if lookup(r, "arm") == PAUSE], [r for r in runs if lookup(r, "arm") == MIXUP], ("arm",)
        )
        if len(matched) < 2:
            raise SystemExit(
                f"error: --pilot {pilot}: fewer than 2 pairs of pause_a1 and mixup_a1 runs with a validation "
                f"accuracy; run a pilot of both arms with dataset.val_fraction > 0 over 2 or more seeds"
            )
        import statistics

        sd = statistics.stdev(100 * (m["final_val_acc"] - b["final_val_acc"]) for m, b in matched)
        source = f"{sd:.3f} points, the paired sd of Pause - Mixup over {len(matched)} pilot pairs in {pilot}"
    n = seeds_needed(sd, PAPER_EFFECT, LEVEL / Rules().family_size, 2, 1000)
    return n, sd, source


def paper_commands(root: Path, n: int, extra: list[str]) -> list[tuple]:
    base = [sys.executable, str(REPO / "train.py"), "-m", "experiment=claims/paper"]
    out = []
    for setting in PAPER_SETTINGS:
        name = setting.replace("dataset=", "").replace(" model=", "_")
        out.append(
            (
                f"training_{name}",
                [
                    *base,
                    *setting.split(),
                    f"arm={','.join(PAPER_ARMS)}",
                    f"seed={seeds(0, n)}",
                    *extra,
                    f"hydra.sweep.dir={root / ('training_' + name)}",
                ],
            )
        )
    first = PAPER_SETTINGS[0].split()
    out.append(
        (
            "pause_grid",
            [
                *base,
                *first,
                "arm=pause_a1",
                "phase=fixed_epochs",
                "phase.epochs=1,2,5,10,20,40",
                f"seed={seeds(0, n)}",
                *extra,
                f"hydra.sweep.dir={root / 'pause_grid'}",
            ],
        )
    )
    out.append(
        (
            "detectors",
            [
                *base,
                *first,
                "arm=pause_a1",
                "phase=chance_adjusted",
                f"seed={seeds(0, n)}",
                *extra,
                f"hydra.sweep.dir={root / 'detectors'}",
            ],
        )
    )
    out.append(
        (
            "interference",
            [
                *base,
                *first,
                "arm=mixup_a1",
                "diagnostics=dataset",
                "diagnostics.measures.interference.dataset_at_enp_end=false",
                "trainer.max_steps=1",
                "dataset.fraction=0.1,0.3,1.0",
                "model.width=0.25,0.5,1.0",
                "seed=0,1,2,3,4",
                *extra,
                f"hydra.sweep.dir={root / 'interference'}",
            ],
        )
    )
    return out


# ------------------------------------------------------------------------------------ running
def git_commit() -> str:
    def git(*args):
        return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True).stdout.strip()

    commit = git("rev-parse", "--short", "HEAD") or "unknown"
    return commit + (" (with uncommitted changes)" if git("status", "--porcelain", "--untracked-files=no") else "")


def cpu_name() -> str:
    try:
        return next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.machine()


def run_in_pool(commands: list[list[str]], jobs: int, env: dict) -> list[int]:
    """Each command once, `jobs` at a time; their exit codes."""
    codes, running, queue = [], [], list(commands)
    while queue or running:
        while queue and len(running) < jobs:
            running.append(subprocess.Popen(queue.pop(0), env=env))
        time.sleep(1)
        codes += [p.returncode for p in running if p.poll() is not None]
        running = [p for p in running if p.returncode is None]
    return codes


def run_sweeps(commands: list[tuple], root: Path, args, dose=None) -> None:
    """Each sweep in turn, `args.jobs` copies side by side (they share its jobs through each job's
    lock), on `args.threads` threads each; `dose()` builds the dose-matched runs' commands when their
    turn comes (run `args.jobs` at a time). The invocation's wall time goes to DIR/timing.jsonl however
    it ends (SIGTERM included)."""
    started, t0, status = datetime.datetime.now().isoformat(timespec="seconds"), time.perf_counter(), "interrupted"
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads)}
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))  # the finally below runs
    try:
        for name, cmd in commands:
            print(f"claims: {name} ({args.jobs} at a time)", flush=True)
            if cmd is None:
                codes = run_in_pool(dose(), args.jobs, env)
            else:
                procs = []
                for i in range(args.jobs):
                    procs.append(subprocess.Popen(cmd, env=env))
                    if i + 1 < args.jobs:
                        time.sleep(10)  # the first copy claims the first job before the next starts
                codes = [p.wait() for p in procs]  # every copy ends before the next sweep
            if any(codes):
                status = f"{name} failed"
                sys.exit(
                    f"error: the sweep {name} failed (its jobs' logs are under {root / name}); run the same command "
                    f"again to resume it"
                )
        status = "completed"
    finally:
        root.mkdir(parents=True, exist_ok=True)
        with open(root / "timing.jsonl", "a") as f:
            f.write(
                json.dumps(
                    {
                        "started": started,
                        "seconds": time.perf_counter() - t0,
                        "status": status,
                        "commit": git_commit(),
                        "stage": args.stage,
                        "profile": args.profile,
                        "jobs": args.jobs,
                        "threads": args.threads,
                        "overrides": args.overrides,
                    }
                )
                + "\n"
            )


def read_sweeps(root: Path, names: list[str]) -> list[dict]:
    dirs = [root / n for n in names if (root / n).exists()]
    try:
        return drop_duplicates(load_runs(dirs))
    except DuplicateRuns as e:
        sys.exit(f"error: {e}")


def meta_of(args, runs: list[dict], root: Path, commit: str, plan_commit: str) -> dict:
    """What the header says of the runs: how they were made (kept in the data file)."""
    done = [r for r in runs if r.get("status") == "completed"]
    timing = root / "timing.jsonl"
    return {
        "command": "python scripts/claims.py "
        + " ".join([f"--profile {args.profile}", f"--dir {args.dir}", f"--jobs {args.jobs}", *args.overrides]),
        "commit": commit,
        "plan_commit": plan_commit,
        "date": str(datetime.date.today()),
        "machine": f"{cpu_name()}, {os.cpu_count()} cores visible",
        "hosts": sorted({r.get("host", "?") for r in done}),
        "threads": sorted({r.get("runtime", {}).get("torch_threads") for r in done} - {None}),
        "matplotlib": importlib.metadata.version("matplotlib"),
        "runs": len(done),
        "run_minutes": round(sum(r.get("wall_time_s", 0) for r in done) / 60, 1),
        "timing": [json.loads(line) for line in timing.read_text().splitlines()] if timing.exists() else [],
    }


def header(title: str, meta: dict, data: Path, commit: str, rebuild: str = "--report-only") -> list[str]:
    lines = [
        f"# {title}",
        "",
        f"- **Runs**: {meta['runs']} completed, made by `{meta['command']}` at commit {meta['commit']} on "
        f"{meta['date']}; the analysis plan is docs/claims.md at commit {meta['plan_commit']}.",
        f"- **Machine**: {meta['machine']}; runs on {', '.join(meta['hosts'])} (torch threads {meta['threads']}), "
        f"{meta['run_minutes']} min of run time in all.",
    ]
    if meta["timing"]:
        lines.append(
            "- **Wall time of each invocation** (an invocation skips the jobs an earlier one completed): "
            + "; ".join(
                f"{t['started']} {t.get('stage', '')}: {t['seconds'] / 60:.1f} min, {t.get('status', '?')}"
                for t in meta["timing"]
            )
            + "."
        )
    lines.append(
        f"- **Data**: {data} (every number below; `python scripts/claims.py {rebuild}` rebuilds this file "
        f"from it). **Report written** at commit {commit} on {datetime.date.today()}."
    )
    return lines


HEADER_END = (
    "<!-- end of header: what follows is rebuilt byte for byte from the data file, the design file and the "
    "plan's Deviations section (docs/claims.md) -->"
)


def write_report(data: Path, out: Path, figures: bool, commit: str, design: Design | None) -> None:
    meta, runs = load_runs_file(data)
    report = analyse(runs, design, out.parent if figures else None, prefix=out.stem)
    head = header("The paper's four claims, tested under the plan", meta, data, commit) + ["", HEADER_END]
    atomic_write_text(out, render(report, runs, head, plan_deviations(REPO / "docs" / "claims.md")))
    print(f"claims: the report is {out}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--stage", choices=("regime", "claims"), default="claims")
    ap.add_argument("--profile", choices=(*PROFILES, "paper"), default="cpu")
    ap.add_argument("--dir", default="outputs/claims", help="the sweeps go to DIR/<sweep>")
    ap.add_argument(
        "--out",
        default="docs/results/claims.md",
        help="the report; its figures, data file and stage 1's files go beside it",
    )
    ap.add_argument("--data", help="the data file (default: <REPORT stem>_data.jsonl.gz beside the report)")
    ap.add_argument(
        "--report-only",
        action="store_true",
        help="no sweeps: the report from the data file (or, for stage 1, from DIR)",
    )
    ap.add_argument("--no-figures", action="store_true")
    ap.add_argument("--dry-run", action="store_true", help="print the sweep commands and stop")
    ap.add_argument("--jobs", type=int, default=1, help="copies of each sweep side by side (default 1)")
    ap.add_argument("--threads", type=int, default=1, help="CPU threads per run (default 1)")
    ap.add_argument("--pilot", help="--profile paper: a pilot sweep whose Pause - Mixup spread sets the seeds")
    ap.add_argument("overrides", nargs="*", help="Hydra overrides for every sweep (paths.data_dir=..., ...)")
    args = ap.parse_args(argv)
    if args.jobs < 1 or args.threads < 1:
        ap.error("--jobs and --threads must be >= 1")
    commit = git_commit()  # before the report and its figures change the tree
    if args.profile == "paper" and args.dir == ap.get_default("dir"):
        args.dir = "outputs/claims-paper"
    root, out = Path(args.dir).resolve(), Path(args.out)
    data = Path(args.data) if args.data else out.with_name(f"{out.stem}_data.jsonl.gz")
    design_file = out.with_name(f"{out.stem}_design.json")
    if args.profile == "paper":
        n, sd, source = paper_design(Path(args.pilot) if args.pilot else None)
        runs_total = len(PAPER_ARMS) * len(PAPER_SETTINGS) * n + (6 + 1) * n + 45
        print(
            f"# The claims at the paper's scale: {len(PAPER_SETTINGS)} settings ({'; '.join(PAPER_SETTINGS)}), "
            "200 epochs\n"
            f"# arms: {', '.join(PAPER_ARMS)} (dosematched_a1 and early_a1 are the controls)\n"
            f"# seeds: {n}, to detect the paper's CIFAR-10 gain of +{PAPER_EFFECT} points with 80% power at level "
            f"{LEVEL}/{Rules().family_size}; paired sd {source}; minimum detectable effect "
            f"{minimum_detectable_effect(sd, n, LEVEL / Rules().family_size):.3f} points\n"
            f"# runs: about {runs_total}; about {runs_total * PAPER_RUN_GPU_HOURS:,.0f} GPU-hours at an assumed "
            f"{PAPER_RUN_GPU_HOURS} GPU-hours a run (an estimate, not measured; docs/performance.md)"
        )
        for _, cmd in paper_commands(root, n, args.overrides):
            print(" ".join(cmd))
        if not args.dry_run:
            run_sweeps(paper_commands(root, n, args.overrides), root, args)
        return 0
    profile = PROFILES[args.profile]
    if args.stage == "regime":
        commands = regime_commands(profile, root, args.overrides)
        if args.dry_run:
            print("\n".join(" ".join(cmd) for _, cmd in commands))
            return 0
        regime_data = Path(args.data) if args.data else out.with_name(f"{out.stem}_regime_data.jsonl.gz")
        if args.report_only and args.data:  # from the data file alone
            meta, runs = load_runs_file(regime_data)
        else:
            if not args.report_only:
                run_sweeps(commands, root, args)
            runs = read_sweeps(root, [REGIME_SWEEP])
            plan_commit = (
                subprocess.run(
                    ["git", "log", "-1", "--format=%h", "--", "docs/claims.md"],
                    cwd=REPO,
                    capture_output=True,
                    text=True,
                ).stdout.strip()
                or "unknown"
            )
            meta = meta_of(args, runs, root, commit, plan_commit)
            export_runs(regime_data, runs, {}, lambda r, n: False, root, meta)
        cells = regime_map(runs)
        if not cells:
            sys.exit(f"error: no completed stage-1 runs under {root / REGIME_SWEEP}: run --stage regime first")
        design = choose_design(cells, profile.rules, profile.regime_seeds)
        design.plan_commit = meta["plan_commit"]
        report = out.with_name(f"{out.stem}_regime.md")
        atomic_write_text(
            report,
            "\n".join(
                header(
                    "Stage 1: the regime map of the claims",
                    meta,
                    regime_data,
                    commit,
                    "--stage regime --report-only --data FILE",
                )
                + ["", *render_regime(cells, design, profile.rules)]
            )
            + "\n",
        )
        atomic_write_text(design_file, json.dumps(design.to_json(), indent=1) + "\n")
        print(f"claims: stage 1's map is {report}; stage 2's design {design_file}")
        return 0
    if not design_file.exists():
        sys.exit(
            f"error: {design_file} does not exist: run stage 1 first (python scripts/claims.py --stage regime "
            f"--profile {args.profile} --out {args.out} ...)"
        )
    design = Design.from_json(json.loads(design_file.read_text()))
    commands = [
        *regime_commands(profile, root, args.overrides),
        *stage2_commands(profile, design, root, args.overrides),
    ]
    dose = lambda: dose_commands(profile, design, root, args.overrides)  # noqa: E731
    if args.dry_run:
        print(
            "\n".join(
                " ".join(cmd)
                if cmd
                else f"# {name}: one run per cell and seed once the Pause runs exist, e.g.\n"
                + "\n".join(" ".join(c) for c in dose()[:2])
                for name, cmd in commands
            )
        )
        return 0
    if not args.report_only:
        run_sweeps(commands[1:], root, args, dose)
    if not args.report_only or args.dir != ap.get_default("dir") or not data.exists():
        if args.dir != ap.get_default("dir") and args.out == ap.get_default("out"):
            sys.exit(
                f"error: --dir {args.dir} with the default --out would replace the committed report "
                f"{args.out} and its data: give --out for a report of another folder"
            )
        runs = read_sweeps(root, [name for name, _ in commands])
        if not [r for r in runs if r.get("status") == "completed" and str(lookup(r, "name")).startswith("claims/")]:
            sys.exit(
                f"error: no completed run of the claims sweeps under {root}: run the sweeps first "
                f"(without --report-only)"
            )
        export_runs(data, runs, ROWS, wants_rows, root, meta_of(args, runs, root, commit, design.plan_commit))
    write_report(data, out, not args.no_figures, commit, design)
    return 0


if __name__ == "__main__":
    sys.exit(main())
