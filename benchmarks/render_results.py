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
from _common import REPO, RESULTS, VERDICT_NAMES, comparison_row, ratio_range, spread  # noqa: E402

BLOCK = re.compile(r"(<!-- rendered: (?P<name>[\w-]+) -->\n)(?P<body>.*?)(<!-- /rendered -->)", re.S)
#: The pages that hold rendered blocks.
PAGES = ("README.md", "docs")

#: The zoo's rows as the README names them (the zoo's own labels are longer), in the README's order.
ZOO_README_ROWS = {
    "m1": "M1 (GAP + sigmoid)", "m2-irpe": "M2, iRPE encoder (paper)", "m2-standard-encoder": "M2, standard encoder",
    "m2-no-encoder": "M2, no encoder", "m2-irpe-decoder-sa": "M2, iRPE + decoder self-attention",
    "m4": "M4, scale attention + encoder (paper)", "m4-no-hsa": "M4, no scale attention",
    "m4-no-encoder": "M4, no encoder", "m4-no-hsa-no-encoder": "M4, neither",
    "csra": "CSRA, 4 heads, λ 0.5", "csra-one-head": "CSRA, 1 head, λ 0.1", "csra-lambda0": "CSRA, 1 head, λ 0",
    "ml-decoder": "ML-Decoder, a query per label", "ml-decoder-groups": "ML-Decoder, 5 queries of 2 labels",
    "ml-decoder-learnable": "ML-Decoder, learnable queries",
    "q2l": "Query2Label (official setting)", "q2l-decoder-sa": "Query2Label, decoder self-attention",
    "q2l-no-encoder": "Query2Label, no encoder",
    "ml-vpt": "ML-VPT (CO + DC)",
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
    """Pointing accuracy of each method's label maps (``bench_label_maps.py``), the best in bold: the zoo's rows as
    the README describes them, in :data:`LABEL_MAP_ROWS`' order, then any other row under its own name. A results
    file with a ``provenance`` record (the current format) adds the line saying where it was measured; the older
    format (``date``, ``machine`` strings) renders the table alone, as before."""
    data = _read(results, "label_maps.json")
    rows = data["rows"]
    if "provenance" in data and data.get("settings", {}).get("smoke"):
        raise ValueError(f"{results / 'label_maps.json'} is a --smoke run, not a measurement")
    best = max(row["pointing_accuracy"] for row in rows.values())
    order = [key for key in LABEL_MAP_ROWS if key in rows] + [key for key in rows if key not in LABEL_MAP_ROWS]
    lines = ["| model (map) | pointing accuracy | chance |", "|---|---|---|"]
    for key in order:
        row = rows[key]
        accuracy = f"{100 * row['pointing_accuracy']:.1f}%"
        lines.append(f"| {LABEL_MAP_ROWS.get(key, key)} | "
                     f"{f'**{accuracy}**' if row['pointing_accuracy'] == best else accuracy} | "
                     f"{100 * row['chance']:.1f}% |")
    if "provenance" in data:
        lines += ["", f"Measured {_machine(data['provenance'])}: {data['num_images']} test images, "
                  f"`{data['provenance']['command']}`."]
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


# --- the timing benchmarks (``_common.compare`` results) -------------------------------------------------------------

#: The timing benchmarks the benchmark table summarises: results file → script.
TIMING_BENCHES = {"metrics.json": "bench_metrics.py", "ema.json": "bench_ema.py", "data.json": "bench_data.py",
                  "irpe.json": "bench_irpe.py", "msff.json": "bench_msff.py", "vpt.json": "bench_vpt.py"}


def _measured(results: Path, name: str) -> dict[str, Any]:
    """A results file in the current format (with its ``provenance`` record) of a real run (not ``--smoke``)."""
    data = _read(results, name)
    if not isinstance(data, dict) or "provenance" not in data:
        raise ValueError(f"{results / name} is in the old format (no provenance record): rerun its benchmark")
    if data.get("settings", {}).get("smoke"):
        raise ValueError(f"{results / name} is a --smoke run, not a measurement")
    return data


def _goal(comparison: dict[str, Any]) -> str:
    return f"{comparison['goal']}: {comparison['goal_met']}" if "goal" in comparison else "—"


def _timing_rows(name: str, data: dict[str, Any]) -> list[tuple[str, dict[str, Any], str]]:
    """``(what is compared, compare result, goal cell)`` of one timing benchmark's results."""
    if name == "metrics.json":
        return [(label, c, _goal(c)) for label, c in data["comparisons"].items()]
    if name == "ema.json":
        return [(label, c, "—") for label, c in data["comparisons"].items()]
    if name == "data.json":
        return [("plain PIL + torchvision loader (A) vs mlic_hf pipeline (B), one epoch", data["comparison"],
                 _goal(data["comparison"]))]
    if name == "irpe.json":
        rows = [(f"iRPE q,k,v layer (A) vs plain layer (B), training step, {label}", c, _goal(c))
                for label, c in data["layers"].items()]
        if "model" in data:
            rows.append(("M2 (A) vs M1's bare backbone (B), training step", data["model"], "—"))
        return rows
    if name == "msff.json":
        return [(f"M4 (A) vs its backbone (B), {label}", c, "—") for label, c in data["whole_model"].items()]
    if name == "vpt.json":
        goal = data["goals"].get("step_time")
        if "comparison" not in data:
            return []
        return [("ML-VPT (A) vs VPT (B), training step", data["comparison"],
                 f"{goal['goal']}: {goal['met']}" if goal else "—")]
    raise ValueError(f"no rows for {name}")


def benchmark_table(results: Path) -> str:
    """The six timing benchmarks (:data:`TIMING_BENCHES`) in one table: what is compared, the ratio A / B as median
    (range from the spread), the verdict (a difference only when the whole range is on one side of 1), and the goal
    where the script judges one; ML-VPT's memory goal (one measurement per method, no spread) under it. Then where
    each was measured (benchmarks measured on the same machine and commit share a line)."""
    lines = ["| benchmark | A vs B | ratio A / B (range) | verdict | goal |", "|---|---|---|---|---|"]
    measured: dict[str, list[str]] = {}
    extra = []
    for name, script in TIMING_BENCHES.items():
        data = _measured(results, name)
        measured.setdefault(_machine(data["provenance"]), []).append(f"`{script}`")
        lines += [f"| `{script}` | {label} | {ratio_range(c)} | {c['verdict']} | {goal} |"
                  for label, c, goal in _timing_rows(name, data)]
        memory = data.get("goals", {}).get("peak_memory") if name == "vpt.json" else None
        if memory:
            extra.append(f"`{script}`, peak training memory (one measurement per method, no spread): {memory['goal']}"
                         f", ratio {memory['ratio']:.2f}: {memory['met']}.")
    notes = [*extra, "Ratio = A's median time / B's (above 1: B is faster). Measured "
             + "; ".join(f"{', '.join(scripts)}: {where}" for where, scripts in measured.items()) + "."]
    return "\n".join(lines) + "\n\n" + "\n\n".join(notes) + "\n"


def onnx_table(results: Path) -> str:
    """onnxruntime vs PyTorch CPU latency per checkpoint and batch size (``bench_onnx.py``)."""
    data = _measured(results, "onnx.json")
    s = data["settings"]
    lines = ["| model | image | batch | PyTorch ms | ONNX ms | ratio (range) | verdict |",
             "|---|---:|---:|---:|---:|---:|---|"]
    lines += [comparison_row((name, row["image_size"], batch), c, verdicts=VERDICT_NAMES["onnx"])
              for name, row in data["rows"].items() for batch, c in row["batches"].items()]
    lines += ["", f"Median ms per batch (min–max) of {s['repeats']} interleaved runs after {s['warmup']} warm-up, "
              f"{s['threads']} threads; ratio = PyTorch / onnxruntime (above 1: onnxruntime faster), a difference "
              f"only outside its range. Measured {_machine(data['provenance'])}; `{data['provenance']['command']}`."]
    return "\n".join(lines) + "\n"


def throughput_table(results: Path) -> str:
    """Training and inference images/s of every (method, setting) (``bench_throughput.py``), each setting's ratio to
    fp32 of the same method (interleaved, with its range and verdict), kept activations and peak memory."""
    data = _measured(results, "throughput.json")
    s = data["settings"]
    lines = ["| method | setting | train img/s | × fp32 (range) | infer img/s | × fp32 (range) | activations MB | "
             "peak MB |", "|---|---|---:|---|---:|---|---:|---:|"]
    for row in data["rows"]:
        r = row["result"]
        if "error" in r or "skipped" in r:
            lines.append(f"| {row['method']} | {row['setting']} | {r.get('error') or 'skipped: ' + r['skipped']} "
                         "| | | | | |")
            continue
        versus = r.get("versus_fp32", {})
        cells = []
        for kind in ("train", "infer"):
            c = versus.get(kind)
            cells += [f"{r[f'{kind}_images_per_s']:.2f}",
                      "reference" if c is None else f"{ratio_range(c)} {VERDICT_NAMES['throughput'][c['verdict']]}"]
        activations = "—" if r["activation_mb"] is None else f"{r['activation_mb']:.0f}"
        lines.append(f"| {row['method']} | {row['setting']} | {' | '.join(cells)} | {activations} | "
                     f"{r['peak_memory_mb']:.0f} |")
    sizes = "each config's image size" if s["image_size"] is None else f"{s['image_size']} px"
    lines += ["", f"{s['device']}, batch {s['batch_size']}, {sizes}; img/s from the median of {s['steps']} steps after "
              f"{s['warmup']} warm-up; × fp32 = fp32's median time / the setting's, timed interleaved in one process "
              "(above 1: faster; a difference only outside the range); peak memory one measurement per setting. "
              f"Measured {_machine(data['provenance'])}; `{data['provenance']['command']}`."]
    return "\n".join(lines) + "\n"


def streaming_table(results: Path) -> str:
    """Streamed vs on-disk images/s per DataLoader worker count and start-up (``bench_streaming.py``)."""
    data = _measured(results, "streaming.json")
    s = data["settings"]
    lines = ["| DataLoader workers | images/s on disk | images/s streamed | streamed / on disk (range) | verdict | "
             "goal |", "|---|---:|---:|---|---|---|"]
    verdicts = {"A faster": "on disk faster", "B faster": "streamed faster", "within noise": "within noise"}
    for name, c in data["throughput"].items():
        rates = c["images_per_s"]
        lines.append(f"| {name.split()[0]} | {rates['on disk']:.0f} | {rates['streamed']:.0f} | {ratio_range(c)} | "
                     f"{verdicts[c['verdict']]} | {_goal(c)} |")
    startup = data["startup"]
    lines += ["", f"Start-up (building the dataset): on disk {spread(startup['a'], 2, 1)} s, streamed "
              f"{spread(startup['b'], 2, 1)} s; ratio {ratio_range(startup)}: {verdicts[startup['verdict']]}.",
              f"{s['num_images']:,} images at {s['image_size']} px from {s['shards']} parquet shards, batches of "
              f"{s['batch_size']}; medians of {s['repeats']} interleaved epochs after {s['warmup']} warm-up; ratio = "
              "on-disk epoch time / streamed (above 1: streaming faster), a difference only outside its range. "
              f"Measured {_machine(data['provenance'])}; `{data['provenance']['command']}`."]
    return "\n".join(lines) + "\n"


def label_scale_table(results: Path) -> str:
    """Each head's training step and inference time against GAP + linear at each label count
    (``bench_label_scale.py``), with the head's parameters and kept activations."""
    data = _measured(results, "label_scale.json")
    s = data["settings"]
    lines = ["| labels | head | head parameters | activations MB | training step ms | × linear (range) | "
             "inference ms | × linear (range) |", "|---:|---|---:|---:|---:|---|---:|---|"]
    for num_labels, row in data["results"].items():
        linear, first = row["linear"], next(e for h, e in row.items() if h != "linear")
        lines.append(f"| {int(num_labels):,} | GAP + linear | {linear['head_parameters'] / 1e6:.2f} M | "
                     f"{linear['activation_mb']:.1f} | {1e3 * first['training step']['b']['median']:.1f} | 1 | "
                     f"{1e3 * first['inference']['b']['median']:.1f} | 1 |")
        for head, entry in row.items():
            if head == "linear":
                continue
            cells = [f"{1e3 * entry[kind]['a']['median']:.1f} | {ratio_range(entry[kind])} "
                     f"{VERDICT_NAMES['label_scale'][entry[kind]['verdict']]}"
                     for kind in ("training step", "inference")]
            lines.append(f"| {int(num_labels):,} | {LABEL_SCALE_HEADS[head]} | "
                         f"{entry['head_parameters'] / 1e6:.2f} M | {entry['activation_mb']:.1f} | {cells[0]} | "
                         f"{cells[1]} |")
    lines += ["", f"The heads alone, on the last feature map of `{s['backbone']}` at {s['image_size']} px, batch "
              f"{s['batch']}, {s['threads']} threads; activations: what one training forward keeps for the backward "
              f"pass (one measurement); × linear = the head's median time / GAP + linear's, {s['repeats']} "
              f"interleaved rounds after {s['warmup']} warm-up (a difference only outside the range). Measured "
              f"{_machine(data['provenance'])}; `{data['provenance']['command']}`."]
    return "\n".join(lines) + "\n"


#: bench_label_scale.py's head names as tables show them
LABEL_SCALE_HEADS = {"ml-decoder": "ML-Decoder (≤ 100 group queries)", "q2l": "Query2Label (a query per label)",
                     "m2": "M2 (a query per label)", "csra": "CSRA (4 heads)"}


RENDERERS: dict[str, Callable[[Path], str]] = {
    "zoo-table": zoo_table, "zoo-baseline": zoo_baseline, "demo-summary": demo_summary, "demo-table": demo_table,
    "clutter-run": clutter_run, "m4-run": m4_run, "finetune-run": finetune_run, "scale-table": scale_table,
    "label-map-table": label_map_table, "vit-pretraining": vit_pretraining, "benchmark-table": benchmark_table,
    "onnx-table": onnx_table, "throughput-table": throughput_table, "streaming-table": streaming_table,
    "label-scale-table": label_scale_table,
}
#: Renderers ready for blocks that are not placed in a page yet (their tables go into README/docs later): the test
#: that every renderer feeds a page exempts them, and fails once one of them is placed while still listed here (remove
#: it then). A placed block whose results file is missing, still in the old format or a ``--smoke`` run is a
#: ``ValueError`` naming the file, so ``--check`` cannot pass on stale evidence.
NOT_YET_PLACED = frozenset({"onnx-table"})


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
