#!/usr/bin/env python
"""Training-step time and peak training memory of ML-VPT against VPT, LoRA, linear probing and full fine-tuning on
the same ViT (default ``vit_base_patch16_224``, 224 px, random init, 80 labels) on this CPU.

    python benchmarks/bench_vpt.py [--batch 8] [--steps 5] [--repeats 7] [--backbone vit_base_patch16_224]
    python benchmarks/bench_vpt.py --smoke --output_dir /tmp/results   # a tiny ViT: a test of the script

One training step is forward + ASL loss + backward + AdamW.step() + zero_grad over the trainable parameters.
ML-VPT, VPT (deep prompts), linear probing and full fine-tuning are variants of ``mlic-ml-vpt``; LoRA is PEFT's
``LoraConfig(r=8, target_modules=["qkv"])`` + a trained head on the same timm ViT.

* Per method, in its own subprocess (so that its peak resident memory can be measured): ``_common.summarise`` of
  ``--steps`` steps after one warm-up step, and the peak training memory = the process's peak RSS minus its RSS
  before the model was built (interpreter and libraries excluded; glibc is told to mmap tensors above 64 KiB so that
  freed memory leaves the RSS). One measurement per method: memory ratios carry no spread.
* The step-time goal pair, ML-VPT (A) against VPT (B), afterwards in this process holding both models, through
  ``_common.compare`` (warm-up, interleaved A/B steps, min/median/spread): the ratio is a difference only when its
  whole range is on one side of 1; the goal is "met" only when the whole range satisfies it.

Goals (issue 6): ML-VPT step time <= 1.15x VPT's; ML-VPT peak training memory <= 0.6x full fine-tuning's. Writes
``<output_dir>/vpt.json`` (provenance, summaries, ratios, verdicts) and ``vpt.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))  # _common.py beside this script, also when a test loads it
from _common import (RESULTS, check_minimum, compare, describe, judge_goal, provenance, publish,  # noqa: E402
                     ratio_range, spread, summarise, torch_threads)

from mlic_hf.cli import parse_json_object, script_entry  # noqa: E402

NAME = "vpt"
# Tensors above 64 KiB get their own mmap and are returned to the OS when freed, so peak RSS tracks the peak of live
# tensors instead of glibc's arena high-water mark.
MALLOC_ENV = {"MALLOC_MMAP_THRESHOLD_": "65536"}
METHODS = ("ml-vpt", "vpt", "lora", "linear-probe", "full-finetune")
STEP_GOAL, MEMORY_GOAL = 1.15, 0.6
#: a ViT with 3 blocks of width 32 at 64 px: every method's code path in a fraction of a second per step
SMOKE = {"backbone": "vit_tiny_patch16_224", "backbone_kwargs": '{"embed_dim": 32, "num_heads": 2, "depth": 3}',
         "image_size": 64, "labels": 4, "num_groups": 2, "batch": 2, "steps": 2, "repeats": 3, "warmup": 1,
         "threads": 1}
#: the flags a child process gets from its parent
CHILD_FLAGS = ("backbone", "backbone_kwargs", "image_size", "labels", "num_groups", "batch", "steps", "repeats",
               "warmup", "threads")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backbone", default="vit_base_patch16_224")
    parser.add_argument("--backbone_kwargs", default="", help="JSON object of timm.create_model keyword arguments")
    parser.add_argument("--image_size", type=int, default=224)
    parser.add_argument("--labels", type=int, default=80)
    parser.add_argument("--num_groups", type=int, default=5)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=5, help="timed steps per method (after one warm-up step)")
    parser.add_argument("--repeats", type=int, default=7, help="interleaved timed steps of ML-VPT vs VPT")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps of each in the ML-VPT vs VPT comparison")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--smoke", action="store_true", help="a tiny ViT and few steps, for tests")
    parser.add_argument("--output_dir", type=Path, default=RESULTS)
    parser.add_argument("--child", choices=METHODS, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.smoke:
        vars(args).update(SMOKE)
    args.backbone_kwargs_dict = parse_json_object(args.backbone_kwargs, "backbone_kwargs")
    check_minimum(args, ("image_size", "labels", "num_groups", "batch", "steps", "repeats", "threads"), 1)
    check_minimum(args, ("warmup",), 0)
    return args


def current_rss_kb() -> int:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024


def build(method: str, args: argparse.Namespace) -> tuple[Any, Callable[[Any, Any], Any]]:
    """The model of ``method`` and its loss function ``(pixels, labels) -> loss``."""
    from mlic_hf.models.multilabel_vpt import MultiLabelVPTConfig, MultiLabelVPTForMultiLabelImageClassification

    if method == "lora":
        import timm
        from peft import LoraConfig, get_peft_model

        from mlic_hf.losses import asymmetric_loss

        vit = timm.create_model(args.backbone, num_classes=args.labels, img_size=args.image_size,
                                **args.backbone_kwargs_dict)
        model = get_peft_model(vit, LoraConfig(r=8, lora_alpha=16, target_modules=["qkv"], modules_to_save=["head"]))
        return model, lambda x, y: asymmetric_loss(model(x), y)
    labels, groups = args.labels, args.num_groups
    config = MultiLabelVPTConfig(backbone=args.backbone, backbone_kwargs=args.backbone_kwargs_dict, variant=method,
                                 num_labels=labels, image_size=args.image_size, num_groups=groups,
                                 co_groups=[i * groups // labels for i in range(labels)],
                                 dc_groups=[i % groups for i in range(labels)])
    model = MultiLabelVPTForMultiLabelImageClassification(config)
    return model, lambda x, y: model(x, labels=y).loss


def training_step(model: Any, loss: Callable[[Any, Any], Any], args: argparse.Namespace) -> Callable[[], None]:
    """Forward + loss + backward + AdamW.step() + zero_grad over the trainable parameters, on one fixed batch."""
    import torch

    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4, weight_decay=1e-4)
    x = torch.randn(args.batch, 3, args.image_size, args.image_size)
    y = (torch.rand(args.batch, args.labels) > 0.9).float()
    model.train()

    def step() -> None:
        loss(x, y).backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return step


def child(args: argparse.Namespace) -> dict[str, Any]:
    """In a subprocess: one method's step times (``summarise``) and peak training memory."""
    import torch

    import mlic_hf.models.multilabel_vpt  # noqa: F401  (libraries first: the baseline RSS excludes them)
    import peft  # noqa: F401
    import timm  # noqa: F401

    torch.manual_seed(0)
    with torch_threads(args.threads):
        before = current_rss_kb()
        model, loss = build(args.child, args)
        step = training_step(model, loss, args)
        times = []
        for index in range(args.steps + 1):
            start = time.perf_counter()
            step()
            if index:  # the first step allocates the optimizer state and warms the allocator
                times.append(time.perf_counter() - start)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    return {"step_s": summarise(times), "peak_mib": (peak - before) / 1024,
            "parameters": sum(p.numel() for p in model.parameters()),
            "trainable": sum(p.numel() for p in model.parameters() if p.requires_grad)}


def compare_pair(args: argparse.Namespace) -> dict[str, Any]:
    """ML-VPT (A) against VPT (B): interleaved training steps of both models, held in this process."""
    import torch

    torch.manual_seed(0)
    with torch_threads(args.threads):
        steps = [training_step(*build(method, args), args) for method in ("ml-vpt", "vpt")]
        return compare(*steps, repeats=args.repeats, warmup=args.warmup)


def run_child(kind: str, args: argparse.Namespace) -> dict[str, Any]:
    """``child(kind)`` in a fresh Python process (its own peak RSS); its result is the last line of its stdout."""
    command = [sys.executable, str(Path(__file__).resolve()), "--child", kind,
               *(f"--{flag}={getattr(args, flag)}" for flag in CHILD_FLAGS)]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", **MALLOC_ENV}
    proc = subprocess.run(command, capture_output=True, text=True, env=env)
    if proc.returncode:
        raise RuntimeError(f"the {kind} measurement failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def goals(methods: dict[str, Any], comparison: dict[str, Any] | None) -> dict[str, Any]:
    """Both goals: the step-time one judged on the interleaved comparison's range, the memory one on the single
    measurement of each process."""
    out: dict[str, Any] = {}
    if comparison is not None:
        out["step_time"] = {"goal": f"ML-VPT / VPT <= {STEP_GOAL}", "ratio": comparison["ratio"],
                            "met": judge_goal(comparison, at_most=STEP_GOAL)}
    if "ml-vpt" in methods and "full-finetune" in methods:
        ratio = methods["ml-vpt"]["peak_mib"] / methods["full-finetune"]["peak_mib"]
        out["peak_memory"] = {"goal": f"ML-VPT / full fine-tuning <= {MEMORY_GOAL}", "ratio": ratio,
                              "met": "met" if ratio <= MEMORY_GOAL else "missed"}
    return out


def markdown(results: dict[str, Any]) -> str:
    s = results["settings"]
    lines = [f"# ML-VPT vs other tuning methods: step time and memory ({describe(results['provenance'])})", "",
             f"{s['backbone']} at {s['image_size']} px, batch {s['batch']}, {s['labels']} labels, {s['threads']} "
             f"threads. Step = forward + ASL loss + backward + AdamW step + zero_grad; per method median s (min–max) "
             f"of {s['steps']} steps in its own process; peak MiB = peak RSS above the RSS before the model.", "",
             "| method | total M | trainable M | step s | peak MiB |", "|---|---:|---:|---:|---:|"]
    for method, r in results["methods"].items():
        lines.append(f"| {method} | {r['parameters'] / 1e6:.2f} | {r['trainable'] / 1e6:.3f} | "
                     f"{spread(r['step_s'], 3, 1)} | {r['peak_mib']:.0f} |")
    c = results.get("comparison")
    if c is not None:
        lines += ["", f"ML-VPT (A) vs VPT (B), {c['a']['repeats']} interleaved steps in one process: A "
                  f"{spread(c['a'], 3, 1)} s, B {spread(c['b'], 3, 1)} s, ratio {ratio_range(c, 3)}: {c['verdict']}."]
    for goal in results["goals"].values():
        lines.append(f"- goal {goal['goal']}: {goal['ratio']:.3f}, {goal['met']}")
    return "\n".join(lines) + "\n"


@script_entry()
def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child:
        print(json.dumps(child(args)))
        return 0
    results: dict[str, Any] = {"provenance": provenance(argv, __file__),
                               "settings": {k: getattr(args, k) for k in (*CHILD_FLAGS, "smoke")}}
    results["settings"]["backbone_kwargs"] = args.backbone_kwargs_dict
    results["methods"] = {method: run_child(method, args) for method in args.methods}
    comparison = compare_pair(args) if {"ml-vpt", "vpt"} <= set(args.methods) else None
    if comparison is not None:
        results["comparison"] = comparison
    results["goals"] = goals(results["methods"], comparison)
    publish(NAME, results, markdown(results), folder=args.output_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
