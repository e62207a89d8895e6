#!/usr/bin/env python
"""Training and inference throughput (images/s) and peak memory of every method, per precision / compile /
memory setting, on whatever device is present: the paper's model and resolution by default, so that it runs as is
on a GPU, and smaller on a CPU.

    python benchmarks/bench_throughput.py                                  # GPU: every method, paper size
    python benchmarks/bench_throughput.py --image_size 224 --batch_size 4  # a size a 2-core CPU runs in minutes
    python benchmarks/bench_throughput.py --methods mlic-two-stage-irpe --settings fp32 bf16 bf16+compile+ckpt

A setting joins a precision (``fp32``, ``bf16``, ``fp16``) with options: ``compile`` (``torch.compile``, inductor),
``ckpt`` (activation checkpointing of the Transformer layers, methods that have them), ``cl`` (channels-last
memory format, for CNN backbones). Each (method, setting) runs in its own process (a fresh compile cache and peak
memory): the model at its config's defaults (the paper's architecture, 80 labels, random weights; ``--image_size``
and ``--backbone`` override), AdamW training steps on random images (forward, loss, backward, step) and inference
forward passes (``no_grad``, eval mode), each timed after warm-up runs (which include compilation); the table
gives the median. Memory is CUDA's peak allocation on a GPU and the process's peak resident set on a CPU (weights,
optimiser state and activations: compare settings of one method, not methods); "activations" is what one
training forward keeps for the backward pass (eager settings), the part activation checkpointing shrinks (under
autocast it includes the low-precision copies of the weights that autocast keeps for the backward pass).
``--config_overrides`` changes config fields of every method (e.g. a smaller width on a CPU).

Ratios are against ``fp32`` of the same method (above 1: faster / larger). Run it alone: on 2 CPU cores another
process distorts every figure. Writes ``benchmarks/results/throughput.md`` and ``throughput.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from datetime import date
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))  # _common.py beside this script, also when a test loads it
from _common import cpu_model  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
PRECISIONS = ("fp32", "bf16", "fp16")
OPTIONS = ("compile", "ckpt", "cl")


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


def _timed(function, device: str, warmup: int, steps: int) -> list[float]:
    for _ in range(warmup):
        function()
    _sync(device)
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        function()
        _sync(device)
        times.append(time.perf_counter() - start)
    return times


def saved_activation_mb(model, step_inputs: dict, autocast) -> float:
    """MB of tensors one training forward keeps for its backward pass, parameters excluded (a checkpointed layer
    keeps only its input: torch's checkpoint packs the rest itself, out of sight of this hook)."""
    import torch

    parameters = {p.untyped_storage().data_ptr() for p in model.parameters()}
    kept: dict[int, int] = {}

    def pack(tensor):
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in parameters:
            kept[storage.data_ptr()] = storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor), autocast():
        loss = model(**step_inputs).loss
    loss.backward()
    model.zero_grad(set_to_none=True)
    return sum(kept.values()) / 2**20


def measure(spec: dict[str, Any]) -> dict[str, Any]:
    """Train and inference timings and peak memory of ``spec`` (method, setting, sizes), in this process."""
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
    memory_format = torch.channels_last if setting["cl"] else torch.contiguous_format
    model.to(device=device, memory_format=memory_format)
    runner = torch.compile(model) if setting["compile"] else model
    batch, size = spec["batch_size"], config.image_size
    pixel_values = torch.randn(batch, 3, size, size, device=device).contiguous(memory_format=memory_format)
    labels = (torch.rand(batch, config.num_labels, device=device) < 0.1).float()
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

    @torch.no_grad()
    def infer_step():
        with autocast():
            runner(pixel_values)

    model.train()
    # eager only: the hook would split a compiled graph
    activations = None if setting["compile"] else saved_activation_mb(
        model, {"pixel_values": pixel_values, "labels": labels}, autocast)
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    train_times = _timed(train_step, device, spec["warmup"], spec["steps"])
    model.eval()
    infer_times = _timed(infer_step, device, spec["warmup"], spec["steps"])
    if device == "cuda":
        peak_mb = torch.cuda.max_memory_allocated() / 2**20
    else:  # ru_maxrss is in KiB on Linux
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "train_images_per_s": batch / statistics.median(train_times),
        "infer_images_per_s": batch / statistics.median(infer_times),
        "peak_memory_mb": peak_mb,
        "activation_mb": activations,
        "image_size": size,
        "backbone": config.backbone,
        "parameters": sum(p.numel() for p in model.parameters()),
    }


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


def machine(device: str) -> str:
    import torch

    if device == "cuda":
        return f"{torch.cuda.get_device_name(0)}, torch {torch.__version__}"
    return f"{os.cpu_count()} cores ({cpu_model()}), torch {torch.__version__}, {torch.get_num_threads()} threads"


def ratio(value: float | None, reference: float | None) -> str:
    return f"{value / reference:.2f}×" if value and reference else "—"


def _mb(value: float | None) -> str:
    return "—" if value is None else f"{value:.0f}"


def render(results: list[dict[str, Any]], header: str) -> str:
    lines = [header, "", "| method | setting | train img/s | infer img/s | peak MB | activations MB | train × | "
             "infer × | memory × |", "|---|---|---|---|---|---|---|---|---|"]
    for row in results:
        r = row["result"]
        if "error" in r or "skipped" in r:
            lines.append(f"| {row['method']} | {row['setting']} | {r.get('error') or 'skipped: ' + r['skipped']} "
                         "| | | | | | |")
            continue
        ref = next((x["result"] for x in results if x["method"] == row["method"] and x["setting"] == "fp32"), {})
        lines.append(
            f"| {row['method']} | {row['setting']} | {r['train_images_per_s']:.2f} | {r['infer_images_per_s']:.2f} "
            f"| {r['peak_memory_mb']:.0f} | {_mb(r['activation_mb'])} "
            f"| {ratio(r['train_images_per_s'], ref.get('train_images_per_s'))} "
            f"| {ratio(r['infer_images_per_s'], ref.get('infer_images_per_s'))} "
            f"| {ratio(r['peak_memory_mb'], ref.get('peak_memory_mb'))} |")
    return "\n".join(lines) + "\n"


def parse_args(argv=None):
    import mlic_hf

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--methods", nargs="+", default=list(mlic_hf.REGISTERED_METHODS),
                        choices=list(mlic_hf.REGISTERED_METHODS), metavar="METHOD")
    parser.add_argument("--settings", nargs="+", default=None, help="e.g. fp32 bf16 bf16+compile fp32+ckpt")
    parser.add_argument("--device", default=None, help="cuda or cpu (default: cuda if available)")
    parser.add_argument("--image_size", type=int, default=None, help="default: each config's (the paper's)")
    parser.add_argument("--backbone", default=None, help="default: each config's (the paper's)")
    parser.add_argument("--batch_size", type=int, default=None, help="default: 32 on a GPU, 2 on a CPU")
    parser.add_argument("--num_labels", type=int, default=80)
    parser.add_argument("--config_overrides", default=None,
                        help='JSON object of config fields for every method, e.g. \'{"hidden_size": 512}\'')
    parser.add_argument("--steps", type=int, default=None, help="timed steps (default: 20 on a GPU, 3 on a CPU)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed steps first (default: 3 GPU, 1 CPU)")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds per (method, setting)")
    parser.add_argument("--results_dir", type=Path, default=REPO / "benchmarks" / "results")
    parser.add_argument("--_child", default=None, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args._child:
        print(json.dumps(measure(json.loads(args._child))))
        return 0
    import torch

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    gpu = device == "cuda"
    try:
        settings = args.settings or default_settings(device)
        for setting in settings:
            parse_setting(setting)
        overrides = json.loads(args.config_overrides) if args.config_overrides else {}
        if not isinstance(overrides, dict):
            raise ValueError(f"--config_overrides must be a JSON object, got {args.config_overrides!r}")
        for name in ("batch_size", "steps", "warmup", "image_size"):
            value = getattr(args, name)
            if value is not None and value < (0 if name == "warmup" else 1):
                raise ValueError(f"--{name} must be {'0 or more' if name == 'warmup' else 'at least 1'}, got {value}")
    except ValueError as err:  # json.JSONDecodeError included
        print(f"error: {err}", file=sys.stderr)
        return 2
    base = {"device": device, "image_size": args.image_size, "backbone": args.backbone,
            "num_labels": args.num_labels, "config_overrides": overrides, "batch_size": args.batch_size or (32 if gpu else 2),
            "steps": args.steps or (20 if gpu else 3), "warmup": args.warmup if args.warmup is not None else
            (3 if gpu else 1)}
    results = []
    for method in args.methods:
        for setting in settings:
            print(f"{method} {setting} ...", file=sys.stderr, flush=True)
            result = run_child({**base, "method": method, "setting": setting}, args.timeout)
            results.append({"method": method, "setting": setting, "result": result})
    sizes = "paper sizes" if args.image_size is None else f"{args.image_size} px"
    header = (f"# Throughput ({device}, batch {base['batch_size']}, {sizes}, median of {base['steps']} steps after "
              f"{base['warmup']} warm-up)\n\n{date.today().isoformat()}, {machine(device)}; `python "
              f"benchmarks/bench_throughput.py {' '.join(sys.argv[1:] if argv is None else argv)}`".rstrip() + ".")
    text = render(results, header)
    print(text)
    args.results_dir.mkdir(parents=True, exist_ok=True)
    (args.results_dir / "throughput.md").write_text(text)
    (args.results_dir / "throughput.json").write_text(json.dumps({"settings": base, "results": results}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
