#!/usr/bin/env python
"""Cost of the weight EMA on ML-VPT (frozen ViT-B/16, 224 px, 80 labels, random init) on this CPU: ``ModelEMA``
(trainable parameters + floating buffers, foreach lerps) against the previous scheme (every floating ``state_dict``
tensor, frozen ones too, one lerp per tensor; re-implemented here as :class:`OldEMA`, the baseline).

    python benchmarks/bench_ema.py [--batch 8] [--repeats 15] [--steps 5] [--threads 2]
    python benchmarks/bench_ema.py --smoke --output_dir /tmp/results   # a tiny ViT: a test of the script

Measures, through ``_common``:

* (a) one EMA update, old (A) against new (B), and (c) ``swapped_into`` (the swap around each EMA evaluation: back
  up, load the EMA, restore), old against new: ``compare`` (warm-up, interleaved A/B repetitions, min/median/spread;
  ratio = old / new, called a win only outside the spread);
* (b) one training step (forward + ASL loss + backward + AdamW.step() + zero_grad over the trainable parameters):
  ``summarise`` of ``--steps`` steps after one warm-up step, and the EMA update's share of step + update, old and new
  (from the medians);
* the number and the memory of the float32 shadow copies.

Both EMAs are first checked to average the same tensors to the same values. Writes ``<output_dir>/ema.json``
(provenance, summaries, ratios, verdicts) and ``ema.md``.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))  # _common.py beside this script, also when a test loads it
from _common import (RESULTS, check_minimum, compare, comparison_row, describe, provenance, publish,  # noqa: E402
                     summarise, torch_threads)

from mlic_hf.cli import script_entry  # noqa: E402
from mlic_hf.training import ModelEMA  # noqa: E402

NAME = "ema"
DECAY = 0.9997
#: a ViT with 3 blocks of width 32 at 64 px: the same code paths in a fraction of a second
SMOKE = {"backbone": "vit_tiny_patch16_224", "backbone_kwargs": {"embed_dim": 32, "num_heads": 2, "depth": 3},
         "image_size": 64, "labels": 4, "num_groups": 2, "batch": 2, "repeats": 3, "steps": 2, "warmup": 1,
         "threads": 1}


class OldEMA:
    """The previous ``ModelEMA``: a float32 copy of every floating ``state_dict`` tensor, updated one at a time."""

    def __init__(self, model: nn.Module) -> None:
        self.shadow = {k: v.detach().clone().float() for k, v in model.state_dict().items() if v.is_floating_point()}

    @torch.no_grad()
    def update(self, model: nn.Module, decay: float) -> None:
        state = model.state_dict()
        for key, shadow in self.shadow.items():
            shadow.lerp_(state[key].detach().float(), 1.0 - decay)

    @contextlib.contextmanager
    def swapped_into(self, model: nn.Module) -> Iterator[nn.Module]:
        state = model.state_dict()
        backup = {k: state[k].detach().clone() for k in self.shadow}
        self.copy_to(model)
        try:
            yield model
        finally:
            with torch.no_grad():
                for key, value in backup.items():
                    state[key].copy_(value)

    @torch.no_grad()
    def copy_to(self, model: nn.Module) -> None:
        state = model.state_dict()
        for key, shadow in self.shadow.items():
            state[key].copy_(shadow.to(dtype=state[key].dtype, device=state[key].device))


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backbone", default="vit_base_patch16_224")
    parser.add_argument("--image_size", type=int, default=224)
    parser.add_argument("--labels", type=int, default=80)
    parser.add_argument("--num_groups", type=int, default=5)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=15, help="interleaved timed rounds of each EMA comparison")
    parser.add_argument("--warmup", type=int, default=2, help="untimed calls of each side first")
    parser.add_argument("--steps", type=int, default=5, help="timed training steps (after one warm-up step)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--smoke", action="store_true", help="a tiny ViT and few repetitions, for tests")
    parser.add_argument("--output_dir", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    args.backbone_kwargs = {}
    if args.smoke:
        vars(args).update(SMOKE)
    check_minimum(args, ("image_size", "labels", "num_groups", "batch", "repeats", "steps", "threads"), 1)
    check_minimum(args, ("warmup",), 0)
    return args


def build_ml_vpt(args: argparse.Namespace) -> nn.Module:
    """ML-VPT with ``--num_groups`` CO and DC groups filled round-robin (the grouping does not change the cost)."""
    from mlic_hf import MultiLabelVPTConfig, MultiLabelVPTForMultiLabelImageClassification

    labels, groups = args.labels, args.num_groups
    config = MultiLabelVPTConfig(backbone=args.backbone, backbone_kwargs=args.backbone_kwargs, num_labels=labels,
                                 image_size=args.image_size, num_groups=groups,
                                 co_groups=[i * groups // labels for i in range(labels)],
                                 dc_groups=[i % groups for i in range(labels)])
    return MultiLabelVPTForMultiLabelImageClassification(config)


def step_summary(model: nn.Module, args: argparse.Namespace) -> dict[str, float]:
    """``summarise`` of training steps: forward + loss + backward + AdamW.step() + zero_grad, after one warm-up."""
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4, weight_decay=1e-4)
    x = torch.randn(args.batch, 3, args.image_size, args.image_size)
    y = (torch.rand(args.batch, args.labels) > 0.9).float()
    model.train()
    times = []
    for step in range(args.steps + 1):
        start = time.perf_counter()
        model(x, labels=y).loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if step:  # the first step allocates the optimizer state and warms the allocator
            times.append(time.perf_counter() - start)
    return summarise(times)


def swap_once(ema: Any, model: nn.Module) -> None:
    """What an EMA evaluation costs beyond the evaluation itself."""
    with ema.swapped_into(model):
        pass


def megabytes(tensors: Any) -> float:
    return sum(t.numel() * t.element_size() for t in tensors) / 1e6


def measure(args: argparse.Namespace) -> dict[str, Any]:
    torch.manual_seed(0)
    model = build_ml_vpt(args)
    old, new = OldEMA(model), ModelEMA(model, decay=DECAY)
    # the baseline is the same average: one update of each from the same weights agrees on the averaged tensors
    old.update(model, new.current_decay())
    new.update(model)
    for key, value in new.shadow.items():
        torch.testing.assert_close(value, old.shadow[key], rtol=0, atol=1e-7)
    step = step_summary(model, args)
    timing = {"repeats": args.repeats, "warmup": args.warmup}
    update = compare(lambda: old.update(model, DECAY), lambda: new.update(model), **timing)
    swap = compare(lambda: swap_once(old, model), lambda: swap_once(new, model), **timing)
    share = {name: ema["median"] / (step["median"] + ema["median"])
             for name, ema in (("old", update["a"]), ("new", update["b"]))}
    return {"model": {"backbone": args.backbone, "image_size": args.image_size, "labels": args.labels,
                      "parameters": sum(p.numel() for p in model.parameters()),
                      "trainable": sum(p.numel() for p in model.parameters() if p.requires_grad)},
            "shadows": {"old": {"tensors": len(old.shadow), "megabytes": megabytes(old.shadow.values())},
                        "new": {"tensors": len(new.shadow), "megabytes": megabytes(new.shadow.values())}},
            "training_step": step, "update_share_of_step": share,
            "comparisons": {"EMA update, old (A) vs ModelEMA (B)": update,
                            "swapped_into, old (A) vs ModelEMA (B)": swap}}


def markdown(results: dict[str, Any]) -> str:
    m, s, step = results["model"], results["shadows"], results["training_step"]
    lines = [f"# Weight EMA cost on ML-VPT ({describe(results['provenance'])})", "",
             f"{m['backbone']}, {m['image_size']} px, {m['labels']} labels: {m['parameters'] / 1e6:.2f} M parameters, "
             f"{m['trainable'] / 1e6:.3f} M trainable; batch {results['settings']['batch']}, "
             f"{results['settings']['threads']} threads. Median ms (min–max) of interleaved repetitions; ratio = "
             "old / new with its range from the spread.", "",
             "| operation | old ms | new ms | ratio (range) | verdict |", "|---|---:|---:|---:|---|"]
    lines += [comparison_row(name, c, digits=3) for name, c in results["comparisons"].items()]
    share = results["update_share_of_step"]
    lines += ["", f"Shadow copies: old {s['old']['tensors']} tensors, {s['old']['megabytes']:.1f} MB; new "
              f"{s['new']['tensors']} tensors, {s['new']['megabytes']:.1f} MB.",
              f"Training step (forward + backward + AdamW step + zero_grad): median {step['median']:.3f} s "
              f"(min {step['min']:.3f}, max {step['max']:.3f}, {step['repeats']} steps); the EMA update's share of "
              f"step + update: old {100 * share['old']:.2f} %, new {100 * share['new']:.2f} %."]
    return "\n".join(lines) + "\n"


@script_entry()
def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    results = {"provenance": provenance(argv, __file__),
               "settings": {k: getattr(args, k) for k in ("batch", "threads", "repeats", "warmup", "steps", "smoke")}}
    with torch_threads(args.threads):
        results.update(measure(args))
    publish(NAME, results, markdown(results), folder=args.output_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
