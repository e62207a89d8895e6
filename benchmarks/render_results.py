#!/usr/bin/env python
"""Render the README's result tables and figures from ``benchmarks/results/*.json``, so that the page cannot drift
from the measurements::

    python benchmarks/render_results.py            # rewrite every rendered block of README.md and docs/*.md
    python benchmarks/render_results.py --check    # exit 1 naming the blocks that differ from the results

A rendered block is the text between ``<!-- rendered: NAME -->`` and ``<!-- /rendered -->``; ``NAME`` is one of
:data:`RENDERERS`, each a function of the results folder. Text outside the blocks is left as written. The tests run
``--check``: a README number that disagrees with its results file fails them.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import REPO, RESULTS  # noqa: E402

BLOCK = re.compile(r"(<!-- rendered: (?P<name>[\w-]+) -->\n)(?P<body>.*?)(<!-- /rendered -->)", re.S)
#: The pages that hold rendered blocks.
PAGES = ("README.md", "docs")

#: The zoo's rows as the README names them (the zoo's own labels are longer), in the README's order.
ZOO_README_ROWS = {
    "m1": "M1 (GAP + sigmoid)", "m2-irpe": "M2, iRPE encoder (paper)", "m2-standard-encoder": "M2, standard encoder",
    "m2-no-encoder": "M2, no encoder", "m2-irpe-decoder-sa": "M2, iRPE + decoder self-attention",
    "m4": "M4, scale attention + encoder (paper)", "m4-no-hsa": "M4, no scale attention",
    "m4-no-encoder": "M4, no encoder", "m4-no-hsa-no-encoder": "M4, neither", "ml-vpt": "ML-VPT (CO + DC)",
    "vpt-deep": "VPT (deep)", "linear-probe": "linear probing", "full-finetune": "full fine-tuning",
    "ml-vpt-no-co": "ML-VPT without CO groups", "ml-vpt-no-dc": "ML-VPT without DC groups",
    "ml-vpt-authors": "ML-VPT, `--preset m3-authors`",
}
#: Rows printed in bold: the baseline and the method of each comparison's paper.
ZOO_HEADLINE = {"m1", "ml-vpt"}
DEMO_METRICS = (("mAP", "mAP"), ("CP", "CP"), ("CR", "CR"), ("CF1", "CF1"), ("OP", "OP"), ("OR", "OR"),
                ("OF1", "OF1"), ("CF1_top3", "CF1 (top-3)"), ("OF1_top3", "OF1 (top-3)"))


def _read(results: Path, name: str) -> dict[str, Any]:
    path = results / name
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise ValueError(f"cannot read {path}: {err}") from err


def _params(count: int) -> str:
    return f"{count / 1e6:.2f} M" if count >= 100_000 else f"{count / 1e3:.1f} k"


def _minutes(seconds: float) -> str:
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest} s" if minutes else f"{rest} s"


def _machine(record: dict[str, Any]) -> str:
    machine = record["machine"]
    accelerator = "no GPU" if machine["accelerator"] == "none" else machine["accelerator"]
    commit = (record["git"]["commit"] or "no git")[:7] + (", dirty" if record["git"].get("dirty") else "")
    return f"{record['date'][:10]}, {machine['cpu']}, {machine['cores']} cores, {accelerator}, commit {commit}"


def zoo_table(results: Path) -> str:
    """The README's zoo table: test mAP (mean ± std over seeds), CF1, OF1, parameters, fastest seed's minutes."""
    zoo = _read(results, "zoo.json")
    rows = {row["name"]: row for row in zoo["rows"]}
    lines = ["| row | mAP | CF1 | OF1 | trainable / total | min |", "|---|---|---|---|---|---|"]
    for name, label in ZOO_README_ROWS.items():
        row = rows.get(name)
        if row is None or "mAP" not in row:
            lines.append(f"| {label} | not run | | | | |")
            continue
        mAP = f"{row['mAP']['mean']:.2f} ± {row['mAP']['std']:.2f}"
        mAP = f"**{mAP}**" if name in ZOO_HEADLINE else mAP
        lines.append(f"| {label} | {mAP} | {row['CF1']['mean']:.2f} | {row['OF1']['mean']:.2f} | "
                     f"{_params(row['trainable_params'])} / {_params(row['total_params'])} | {row['train_min']:.1f} |")
    return "\n".join(lines) + "\n"


def zoo_baseline(results: Path) -> str:
    """The zoo's label-frequency baseline, as a sentence."""
    baseline = _read(results, "zoo.json")["baseline"]
    return (f"Label-frequency baseline: test mAP {baseline['mAP']:.2f} (each of the {baseline['num_test_samples']:,} "
            f"test images scored with the label frequencies of the first {baseline['num_train_samples']:,} training "
            "images).\n")


#: The scale study's rows (``zoo.py --cnn_image_size 192``), as the README names them.
SCALE_ROWS = {"m1": "M1", "m2-irpe": "M2, iRPE encoder (paper)", "m2-no-encoder": "M2, no encoder",
              "m4": "M4, scale attention + encoder (paper)", "m4-no-hsa": "M4, no scale attention"}
#: The label-map rows of ``bench_label_maps.py``, as the README describes each map.
LABEL_MAP_ROWS = {
    "M1 (CAM)": "M1 (class activation map, 3×3 grid at 96 px)",
    "M2 (query cross-attention)": "M2 (last decoder layer's query cross-attention)",
    "M4 (mean of branch cross-attention)": "M4 (mean of the branches' cross-attention)",
    "ML-VPT (gated group-prompt attention)": "ML-VPT (gated group-prompt attention, 6×6 patches)",
    "linear probe (head over patch tokens)": "linear probe (head over patch tokens)",
}


def scale_table(results: Path) -> str:
    """The scale study: each row's mAP at 96 px (the zoo, mean ± std) and at 192 px (``zoo-192px``), and its gap to
    M1 at 192 px; the best 192 px figure in bold."""
    at96 = {row["name"]: row for row in _read(results, "zoo.json")["rows"]}
    at192 = {row["name"]: row for row in _read(results, "zoo-192px/zoo.json")["rows"]}
    seeds = {row["mAP"]["n"] for row in at192.values() if "mAP" in row}
    best = max(at192[name]["mAP"]["mean"] for name in SCALE_ROWS)
    lines = [f"| row | 96 px ({at96['m1']['mAP']['n']} seeds) | 192 px "
             f"({'seed 0' if seeds == {1} else f'{min(seeds)} seeds'}) | gap to M1 at 192 px |", "|---|---|---|---|"]
    for name, label in SCALE_ROWS.items():
        small, large = at96[name]["mAP"], at192[name]["mAP"]["mean"]
        gap = "—" if name == "m1" else f"{large - at192['m1']['mAP']['mean']:+.1f}".replace("-", "−")
        shown = f"**{large:.2f}**" if large == best else f"{large:.2f}"
        lines.append(f"| {label} | {small['mean']:.2f} ± {small['std']:.2f} | {shown} | {gap} |")
    return "\n".join(lines) + "\n"


def label_map_table(results: Path) -> str:
    """Pointing accuracy of each method's label maps (``bench_label_maps.py``), the best in bold."""
    rows = _read(results, "label_maps.json")["rows"]
    best = max(row["pointing_accuracy"] for row in rows.values())
    lines = ["| model (map) | pointing accuracy | chance |", "|---|---|---|"]
    for key, label in LABEL_MAP_ROWS.items():
        row = rows[key]
        accuracy = f"{100 * row['pointing_accuracy']:.1f}%"
        lines.append(f"| {label} | {f'**{accuracy}**' if row['pointing_accuracy'] == best else accuracy} | "
                     f"{100 * row['chance']:.1f}% |")
    return "\n".join(lines) + "\n"


def _demo_run(results: Path, name: str) -> dict[str, Any]:
    runs = _read(results, "demo_runs.json")["runs"]
    if name not in runs:
        raise ValueError(f"{results / 'demo_runs.json'} has no {name!r} run: python benchmarks/demo_runs.py --runs {name}")
    if runs[name].get("smoke"):
        raise ValueError(f"{results / 'demo_runs.json'}: the {name!r} run is a --smoke run, not a measurement")
    return runs[name]


def demo_summary(results: Path) -> str:
    """The quick start's result of ``make demo``, as a sentence."""
    run = _demo_run(results, "demo")
    return (f"Measured: **test mAP {run['test_metrics']['mAP']:.2f}%**, {_minutes(run['wall_s'])} end to end "
            f"({_machine(run)}; `python benchmarks/demo_runs.py --runs demo`, run alone).\n")


def demo_table(results: Path) -> str:
    """The Results section's ``make demo`` metrics and per-class AP."""
    run = _demo_run(results, "demo")
    metrics = run["test_metrics"]
    per_class = ", ".join(f"{label} {ap:.2f}" for label, ap in run["per_class_AP"].items())
    return "\n".join([
        f"Measured {_machine(run)}, run alone: {_minutes(run['wall_s'])} wall clock "
        f"({_minutes(run['train_runtime_s'])} of training), {run['num_train_samples']:,} training and "
        f"{run['num_test_samples']:,} test mosaics; EMA weights {'chosen' if run['used_ema_weights'] else 'not chosen'}"
        " on the validation split. Test split, threshold 0.5, in %:", "",
        "| " + " | ".join(title for _, title in DEMO_METRICS) + " |", "|" + "---|" * len(DEMO_METRICS),
        "| " + " | ".join(f"{metrics[key]:.2f}" for key, _ in DEMO_METRICS) + " |", "",
        f"Per-class AP: {per_class}.", ""])


def _run_sentence(results: Path, name: str, intro: str) -> str:
    run = _demo_run(results, name)
    metrics = run["test_metrics"]
    aps = run["per_class_AP"]
    low, high = min(aps, key=aps.get), max(aps, key=aps.get)
    return (f"{intro}: test mAP {metrics['mAP']:.2f}%, CF1 {metrics['CF1']:.2f}%, OF1 {metrics['OF1']:.2f}% "
            f"(per-class AP from {low} {aps[low]:.1f} to {high} {aps[high]:.1f}), {_minutes(run['wall_s'])} wall "
            f"clock ({_machine(run)}; `python benchmarks/demo_runs.py --runs {name}`).\n")


def clutter_run(results: Path) -> str:
    """M1 on ``fashion_clutter`` with the demo's recipe."""
    return _run_sentence(results, "clutter", "Measured")


def m4_run(results: Path) -> str:
    """M4 on the demo's data and backbone."""
    return _run_sentence(results, "m4", "Measured")


def finetune_run(results: Path) -> str:
    """The fine-tune example (``make finetune-example``)."""
    run = _demo_run(results, "finetune")
    return (f"Measured: test mAP {run['test_metrics']['mAP']:.2f}% on the coarse labels, "
            f"{_minutes(run['wall_s'])} for the fine-tune and {_minutes(run['example_dataset_s'])} to write the "
            f"example dataset ({_machine(run)}; `python benchmarks/demo_runs.py --runs demo finetune`).\n")


def vit_pretraining(results: Path) -> str:
    """The stand-in ViT's pretraining (``scripts/pretrain_vit.py``): steps, minutes and held-out accuracy."""
    run = _read(results, "vit_pretraining.json")
    provenance = run["provenance"]
    return (f"Measured: {run['steps']:,} of {run['planned_steps']:,} steps in {run['minutes']:.0f} minutes, "
            f"**{100 * run['held_out_accuracy']:.1f}%** held-out single-garment accuracy ({_machine(provenance)}; "
            "[`benchmarks/results/vit_pretraining.md`](benchmarks/results/vit_pretraining.md)).\n")


RENDERERS: dict[str, Callable[[Path], str]] = {
    "zoo-table": zoo_table, "zoo-baseline": zoo_baseline, "demo-summary": demo_summary, "demo-table": demo_table,
    "clutter-run": clutter_run, "m4-run": m4_run, "finetune-run": finetune_run, "scale-table": scale_table,
    "label-map-table": label_map_table, "vit-pretraining": vit_pretraining,
}


def render_text(text: str, results: Path, source: str = "text") -> str:
    """``text`` with every rendered block rewritten from ``results``; an unknown block name is a ``ValueError``."""
    def replace(match: re.Match) -> str:
        name = match.group("name")
        if name not in RENDERERS:
            raise ValueError(f"{source}: unknown rendered block {name!r} (known: {', '.join(RENDERERS)})")
        return match.group(1) + RENDERERS[name](results) + match.group(4)

    return BLOCK.sub(replace, text)


def pages(repo: Path = REPO) -> list[Path]:
    found = []
    for entry in PAGES:
        path = repo / entry
        found += sorted(path.rglob("*.md")) if path.is_dir() else [path]
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="only compare; exit 1 if a block is out of date")
    parser.add_argument("--results", type=Path, default=RESULTS, help="the results folder")
    args = parser.parse_args(argv)
    stale = []
    try:
        for page in pages():
            text = page.read_text()
            rendered = render_text(text, args.results, str(page.relative_to(REPO)))
            if rendered == text:
                continue
            stale.append(str(page.relative_to(REPO)))
            if not args.check:
                page.write_text(rendered)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.check and stale:
        print(f"out of date with benchmarks/results: {', '.join(stale)} (run python benchmarks/render_results.py)",
              file=sys.stderr)
        return 1
    print(("rewrote " + ", ".join(stale)) if stale else "every rendered block is up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
