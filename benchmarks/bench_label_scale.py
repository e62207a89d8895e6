#!/usr/bin/env python
"""How the heads scale with the number of labels: 80 (COCO), 1,000 and 9,605 (Open Images), on one backbone.

Every head reads the same backbone features (the last feature map of a timm ResNet-50 at 224 px by default, computed
once per label count; random weights: timings do not depend on them), so only the heads are measured, each against
GAP + linear (M1's head) at the same label count through ``_common.compare`` (warm-up, interleaved A/B repetitions,
min/median/spread; ratio = head / linear, a difference only outside the spread):

* a training step: the head's forward, the method's loss, backward, ``AdamW.step()`` over the head's parameters,
  ``zero_grad``;
* inference: eval, ``no_grad`` forward of the head.

Memory: the head's parameters and the activations one training forward keeps for its backward pass
(``_common.saved_activation_mb``; one measurement, no spread).

Heads at their papers' defaults (widths as their official code, on the backbone's 2,048 channels): ML-Decoder (100
group queries: at most 100 decoded queries at any label count), Query2Label (a query per label, width 2,048, FFN
8,192), M2 (a query per label, width 2,048, FFN 8,192), CSRA (4 heads). The head's parameter count is the model's
minus the backbone's.

    python benchmarks/bench_label_scale.py [--labels 80 1000 9605] [--heads ml-decoder q2l m2 csra] [--batch 2]
    python benchmarks/bench_label_scale.py --smoke --output_dir /tmp/results   # tiny models: a test of the script

Writes ``<output_dir>/label_scale.json`` (provenance, per head and label count: the comparisons and parameters) and
``label_scale.md``.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))  # _common.py beside this script, also when a test loads it
from _common import (RESULTS, VERDICT_NAMES, check_minimum, compare, comparison_row, describe,  # noqa: E402
                     provenance, publish, saved_activation_mb, torch_threads)

import mlic_hf  # noqa: E402
from mlic_hf.cli import script_entry  # noqa: E402

NAME = "label_scale"
#: head name -> (model_type, config fields beyond the backbone, image size and labels)
HEADS: dict[str, tuple[str, dict[str, Any]]] = {
    "linear": ("mlic-resnet-probabilistic", {"dropout": 0.0}),
    "ml-decoder": ("mlic-ml-decoder", {"num_groups": -1}),
    "q2l": ("mlic-query2label", {}),
    "m2": ("mlic-two-stage-irpe", {}),
    "csra": ("mlic-csra", {}),
}
LABEL_COUNTS = (80, 1000, 9605)
#: tiny heads and label counts through the same code paths
SMOKE = {"backbone": "resnet18", "image_size": 64, "batch": 2, "repeats": 2, "warmup": 1, "threads": 1,
         "labels": [4, 40], "overrides": {"ml-decoder": {"hidden_size": 32, "intermediate_size": 64},
                                          "q2l": {"hidden_size": 512, "intermediate_size": 64},
                                          "m2": {"hidden_size": 32, "intermediate_size": 64}}}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--labels", type=int, nargs="+", default=list(LABEL_COUNTS))
    parser.add_argument("--heads", nargs="+", default=[h for h in HEADS if h != "linear"],
                        choices=[h for h in HEADS if h != "linear"])
    parser.add_argument("--backbone", default="resnet50")
    parser.add_argument("--image_size", type=int, default=224)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3, help="interleaved rounds of each comparison")
    parser.add_argument("--warmup", type=int, default=1, help="untimed runs of each first")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--smoke", action="store_true", help="tiny heads and label counts, for tests")
    parser.add_argument("--output_dir", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    args.overrides = {}
    if args.smoke:
        vars(args).update(SMOKE)
    check_minimum(args, ("threads", "batch", "repeats", "image_size"), 1)
    check_minimum(args, ("warmup",), 0)
    if min(args.labels) < 1:
        raise ValueError(f"--labels must be label counts of at least 1, got {args.labels}")
    return args


def build(head: str, num_labels: int, args: argparse.Namespace) -> torch.nn.Module:
    model_type, fields = HEADS[head]
    config_class, model_class = mlic_hf.REGISTERED_METHODS[model_type]
    config = config_class(backbone=args.backbone, image_size=args.image_size, num_labels=num_labels,
                          **fields, **args.overrides.get(head, {}))
    torch.manual_seed(0)
    return model_class(config)


def on_features(model: torch.nn.Module, features: list[torch.Tensor]) -> torch.nn.Module:
    """``model`` whose backbone returns ``features`` (whatever the pixels): its forward is the head's alone."""
    model.get_backbone().forward = lambda pixel_values: list(features)
    return model


def head_parameter_list(model: torch.nn.Module) -> list[torch.nn.Parameter]:
    backbone = {id(p) for p in model.get_backbone().parameters()}
    return [p for p in model.parameters() if id(p) not in backbone]


def steps(model: torch.nn.Module, x: torch.Tensor, labels: torch.Tensor) -> dict[str, Callable[[], None]]:
    """The training step and the inference call of one model's head."""
    optimizer = torch.optim.AdamW([p for p in head_parameter_list(model) if p.requires_grad], lr=1e-4)

    def train() -> None:
        model.train()
        model(pixel_values=x, labels=labels).loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    def infer() -> None:
        model.eval()
        with torch.no_grad():
            model(pixel_values=x)

    return {"training step": train, "inference": infer}


def head_size(model: torch.nn.Module, x: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
    """The head's parameter count and the MB its training forward keeps for the backward pass."""
    model.train()
    return {"head_parameters": sum(p.numel() for p in head_parameter_list(model)),
            "activation_mb": saved_activation_mb(model, {"pixel_values": x, "labels": labels}, contextlib.nullcontext)}


def measure(args: argparse.Namespace) -> dict[str, Any]:
    """Per label count: the linear baseline's head size, and per head its size and both comparisons."""
    results: dict[str, Any] = {}
    for num_labels in args.labels:
        x = torch.randn(args.batch, 3, args.image_size, args.image_size)
        labels = (torch.rand(args.batch, num_labels) < 0.05).float()
        linear = build("linear", num_labels, args)
        with torch.no_grad():
            features = [f.detach() for f in linear.get_backbone().eval()(x)]
        on_features(linear, features)
        baseline = steps(linear, x, labels)
        row: dict[str, Any] = {"linear": head_size(linear, x, labels)}
        for head in args.heads:
            model = on_features(build(head, num_labels, args), features)
            timed = steps(model, x, labels)
            row[head] = {**head_size(model, x, labels),
                         **{kind: compare(timed[kind], baseline[kind], repeats=args.repeats, warmup=args.warmup)
                            for kind in timed}}
            print(f"{num_labels} labels, {head}: training step ×{row[head]['training step']['ratio']:.2f}, "
                  f"inference ×{row[head]['inference']['ratio']:.2f} of linear", flush=True)
            del model, timed
        results[str(num_labels)] = row
    return results


def table(data: dict[str, Any]) -> str:
    s = data["settings"]
    lines = [f"# Heads against GAP + linear as labels grow ({describe(data['provenance'])})", "",
             f"Backbone `{s['backbone']}` at {s['image_size']} px, batch {s['batch']}, {s['threads']} threads; "
             f"milliseconds median (min–max) of {s['repeats']} interleaved rounds; ratio = head / linear.", "",
             "| labels | head | head parameters | activations MB | step | head (ms) | linear (ms) | ratio | verdict |",
             "|---|---|---|---|---|---|---|---|---|"]
    for num_labels, row in data["results"].items():
        linear = row["linear"]
        lines.append(f"| {num_labels} | linear | {linear['head_parameters'] / 1e6:.2f} M | "
                     f"{linear['activation_mb']:.1f} | | | | | |")
        for head, entry in row.items():
            if head == "linear":
                continue
            for kind in ("training step", "inference"):
                cells = (num_labels, head, f"{entry['head_parameters'] / 1e6:.2f} M", f"{entry['activation_mb']:.1f}",
                         kind)
                lines.append(comparison_row(cells, entry[kind], verdicts=VERDICT_NAMES[NAME]))
    return "\n".join(lines) + "\n"


@script_entry()
def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with torch_threads(args.threads) as threads:
        results = measure(args)
    setup = {"backbone": args.backbone, "image_size": args.image_size, "batch": args.batch, "repeats": args.repeats,
             "warmup": args.warmup, "threads": threads, "labels": args.labels, "heads": args.heads,
             "smoke": args.smoke}
    data = {"provenance": provenance(argv, script=__file__), "settings": setup, "results": results}
    publish(NAME, data, table(data), folder=args.output_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
