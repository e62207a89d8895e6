#!/usr/bin/env python
"""The single-run figures of the README and docs/results.md, measured: ``make demo``, the fine-tune example, the
``fashion_clutter`` demo and M4 on the demo's data, each a real ``scripts/train.py`` run whose wall clock, training
time and test metrics go to
``benchmarks/results/demo_runs.json`` (and ``.md``) with where they came from (date, machine, libraries, commit,
command)::

    python benchmarks/demo_runs.py                         # every run, one after the other (about 20 min here)
    python benchmarks/demo_runs.py --runs demo finetune    # some of them: merged into the existing results

Run it alone on the machine: two torch processes on the same cores slow each other down many times over, and the
wall clock is part of the result. ``--smoke`` trains on a few dozen images in seconds (what the tests run).

Variants (each the command a README reader would type, plus ``--output_dir``):

- ``demo``: ``scripts/train.py --preset demo`` (= ``make demo``);
- ``finetune``: ``scripts/make_example_dataset.py`` then the fine-tune of the ``demo`` checkpoint on its coarse
  labels (= ``make finetune-example``; needs the ``demo`` run of the same invocation or of the results' commit);
- ``clutter``: ``--preset demo --dataset fashion_clutter``;
- ``m4``: ``--preset demo --method mlic-multiscale-three-branch --learning_rate 5e-4``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import REPO, RESULTS, describe, provenance, repo_relative, write_results  # noqa: E402

PYTHON = sys.executable
#: ``scripts/train.py`` arguments of each variant (``{out}``: its output folder, ``{demo}``: the demo run's).
VARIANTS: dict[str, list[str]] = {
    "demo": ["--preset", "demo"],
    "finetune": ["--preset", "demo", "--model_name_or_path", "{demo}", "--dataset", "folder",
                 "--data_dir", "{example}", "--num_train_epochs", "1"],
    "clutter": ["--preset", "demo", "--dataset", "fashion_clutter"],
    "m4": ["--preset", "demo", "--method", "mlic-multiscale-three-branch", "--learning_rate", "5e-4"],
}
#: What ``--smoke`` adds: a few dozen images, a few steps.
SMOKE_DATA = {"num_train": 48, "num_validation": 16, "num_test": 16}
METRICS = ("mAP", "CP", "CR", "CF1", "OP", "OR", "OF1", "CF1_top3", "OF1_top3")


def variant_command(name: str, out: Path, demo: Path, example: Path, smoke: bool) -> list[str]:
    """The ``scripts/train.py`` command of variant ``name`` writing to ``out``."""
    args = [arg.format(out=out, demo=demo, example=example) for arg in VARIANTS[name]]
    if smoke:
        args += ["--max_steps", "2", "--per_device_train_batch_size", "8"]
        if name != "finetune":  # the example dataset is made small instead
            args += ["--dataset_kwargs", json.dumps(SMOKE_DATA)]
    return [PYTHON, "scripts/train.py", *args, "--output_dir", str(out)]


def example_command(example: Path, smoke: bool) -> list[str]:
    sizes = ["--num_train", "48", "--num_validation", "16", "--num_test", "16"] if smoke else []
    return [PYTHON, "scripts/make_example_dataset.py", "--output", str(example), "--overwrite", *sizes]


def run(command: list[str], log: Path) -> float:
    """Run ``command`` from the repository root, its output to ``log``; the wall clock in seconds. A failure is a
    ``RuntimeError`` naming the command and the log's last line."""
    start = time.perf_counter()
    with log.open("w") as handle:
        status = subprocess.run(command, cwd=REPO, stdout=handle, stderr=subprocess.STDOUT).returncode
    seconds = time.perf_counter() - start
    if status != 0:
        lines = [line for line in log.read_text().splitlines() if line.strip()]
        raise RuntimeError(f"{' '.join(command[1:3])} failed (exit {status}): {lines[-1] if lines else ''} "
                           f"(log: {repo_relative(str(log))})")
    return seconds


def measure(name: str, work: Path, smoke: bool, argv: list[str]) -> dict[str, Any]:
    """Run variant ``name`` (after the example dataset, for ``finetune``) and read its ``mlic_run.json``."""
    out, demo, example = work / name, work / "demo", work / "fashion-coarse"
    record: dict[str, Any] = {}
    if name == "finetune":
        if not (demo / "model.safetensors").is_file():
            raise RuntimeError(f"the finetune run needs the demo checkpoint {repo_relative(str(demo))}: run "
                               "--runs demo finetune")
        command = example_command(example, smoke)
        record["example_dataset_s"] = round(run(command, work / "example.log"), 1)
        record["example_command"] = " ".join(["python", *command[1:]])
    command = variant_command(name, out, demo, example, smoke)
    wall = run(command, work / f"{name}.log")
    summary = json.loads((out / "mlic_run.json").read_text())
    return {**record, "smoke": smoke, "train_command": " ".join(["python", *command[1:]]), "wall_s": round(wall, 1),
            "train_runtime_s": summary.get("train_runtime_s"),
            "num_train_samples": summary.get("num_train_samples"), "num_test_samples": summary.get("num_test_samples"),
            "used_ema_weights": summary.get("used_ema_weights"),
            "test_metrics": {key: 100 * summary["test_metrics"][key] for key in METRICS
                             if key in summary["test_metrics"]},
            "per_class_AP": {key: 100 * value for key, value in summary["per_class_AP"].items()},
            **provenance(script=__file__, argv=argv)}


def scrub(record: dict[str, Any], folders: dict[str, Path]) -> dict[str, Any]:
    """``record`` with the given folders and the repository written as a reader would type them: paths in the
    repository relative to it, a folder elsewhere by its placeholder name (``{"WORK_DIR": path}``), so results hold
    no machine's paths."""
    text = json.dumps(record)
    pairs = [(str(path), repo_relative(str(path)) if path.is_relative_to(REPO) else name)
             for name, path in folders.items()]
    for absolute, shown in sorted(pairs, key=lambda pair: -len(pair[0])) + [(f"{REPO}/", "")]:
        text = text.replace(json.dumps(absolute)[1:-1], json.dumps(shown)[1:-1])
    return json.loads(text)


def merge(path: Path, runs: dict[str, Any]) -> dict[str, Any]:
    """The results file's runs with ``runs`` replacing those of the same name: a partial invocation never drops
    what it did not run (each run keeps its own provenance)."""
    old = json.loads(path.read_text()).get("runs", {}) if path.is_file() else {}
    return {**old, **runs}


def render(runs: dict[str, Any]) -> str:
    lines = ["# Demo runs", "", "Written by `python benchmarks/demo_runs.py`; each run is one `scripts/train.py` "
             "process run alone on the machine named. Metrics in %, test split, threshold 0.5.", "",
             "| run | mAP | CF1 | OF1 | wall clock | training | run on |", "|---|---|---|---|---|---|---|"]
    for name, record in runs.items():
        metrics = record["test_metrics"]
        lines.append(f"| {name} | {metrics['mAP']:.2f} | {metrics['CF1']:.2f} | {metrics['OF1']:.2f} | "
                     f"{record['wall_s']:.0f} s | {record['train_runtime_s'] or 0:.0f} s | {describe(record)} |")
    lines += ["", "Commands:", ""] + [f"- {name}: `{record['train_command']}`" for name, record in runs.items()]
    return "\n".join(lines) + "\n"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", nargs="+", choices=list(VARIANTS), default=list(VARIANTS),
                        help="which runs (default: all, in this order)")
    parser.add_argument("--work_dir", type=Path, default=REPO / "outputs" / "demo-runs",
                        help="where the runs' checkpoints and logs go")
    parser.add_argument("--output_dir", type=Path, default=RESULTS, help="where demo_runs.json/.md go")
    parser.add_argument("--smoke", action="store_true", help="a few dozen images and 2 steps per run (tests)")
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    args.work_dir.mkdir(parents=True, exist_ok=True)
    runs = {}
    try:
        for name in args.runs:
            print(f"{name}: running ...", flush=True)
            record = measure(name, args.work_dir.resolve(), args.smoke, argv)
            runs[name] = scrub(record, {"WORK_DIR": args.work_dir.resolve(), "OUTPUT_DIR": args.output_dir.resolve()})
            print(f"{name}: test mAP {runs[name]['test_metrics']['mAP']:.2f}, {runs[name]['wall_s']:.0f} s", flush=True)
    except (RuntimeError, OSError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    finally:
        if runs:  # what finished is kept, even when a later run fails
            merged = merge(args.output_dir / "demo_runs.json", runs)
            write_results("demo_runs", {"runs": merged}, render(merged), args.output_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
