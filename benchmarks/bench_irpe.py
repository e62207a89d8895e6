#!/usr/bin/env python
"""Training-step cost of iRPE (M2's image relative position encoding on q, k and v) on this CPU, in two comparisons:

* one Transformer encoder layer with iRPE on q, k and v (A) against the same layer with plain attention (B, PyTorch
  scaled-dot-product), at 14×14 and 18×18 tokens and d_model 512 / 2048 (FFN 2048). Goal: A / B <= 1.5;
* the whole M2 model (paper defaults: ResNet-101, 448 px, hidden_size 2048, 80 labels) (A) against the bare backbone
  model M1 (ResNet-101 + global pooling + linear) (B), batch ``--batch`` (``--skip_model`` leaves it out).

A training step is forward + loss + backward + AdamW.step() + zero_grad (the optimizer's cost grows with the
parameters iRPE and the transformer add). Each comparison goes through ``_common.compare``: warm-up steps, then
interleaved A/B repetitions, min/median/spread; ratio = A / B, a difference only when its whole range is on one side
of 1, a goal "met" only when the whole range satisfies it.

    python benchmarks/bench_irpe.py [--batch 2] [--repeats 5] [--heads 8] [--threads 2] [--skip_model]
    python benchmarks/bench_irpe.py --smoke --output_dir /tmp/results   # tiny layers and models: a test of the script

Writes ``<output_dir>/irpe.json`` (provenance, summaries, ratios, verdicts) and ``irpe.md``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))  # _common.py beside this script, also when a test loads it
from _common import (RESULTS, check_minimum, compare, comparison_row, describe, judge_goal,  # noqa: E402
                     provenance, publish, torch_threads)

from mlic_hf.cli import script_entry  # noqa: E402

NAME = "irpe"
GOAL = 1.5
FULL = {"sides": (14, 18), "d_models": (512, 2048), "feedforward": 2048, "image_size": 448, "labels": 80,
        "model": {}}
#: layers and models small enough for a test, through the same code paths
SMOKE = {"sides": (4,), "d_models": (32,), "feedforward": 64, "image_size": 64, "labels": 4, "heads": 4, "batch": 2,
         "repeats": 3, "warmup": 1, "threads": 1,
         "model": {"backbone": "resnet18", "hidden_size": 32, "num_attention_heads": 4, "intermediate_size": 64}}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--heads", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=5, help="interleaved timed steps of each side")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps of each side first")
    parser.add_argument("--skip_model", action="store_true", help="time the layers only")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--smoke", action="store_true", help="tiny layers and models, for tests")
    parser.add_argument("--output_dir", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    vars(args).update(FULL)
    if args.smoke:
        vars(args).update(SMOKE)
    check_minimum(args, ("threads", "batch", "heads", "repeats"), 1)  # threads None: torch's choice
    check_minimum(args, ("warmup",), 0)
    if any(d % args.heads for d in args.d_models):
        raise ValueError(f"--heads {args.heads} must divide every d_model {list(args.d_models)}")
    return args


def training_step(module: nn.Module, forward: Callable[[], torch.Tensor],
                  inputs: tuple[torch.Tensor, ...] = ()) -> Callable[[], None]:
    """One training step of ``module``: ``forward()`` gives the loss; backward, AdamW.step(), zero_grad. ``inputs``
    that require a gradient have it cleared too (a layer inside a network back-propagates into its input)."""
    optimizer = torch.optim.AdamW([p for p in module.parameters() if p.requires_grad], lr=1e-4, weight_decay=1e-4)
    module.train()

    def step() -> None:
        forward().backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        for tensor in inputs:
            tensor.grad = None

    return step


def layer_comparisons(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """iRPE (A) vs plain attention (B) for every token grid and width."""
    from mlic_hf.models.two_stage_irpe.irpe import IRPEEncoderLayer

    rows = {}
    for side in args.sides:
        for d_model in args.d_models:
            layers = {rpe: IRPEEncoderLayer(d_model, args.heads, dim_feedforward=args.feedforward, dropout=0.0,
                                            rpe_on=rpe) for rpe in (("q", "k", "v"), ())}
            x = torch.randn(args.batch, side * side, d_model, requires_grad=True)
            irpe, plain = (training_step(layer, lambda layer=layer: layer(x, side, side).mean(), (x,))
                           for layer in layers.values())
            row = compare(irpe, plain, repeats=args.repeats, warmup=args.warmup)
            row.update(tokens=f"{side}x{side}", d_model=d_model, goal=f"A / B <= {GOAL}",
                       goal_met=judge_goal(row, at_most=GOAL))
            rows[f"{side}x{side} tokens, d_model {d_model}"] = row
    return rows


def model_comparison(args: argparse.Namespace) -> dict[str, Any]:
    """The whole M2 (A) against the bare-backbone M1 (B): training steps of the same batch."""
    import mlic_hf

    x = torch.randn(args.batch, 3, args.image_size, args.image_size)
    labels = (torch.rand(args.batch, args.labels) > 0.9).float()
    common = {"num_labels": args.labels, "image_size": args.image_size}
    backbone = {k: v for k, v in args.model.items() if k == "backbone"}
    m2 = mlic_hf.TwoStageIRPEForMultiLabelImageClassification(mlic_hf.TwoStageIRPEConfig(**common, **args.model))
    m1 = mlic_hf.ResNetProbabilisticForMultiLabelImageClassification(
        mlic_hf.ResNetProbabilisticConfig(**common, **backbone))
    steps = [training_step(model, lambda model=model: model(x, labels=labels).loss) for model in (m2, m1)]
    row = compare(*steps, repeats=args.repeats, warmup=args.warmup)
    row["parameters"] = {"M2": sum(p.numel() for p in m2.parameters()), "M1": sum(p.numel() for p in m1.parameters())}
    row["backbone"] = m2.config.backbone
    return row


def markdown(results: dict[str, Any]) -> str:
    s = results["settings"]
    lines = [f"# iRPE training-step cost ({describe(results['provenance'])})", "",
             f"Training step = forward + loss + backward + AdamW step + zero_grad; batch {s['batch']}, "
             f"{s['heads']} heads, FFN {s['feedforward']}; median ms (min–max) of {s['repeats']} interleaved steps "
             f"after {s['warmup']} warm-up; ratio = A / B with its range from the spread.", "",
             f"| layer | iRPE q,k,v (A) ms | plain (B) ms | ratio (range) | verdict | goal A / B <= {GOAL} |",
             "|---|---:|---:|---:|---|---|"]
    lines += [comparison_row(name, c, digits=1, extra=[c["goal_met"]]) for name, c in results["layers"].items()]
    if "model" in results:
        m = results["model"]
        lines += ["", f"Whole model ({m['backbone']}, {s['image_size']} px, {s['labels']} labels; "
                  f"M2 {m['parameters']['M2'] / 1e6:.1f} M, M1 {m['parameters']['M1'] / 1e6:.1f} M parameters):", "",
                  "| model | M2 (A) ms | M1 bare backbone (B) ms | ratio (range) | verdict |",
                  "|---|---:|---:|---:|---|",
                  comparison_row("training step", m, digits=1)]
    return "\n".join(lines) + "\n"


@script_entry()
def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    results = {"provenance": provenance(argv, __file__),
               "settings": {k: getattr(args, k) for k in ("batch", "heads", "feedforward", "image_size", "labels",
                                                          "repeats", "warmup", "skip_model", "smoke")}}
    with torch_threads(args.threads) as threads:
        torch.manual_seed(0)
        results["settings"]["threads"] = threads
        results["layers"] = layer_comparisons(args)
        if not args.skip_model:
            results["model"] = model_comparison(args)
    publish(NAME, results, markdown(results), folder=args.output_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
