"""onnxruntime vs PyTorch CPU latency per method, at batch 1 and 8, on the model zoo's trained checkpoints.

    python benchmarks/bench_onnx.py                               # the zoo's M1, M2, M4 and ML-VPT (seed 0)
    python benchmarks/bench_onnx.py --checkpoints mine=outputs/run --repeats 50

Each checkpoint is exported (``mlic_hf.export.export_onnx``) into ``--work_dir``; both runtimes then predict the same
preprocessed batch, alternately, with the same number of threads (``--threads``, default: the CPU count), after
warm-up runs; the table gives the median milliseconds per batch and PyTorch's time over onnxruntime's (above 1:
onnxruntime is faster). Run it alone: another process on the same cores distorts both. Writes
``benchmarks/results/onnx.md`` and ``onnx.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from datetime import date
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
ZOO_ROWS = {"M1": "m1", "M2": "m2-irpe", "M4": "m4", "ML-VPT": "ml-vpt"}
BATCHES = (1, 8)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoints", nargs="*", default=None, metavar="NAME=PATH")
    parser.add_argument("--zoo_root", type=Path, default=REPO / "outputs" / "zoo")
    parser.add_argument("--work_dir", type=Path, default=REPO / "outputs" / "onnx-bench")
    parser.add_argument("--repeats", type=int, default=30, help="timed runs per runtime and batch size")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--results_dir", type=Path, default=REPO / "benchmarks" / "results")
    return parser.parse_args(argv)


def resolve_checkpoints(args) -> dict[str, Path]:
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


def median_ms(function, repeats: int) -> float:
    for _ in range(3):  # warm-up: allocations, onnxruntime's first-run optimisations
        function()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return 1000 * float(np.median(times))


def bench_checkpoint(name: str, path: Path, args) -> dict:
    import torch

    from mlic_hf.export import ONNXMultiLabelClassifier, export_onnx
    from mlic_hf.inference import load_checkpoint

    model, processor = load_checkpoint(str(path))
    folder = args.work_dir / name.replace("/", "_")
    export_onnx(model, folder, processor)
    runner = ONNXMultiLabelClassifier(folder, threads=args.threads)
    size = model.config.image_size
    row = {"checkpoint": str(path), "image_size": size, "parameters": sum(p.numel() for p in model.parameters())}
    for batch in BATCHES:
        pixels = torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(batch))
        array = pixels.numpy()

        def pytorch():
            with torch.inference_mode():
                model(pixel_values=pixels)

        row[f"torch_ms_b{batch}"] = median_ms(pytorch, args.repeats)
        row[f"onnx_ms_b{batch}"] = median_ms(lambda: runner.logits(array), args.repeats)
        row[f"speedup_b{batch}"] = row[f"torch_ms_b{batch}"] / row[f"onnx_ms_b{batch}"]
    return row


def write_results(results: dict, args) -> None:
    args.results_dir.mkdir(parents=True, exist_ok=True)
    (args.results_dir / "onnx.json").write_text(json.dumps(results, indent=2) + "\n")
    lines = [f"# onnxruntime vs PyTorch CPU latency ({results['date']}, {results['machine']}, "
             f"{results['threads']} threads)", "",
             "Median ms per batch; speed-up = PyTorch / onnxruntime.", "",
             "| model | image | PyTorch b1 | ONNX b1 | speed-up b1 | PyTorch b8 | ONNX b8 | speed-up b8 |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for name, r in results["rows"].items():
        lines.append(f"| {name} | {r['image_size']} | {r['torch_ms_b1']:.1f} | {r['onnx_ms_b1']:.1f} | "
                     f"{r['speedup_b1']:.2f}x | {r['torch_ms_b8']:.1f} | {r['onnx_ms_b8']:.1f} | "
                     f"{r['speedup_b8']:.2f}x |")
    (args.results_dir / "onnx.md").write_text("\n".join(lines) + "\n")


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        if args.repeats < 1 or args.threads < 1:
            raise ValueError("--repeats and --threads must be at least 1")
        checkpoints = resolve_checkpoints(args)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    import torch

    torch.set_num_threads(args.threads)
    rows = {}
    for name, path in checkpoints.items():
        rows[name] = bench_checkpoint(name, path, args)
        r = rows[name]
        print(f"{name:<8} b1: torch {r['torch_ms_b1']:7.1f} ms  onnx {r['onnx_ms_b1']:7.1f} ms  "
              f"({r['speedup_b1']:.2f}x)   b8: torch {r['torch_ms_b8']:7.1f} ms  onnx {r['onnx_ms_b8']:7.1f} ms  "
              f"({r['speedup_b8']:.2f}x)")
    results = {"date": date.today().isoformat(), "machine": f"{platform.processor() or platform.machine()}, "
               f"{os.cpu_count()} CPUs", "threads": args.threads, "repeats": args.repeats, "rows": rows}
    write_results(results, args)
    print(f"wrote {args.results_dir / 'onnx.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
