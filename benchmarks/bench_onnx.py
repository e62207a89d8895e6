#!/usr/bin/env python
"""onnxruntime vs PyTorch CPU latency per method, at batch 1 and 8, on the model zoo's trained checkpoints.

    python benchmarks/bench_onnx.py                               # the zoo's M1, M2, M4 and ML-VPT (seed 0)
    python benchmarks/bench_onnx.py --checkpoints mine=outputs/run --repeats 50
    python benchmarks/bench_onnx.py --smoke --output_dir /tmp/results   # a tiny random M1: a test of the script

Each checkpoint is exported (``mlic_hf.export.export_onnx``) into ``--work_dir``; both runtimes then predict the same
preprocessed batch with the same number of threads (``--threads``, default: the CPU count), timed through
``_common.compare``: warm-up runs of each, then interleaved repetitions (PyTorch first in even rounds, onnxruntime
first in odd ones), min/median/spread. The ratio is PyTorch's median over onnxruntime's (above 1: onnxruntime is
faster) and a difference only when its whole range (``ratio_low`` .. ``ratio_high``) is on one side of 1. Run it
alone: another process on the same cores distorts both. Writes ``<output_dir>/onnx.json`` (provenance, summaries,
ratios, verdicts) and ``onnx.md``.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))  # _common.py beside this script, also when a test loads it
from _common import (REPO, RESULTS, VERDICT_NAMES, compare, comparison_row, describe, provenance, publish,  # noqa: E402
                     torch_threads)

from mlic_hf.cli import script_entry  # noqa: E402

NAME = "onnx"
ZOO_ROWS = {"M1": "m1", "M2": "m2-irpe", "M4": "m4", "ML-VPT": "ml-vpt"}
BATCHES = (1, 8)
SMOKE = {"repeats": 3, "warmup": 1, "threads": 1}
#: ``compare``'s verdicts with the runtimes named (A is PyTorch, B onnxruntime)
VERDICTS = VERDICT_NAMES["onnx"]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoints", nargs="*", default=None, metavar="NAME=PATH")
    parser.add_argument("--zoo_root", type=Path, default=REPO / "outputs" / "zoo")
    parser.add_argument("--work_dir", type=Path, default=REPO / "outputs" / "onnx-bench")
    parser.add_argument("--repeats", type=int, default=30, help="interleaved timed runs per runtime and batch size")
    parser.add_argument("--warmup", type=int, default=3,
                        help="untimed runs of each first (allocations, onnxruntime's first-run optimisations)")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--smoke", action="store_true",
                        help="a tiny random-init M1 checkpoint (resnet18, 64 px) built in --work_dir, few repeats")
    parser.add_argument("--output_dir", "--results_dir", dest="output_dir", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if args.smoke:
        vars(args).update(SMOKE)
    if args.repeats < 1 or args.threads < 1 or args.warmup < 0:
        raise ValueError(f"--repeats and --threads must be at least 1 and --warmup at least 0, got {args.repeats}, "
                         f"{args.threads} and {args.warmup}")
    return args


def resolve_checkpoints(args: argparse.Namespace) -> dict[str, Path]:
    if args.smoke and not args.checkpoints:
        return {"tiny-M1": tiny_checkpoint(args.work_dir / "tiny-m1-checkpoint")}
    if args.checkpoints:
        pairs = {}
        for item in args.checkpoints:
            name, sep, path = item.partition("=")
            if not sep or not name or not path:
                raise ValueError(f"--checkpoints takes NAME=PATH items, got {item!r}")
            pairs[name] = Path(path)
    else:
        pairs = {name: args.zoo_root / row / "seed0" for name, row in ZOO_ROWS.items()}
        pairs = {name: path for name, path in pairs.items() if (path / "config.json").is_file()}
        if not pairs:
            raise ValueError(f"no zoo checkpoints under {args.zoo_root}: run benchmarks/zoo.py --seeds 0 first, or "
                             "pass --checkpoints NAME=PATH")
    for name, path in pairs.items():
        if not (path / "config.json").is_file():
            raise ValueError(f"{name}: {path} is not a checkpoint folder (no config.json)")
    return pairs


def tiny_checkpoint(folder: Path) -> Path:
    """A random-init M1 (ResNet-18, 64 px, 4 labels) saved in ``folder``: every step of the benchmark in seconds."""
    import torch

    import mlic_hf

    torch.manual_seed(0)
    config = mlic_hf.ResNetProbabilisticConfig(backbone="resnet18", image_size=64, num_labels=4)
    mlic_hf.ResNetProbabilisticForMultiLabelImageClassification(config).save_pretrained(folder)
    return folder


def bench_checkpoint(name: str, path: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Export ``path`` and compare PyTorch (A) with onnxruntime (B) at every batch size."""
    import torch

    from mlic_hf.export import ONNXMultiLabelClassifier, export_onnx
    from mlic_hf.inference import load_checkpoint

    model, processor = load_checkpoint(str(path))
    folder = args.work_dir / name.replace("/", "_")
    export_onnx(model, folder, processor)
    runner = ONNXMultiLabelClassifier(folder, threads=args.threads)
    size = model.config.image_size
    row: dict[str, Any] = {"checkpoint": str(path), "image_size": size,
                           "parameters": sum(p.numel() for p in model.parameters()), "batches": {}}
    for batch in BATCHES:
        pixels = torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(batch))
        array = pixels.numpy()

        def pytorch() -> None:
            with torch.inference_mode():
                model(pixel_values=pixels)

        row["batches"][str(batch)] = compare(pytorch, lambda: runner.logits(array), repeats=args.repeats,
                                             warmup=args.warmup)
    return row


def markdown(results: dict[str, Any]) -> str:
    s = results["settings"]
    lines = [f"# onnxruntime vs PyTorch CPU latency ({describe(results['provenance'])})", "",
             f"{s['threads']} threads; median ms per batch (min–max) of {s['repeats']} interleaved runs after "
             f"{s['warmup']} warm-up; ratio = PyTorch / onnxruntime (above 1: onnxruntime faster) with its range "
             "from the spread.", "",
             "| model | image | batch | PyTorch ms | ONNX ms | ratio (range) | verdict |",
             "|---|---:|---:|---:|---:|---:|---|"]
    lines += [comparison_row((name, r["image_size"], batch), c, verdicts=VERDICTS)
              for name, r in results["rows"].items() for batch, c in r["batches"].items()]
    return "\n".join(lines) + "\n"


@script_entry()
def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    checkpoints = resolve_checkpoints(args)
    results: dict[str, Any] = {"provenance": provenance(argv, __file__),
                               "settings": {k: getattr(args, k) for k in ("threads", "repeats", "warmup", "smoke")},
                               "rows": {}}
    with torch_threads(args.threads):  # restored after: a test calling main must not leave other settings
        for name, path in checkpoints.items():
            results["rows"][name] = bench_checkpoint(name, path, args)
    publish(NAME, results, markdown(results), folder=args.output_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
