#!/usr/bin/env python
"""Images/second of the training input pipeline (read, decode, augment, batch) for the same parquet shards, streamed
(``--streaming``: :class:`~mlic_hf.data.streaming.StreamingTrainSet`) vs loaded to disk first (the map-style
``--dataset_name parquet`` path), with 0 and 2 DataLoader workers, measured in one run; and the start-up of each (row
counting, opening the stream and its first batch vs converting the files to a fresh 🤗 Datasets cache).

    python benchmarks/bench_streaming.py [--num_images 2000] [--shards 8] [--image_size 224] [--workers 0 2]
    python benchmarks/bench_streaming.py --smoke --output_dir /tmp/results   # seconds: a test of the script

Every comparison goes through ``_common.compare``: warm-up calls of each, then interleaved repetitions (on disk first
in even rounds, streamed first in odd ones), min/median/spread. Throughput: one call is one epoch through a fresh
DataLoader iterator, which must deliver every image once; the ratio is on-disk epoch time / streamed epoch time
(= streamed images/s over on-disk images/s; above 1: streaming is faster), a difference only when its whole range
(``ratio_low`` .. ``ratio_high``) is on one side of 1. Goal: streaming costs at most ~10% of the on-disk throughput
(ratio >= 0.9, "met" only when ``ratio_low`` >= 0.9), so that a run may stream without slowing down. Start-up: one
call builds the dataset from scratch (on disk: into a new cache folder each time, so every call converts the files).

Run it alone. Writes ``<output_dir>/streaming.json`` (provenance, summaries, ratios, verdicts) and ``streaming.md``.
"""

from __future__ import annotations

import argparse
import itertools
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))  # _common.py beside this script, also when a test loads it
from _common import (RESULTS, VERDICT_NAMES, check_minimum, compare, comparison_row, describe, judge_goal,  # noqa: E402
                     provenance, publish)

from mlic_hf.cli import script_entry  # noqa: E402

NAME = "streaming"
GOAL = 0.9
SMOKE = {"num_images": 40, "shards": 3, "image_size": 32, "batch_size": 8, "workers": [0], "repeats": 3, "warmup": 1}
#: ``compare``'s verdicts with the pipelines named (A is on disk, B streamed)
VERDICTS = VERDICT_NAMES["streaming"]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--num_images", type=int, default=2000)
    parser.add_argument("--shards", type=int, default=8)
    parser.add_argument("--image_size", type=int, default=224)
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2], help="DataLoader workers of both pipelines")
    parser.add_argument("--repeats", type=int, default=5, help="interleaved timed epochs (start-ups) of each")
    parser.add_argument("--warmup", type=int, default=1, help="untimed epochs (start-ups) of each first")
    parser.add_argument("--smoke", action="store_true", help=f"a tiny run for tests: {SMOKE}")
    parser.add_argument("--output_dir", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if args.smoke:
        vars(args).update(SMOKE)
    check_minimum(args, ("num_images", "shards", "image_size", "batch_size", "repeats"), 1)
    check_minimum(args, ("warmup",), 0)
    if min(args.workers) < 0:
        raise ValueError(f"--workers must be at least 0, got {args.workers}")
    if args.shards > args.num_images:
        raise ValueError(f"--shards must be at most --num_images, got {args.shards} and {args.num_images}")
    return args


def epoch(dataset: Any, set_epoch: Callable[[int], None], workers: int, shuffle: bool,
          args: argparse.Namespace) -> Callable[[], None]:
    """One epoch through a fresh DataLoader iterator (as each training epoch builds one), the augmentation moved to
    the next epoch first; it must deliver every image once, or the two sides would not be doing the same work."""
    from mlic_hf.data.transforms import collate_fn

    loader = torch.utils.data.DataLoader(dataset, batch_size=args.batch_size, num_workers=workers, shuffle=shuffle,
                                         collate_fn=collate_fn)
    epochs = itertools.count(1)

    def run() -> None:
        set_epoch(next(epochs))
        images = sum(len(batch["pixel_values"]) for batch in loader)
        if images != args.num_images:
            raise RuntimeError(f"an epoch gave {images} images, expected {args.num_images}")

    return run


def measure(args: argparse.Namespace) -> dict[str, Any]:
    import datasets

    from mlic_hf.data import load_fashion_mosaic
    from mlic_hf.data.hf_dataset import HFDatasetArguments, load_hf_dataset
    from mlic_hf.data.streaming import load_streaming_train, resolve_streaming_source, write_parquet_shards
    from mlic_hf.data.transforms import (AugmentationConfig, BatchTransform, TrainTransform, defer_image_decoding,
                                         with_index_column)

    with tempfile.TemporaryDirectory(prefix="bench-streaming-") as tmp:
        mosaic = load_fashion_mosaic(num_train=args.num_images, num_validation=8, num_test=8, seed=0,
                                     cache_dir=str(Path(tmp) / "mosaic"))
        files = write_parquet_shards(mosaic["train"], Path(tmp) / "shards", args.shards)
        config = AugmentationConfig(image_size=args.image_size)
        caches = itertools.count()
        previous_cache = datasets.config.HF_DATASETS_CACHE
        built: dict[str, Any] = {}

        def load_on_disk() -> None:  # a first load: the files are converted into a new cache folder
            datasets.config.HF_DATASETS_CACHE = Path(tmp) / f"cache-{next(caches)}"
            built["on disk"] = load_hf_dataset("parquet", data_files={"train": files}, train_val_split=None)["train"]

        def open_stream() -> None:  # row counts, the stream, and its first batch
            source = resolve_streaming_source("parquet", data_files={"train": files})
            stream = load_streaming_train(HFDatasetArguments(dataset_name="parquet"), source)
            transform = BatchTransform(TrainTransform(config))
            stream = stream.with_transform(transform).for_process(0, 1, args.batch_size)
            next(iter(stream))
            built["streamed"] = stream

        try:
            startup = compare(load_on_disk, open_stream, repeats=args.repeats, warmup=args.warmup)
        finally:
            datasets.config.HF_DATASETS_CACHE = previous_cache
        disk_transform = BatchTransform(TrainTransform(config))
        on_disk = with_index_column(defer_image_decoding(built["on disk"])).with_transform(disk_transform)
        stream = built["streamed"]
        throughput = {}
        for workers in args.workers:
            c = compare(epoch(on_disk, disk_transform.set_epoch, workers, True, args),
                        epoch(stream, stream.set_epoch, workers, False, args), repeats=args.repeats,
                        warmup=args.warmup)
            c["goal"], c["goal_met"] = f"ratio >= {GOAL}", judge_goal(c, at_least=GOAL)
            c["images_per_s"] = {"on disk": args.num_images / c["a"]["median"],
                                 "streamed": args.num_images / c["b"]["median"]}
            throughput[f"{workers} workers"] = c
    return {"startup": startup, "throughput": throughput}


def markdown(results: dict[str, Any]) -> str:
    s = results["settings"]
    lines = [f"# Streaming vs on-disk input pipeline ({describe(results['provenance'])})", "",
             f"{s['num_images']} Fashion-MNIST mosaics in {s['shards']} parquet shards, {s['image_size']} px, "
             f"RandAugment + Cutout, batches of {s['batch_size']}; {s['repeats']} interleaved epochs (start-ups) of "
             f"each after {s['warmup']} warm-up. Ratio = on-disk time / streamed time (above 1: streaming faster) "
             "with its range from the spread; goal: streaming keeps at least 90% of the on-disk images/s.", "",
             "| DataLoader workers | on disk: epoch s | streamed: epoch s | ratio (range) | verdict | images/s on disk "
             "→ streamed (medians) | goal | goal met |", "|---|---:|---:|---:|---|---:|---|---|"]
    for name, c in results["throughput"].items():
        rates = c["images_per_s"]
        lines.append(comparison_row(name.split()[0], c, digits=3, unit_scale=1, verdicts=VERDICTS,
                                    extra=[f"{rates['on disk']:.0f} → {rates['streamed']:.0f}", c["goal"],
                                           c["goal_met"]]))
    lines += ["", "| start-up | on disk s | streamed s | ratio (range) | verdict |", "|---|---:|---:|---:|---|",
              comparison_row("build the dataset", results["startup"], digits=3, unit_scale=1, verdicts=VERDICTS)]
    return "\n".join(lines) + "\n"


@script_entry()
def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.manual_seed(0)
    results = {"provenance": provenance(argv, __file__),
               "settings": {k: getattr(args, k) for k in ("num_images", "shards", "image_size", "batch_size",
                                                          "workers", "repeats", "warmup", "smoke")}}
    results.update(measure(args))
    publish(NAME, results, markdown(results), folder=args.output_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
