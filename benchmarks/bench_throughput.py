#!/usr/bin/env python
"""Training and inference throughput (images/s) and peak memory of every method, per precision / compile /
memory setting, on whatever device is present: the paper's model and resolution by default, so that it runs as is
on a GPU, and smaller on a CPU.

    python benchmarks/bench_throughput.py                                  # GPU: every method, paper size
    python benchmarks/bench_throughput.py --image_size 224 --batch_size 4  # a size a 2-core CPU runs in minutes
    python benchmarks/bench_throughput.py --methods mlic-two-stage-irpe --settings fp32 bf16 bf16+compile+ckpt
    python benchmarks/bench_throughput.py --smoke --output_dir /tmp/results   # tiny models: a test of the script

A setting joins a precision (``fp32``, ``bf16``, ``fp16``) with options: ``compile`` (``torch.compile``, inductor),
``ckpt`` (activation checkpointing of the Transformer layers, methods that have them), ``cl`` (channels-last
memory format, for CNN backbones). Each (method, setting) runs in its own process (a fresh compile cache and peak
memory): the model at its config's defaults (the paper's architecture, 80 labels, random weights; ``--image_size``
and ``--backbone`` override), AdamW training steps on random images (forward, loss, backward, step) and inference
forward passes (``no_grad``, eval mode).

* Memory, first: ``max(1, --warmup)`` training steps then as many inference passes of the setting alone (which
  include compilation), then the peak: CUDA's peak allocation on a GPU, the process's peak resident set on a CPU
  (weights, optimiser state and activations: compare settings of one method, not methods). "activations" is what
  one training forward keeps for the backward pass (eager settings), the part activation checkpointing shrinks
  (under autocast it includes the low-precision copies of the weights that autocast keeps for the backward pass).
  One measurement per setting: the memory ratio carries no spread.
* Time: the setting against plain ``fp32`` of the same method (eager, contiguous, same initial weights), both in the
  setting's process (built after the memory was read), through ``_common.compare``: ``--warmup`` untimed steps of
  each, then ``--steps`` interleaved rounds (fp32 first in even rounds, the setting first in odd ones), for the
  training step and for the inference pass. The ratio is fp32's median time over the setting's (above 1: the
  setting is faster), and a difference only when its whole range (``ratio_low`` .. ``ratio_high``) is on one side
  of 1. This costs about twice the steps of timing each setting alone; ``fp32`` itself is timed alone
  (``_common.summarise`` of ``--steps`` steps after ``--warmup``).

``--config_overrides`` changes config fields of every method (e.g. a smaller width on a CPU). Run it alone: on 2 CPU
cores another process distorts every figure. Writes ``<output_dir>/throughput.json`` (provenance, summaries,
ratios, verdicts) and ``throughput.md``.
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
from _common import (REPO, RESULTS, VERDICT_NAMES, check_minimum, compare, describe, provenance, publish,  # noqa: E402
                     ratio_range, saved_activation_mb, summarise)

from mlic_hf.cli import parse_json_object, script_entry  # noqa: E402

NAME = "throughput"
PRECISIONS = ("fp32", "bf16", "fp16")
OPTIONS = ("compile", "ckpt", "cl")
REFERENCE = "fp32"
#: two small methods (one without Transformer layers: its ``+ckpt`` is skipped), 32 px, a few steps
SMOKE = {"methods": ["mlic-resnet-probabilistic", "mlic-two-stage-irpe"], "settings": ["fp32", "bf16", "fp32+ckpt"],
         "device": "cpu", "image_size": 32, "backbone": "resnet18", "batch_size": 2, "steps": 2, "warmup": 1,
         "config_overrides": '{"hidden_size": 32, "intermediate_size": 64}'}
#: ``compare``'s verdicts as the table says them (A is fp32, B the setting)
VERDICTS = VERDICT_NAMES["throughput"]


def parse_setting(text: str) -> dict[str, Any]:
    """``"bf16+compile+ckpt"`` → ``{"precision": "bf16", "compile": True, "ckpt": True, "cl": False}``."""
    parts = text.split("+")
    if parts[0] not in PRECISIONS or any(p not in OPTIONS for p in parts[1:]) or len(set(parts)) != len(parts):
        raise ValueError(f"setting {text!r}: expected a precision ({', '.join(PRECISIONS)}) followed by any of "
                         f"+{', +'.join(OPTIONS)}, e.g. bf16+compile")
    return {"precision": parts[0], **{option: option in parts[1:] for option in OPTIONS}}


def default_settings(device: str) -> list[str]:
    # CPU autocast has no fp16 kernels worth timing (and the Trainer refuses --fp16 on CPU)
    precisions = ["fp32", "bf16", "fp16"] if device == "cuda" else ["fp32", "bf16"]
    return precisions + [f"{p}+compile" for p in precisions] + ["fp32+ckpt"]


# --- one (method, setting), in a child process ---------------------------------------------------------------------


def build(method: str, image_size: int | None, backbone: str | None, num_labels: int,
          overrides: dict[str, Any] | None = None):
    import mlic_hf

    config_class, model_class = mlic_hf.REGISTERED_METHODS[method]
    kwargs: dict[str, Any] = {"num_labels": num_labels, **(overrides or {})}
    if image_size:
        kwargs["image_size"] = image_size
    if backbone:
        kwargs["backbone"] = backbone
    config = config_class(**kwargs)
    return model_class(config), config


def _sync(device: str) -> None:
    import torch

    if device == "cuda":
        torch.cuda.synchronize()


def steps_of(model, config, setting: dict[str, Any], spec: dict[str, Any]) -> tuple[Callable, Callable, Callable]:
    """``(train_step, infer_step, autocast)`` of ``model`` in ``setting`` (each step waits for the device, so that a
    timer around it measures it); the model is moved to the device and memory format first."""
    import torch

    device = spec["device"]
    memory_format = torch.channels_last if setting["cl"] else torch.contiguous_format
    model.to(device=device, memory_format=memory_format)
    runner = torch.compile(model) if setting["compile"] else model
    generator = torch.Generator().manual_seed(0)
    batch, size = spec["batch_size"], config.image_size
    pixel_values = torch.randn(batch, 3, size, size, generator=generator).to(device).contiguous(
        memory_format=memory_format)
    labels = (torch.rand(batch, config.num_labels, generator=generator) < 0.1).float().to(device)
    dtype = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[setting["precision"]]
    scaler = torch.amp.GradScaler(device) if dtype is torch.float16 and device == "cuda" else None

    def autocast():
        return torch.autocast(device, dtype=dtype, enabled=dtype is not None)

    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5)

    def train_step():
        with autocast():
            loss = runner(pixel_values, labels=labels).loss
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        else:
            loss.backward()
            optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        _sync(device)

    @torch.no_grad()
    def infer_step():
        with autocast():
            runner(pixel_values)
        _sync(device)

    train_step.inputs = {"pixel_values": pixel_values, "labels": labels}
    return train_step, infer_step, autocast


def _timed(function: Callable, warmup: int, steps: int) -> dict[str, float]:
    """``summarise`` of ``steps`` timed calls after ``warmup`` untimed ones."""
    for _ in range(warmup):
        function()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return summarise(times)


def measure(spec: dict[str, Any]) -> dict[str, Any]:
    """Peak memory, kept activations and timings of ``spec`` (method, setting, sizes), in this process: the setting
    alone first (memory), then timed against fp32 of the same method (or alone, when it is fp32)."""
    import torch

    device = spec["device"]
    setting = parse_setting(spec["setting"])
    torch.manual_seed(0)
    model, config = build(spec["method"], spec["image_size"], spec["backbone"], spec["num_labels"],
                          spec.get("config_overrides"))
    if setting["ckpt"]:
        if not model.supports_gradient_checkpointing:
            return {"skipped": "no Transformer layers to checkpoint"}
        model.activation_checkpointing_enable()
    train_step, infer_step, autocast = steps_of(model, config, setting, spec)
    model.train()
    # eager only: the hook would split a compiled graph
    activations = None if setting["compile"] else saved_activation_mb(model, train_step.inputs, autocast)
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    for _ in range(max(1, spec["warmup"])):
        train_step()
    model.eval()
    for _ in range(max(1, spec["warmup"])):
        infer_step()
    if device == "cuda":
        peak_mb = torch.cuda.max_memory_allocated() / 2**20
    else:  # ru_maxrss is in KiB on Linux
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    result: dict[str, Any] = {"peak_memory_mb": peak_mb, "activation_mb": activations, "image_size": config.image_size,
                              "backbone": config.backbone,
                              "parameters": sum(p.numel() for p in model.parameters())}
    timing = {"repeats": spec["steps"], "warmup": spec["warmup"]}
    if spec["setting"] == REFERENCE:
        model.train()
        result["train"] = _timed(train_step, spec["warmup"], spec["steps"])
        model.eval()
        result["infer"] = _timed(infer_step, spec["warmup"], spec["steps"])
    else:
        torch.manual_seed(0)  # the same initial weights
        reference, _ = build(spec["method"], spec["image_size"], spec["backbone"], spec["num_labels"],
                             spec.get("config_overrides"))
        ref_train, ref_infer, _ = steps_of(reference, config, parse_setting(REFERENCE), spec)
        model.train()
        reference.train()
        versus_train = compare(ref_train, train_step, **timing)
        model.eval()
        reference.eval()
        versus_infer = compare(ref_infer, infer_step, **timing)
        result["train"], result["infer"] = versus_train["b"], versus_infer["b"]
        result["versus_fp32"] = {"train": versus_train, "infer": versus_infer}
    batch = spec["batch_size"]
    result["train_images_per_s"] = batch / result["train"]["median"]
    result["infer_images_per_s"] = batch / result["infer"]["median"]
    return result


# --- the driver ----------------------------------------------------------------------------------------------------


def run_child(spec: dict[str, Any], timeout: float) -> dict[str, Any]:
    command = [sys.executable, str(Path(__file__).resolve()), "--_child", json.dumps(spec)]
    env = {**os.environ, "HF_HUB_OFFLINE": os.environ.get("HF_HUB_OFFLINE", "1"), "PYTHONPATH": str(REPO)}
    try:
        done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        last = [line for line in done.stderr.strip().splitlines() if line.strip()]
        return {"error": last[-1][:300] if last else f"exit code {done.returncode}"}
    return json.loads(lines[-1])


def _mb(value: float | None) -> str:
    return "—" if value is None else f"{value:.0f}"


def _versus(comparison: dict[str, Any] | None) -> str:
    return "1 (reference)" if comparison is None else f"{ratio_range(comparison)} {VERDICTS[comparison['verdict']]}"


def markdown(results: dict[str, Any]) -> str:
    s = results["settings"]
    sizes = "paper sizes" if s["image_size"] is None else f"{s['image_size']} px"
    lines = [f"# Throughput ({s['device']}, batch {s['batch_size']}, {sizes}) ({describe(results['provenance'])})", "",
             f"`{results['provenance']['command']}`", "",
             f"img/s from the median of {s['steps']} timed steps after {s['warmup']} warm-up. Each non-fp32 setting "
             "is timed interleaved with fp32 of the same method in its process (`_common.compare`): × fp32 = fp32's "
             "median time / the setting's (above 1: faster) with its range from the spread, a difference only "
             "outside it. Peak memory: one measurement per setting, in its own process (its ratio has no spread).",
             "", "| method | setting | train img/s | infer img/s | peak MB | activations MB | train × fp32 (range) | "
             "infer × fp32 (range) | memory × fp32 |", "|---|---|---:|---:|---:|---:|---|---|---:|"]
    for row in results["rows"]:
        r = row["result"]
        if "error" in r or "skipped" in r:
            lines.append(f"| {row['method']} | {row['setting']} | {r.get('error') or 'skipped: ' + r['skipped']} "
                         "| | | | | | |")
            continue
        ref = next((x["result"] for x in results["rows"] if x["method"] == row["method"]
                    and x["setting"] == REFERENCE), {})
        versus = r.get("versus_fp32", {})
        memory = f"{r['peak_memory_mb'] / ref['peak_memory_mb']:.2f}" if ref.get("peak_memory_mb") else "—"
        lines.append(f"| {row['method']} | {row['setting']} | {r['train_images_per_s']:.2f} | "
                     f"{r['infer_images_per_s']:.2f} | {r['peak_memory_mb']:.0f} | {_mb(r['activation_mb'])} | "
                     f"{_versus(versus.get('train'))} | {_versus(versus.get('infer'))} | {memory} |")
    return "\n".join(lines) + "\n"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    import mlic_hf

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--methods", nargs="+", default=list(mlic_hf.REGISTERED_METHODS),
                        choices=list(mlic_hf.REGISTERED_METHODS), metavar="METHOD")
    parser.add_argument("--settings", nargs="+", default=None, help="e.g. fp32 bf16 bf16+compile fp32+ckpt")
    parser.add_argument("--device", default=None, choices=["cuda", "cpu"], help="default: cuda if available")
    parser.add_argument("--image_size", type=int, default=None, help="default: each config's (the paper's)")
    parser.add_argument("--backbone", default=None, help="default: each config's (the paper's)")
    parser.add_argument("--batch_size", type=int, default=None, help="default: 32 on a GPU, 2 on a CPU")
    parser.add_argument("--num_labels", type=int, default=80)
    parser.add_argument("--config_overrides", default=None,
                        help='JSON object of config fields for every method, e.g. \'{"hidden_size": 512}\'')
    parser.add_argument("--steps", type=int, default=None,
                        help="timed steps, interleaved rounds against fp32 (default: 20 on a GPU, 3 on a CPU)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed steps first (default: 3 GPU, 1 CPU)")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds per (method, setting)")
    parser.add_argument("--smoke", action="store_true", help=f"a tiny run for tests: {SMOKE}")
    parser.add_argument("--output_dir", "--results_dir", dest="output_dir", type=Path, default=RESULTS)
    parser.add_argument("--_child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.smoke:
        vars(args).update(SMOKE)
    if args._child:
        return args
    for setting in args.settings or ():
        parse_setting(setting)
    args.overrides = parse_json_object(args.config_overrides, "config_overrides")
    check_minimum(args, ("batch_size", "steps", "image_size", "num_labels"), 1)
    check_minimum(args, ("warmup",), 0)
    return args


@script_entry()
def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args._child:
        print(json.dumps(measure(json.loads(args._child))))
        return 0
    import torch

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    gpu = device == "cuda"
    settings = args.settings or default_settings(device)
    base = {"device": device, "image_size": args.image_size, "backbone": args.backbone,
            "num_labels": args.num_labels, "config_overrides": args.overrides,
            "batch_size": args.batch_size or (32 if gpu else 2), "steps": args.steps or (20 if gpu else 3),
            "warmup": args.warmup if args.warmup is not None else (3 if gpu else 1)}
    results: dict[str, Any] = {"provenance": provenance(argv, __file__),
                               "settings": {**base, "methods": args.methods, "settings": settings,
                                            "smoke": args.smoke}, "rows": []}
    for method in args.methods:
        for setting in settings:
            print(f"{method} {setting} ...", file=sys.stderr, flush=True)
            result = run_child({**base, "method": method, "setting": setting}, args.timeout)
            results["rows"].append({"method": method, "setting": setting, "result": result})
    publish(NAME, results, markdown(results), folder=args.output_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
