#!/usr/bin/env python
"""Images/second of the training input pipeline (read, decode, augment, batch) for the same parquet shards, streamed
(``--streaming``: :class:`~mlic_hf.data.streaming.StreamingTrainSet`) vs loaded to disk first (the map-style
``--dataset_name parquet`` path), with 0 and 2 DataLoader workers, measured in one run; and the start-up of each (row
counting and opening the stream vs converting the files to the 🤗 Datasets cache).

    python benchmarks/bench_streaming.py [--num_images 2000] [--shards 8] [--image_size 224] [--workers 0 2]

Goal: streaming costs at most ~10% of the on-disk throughput (ratio >= 0.9), so that a run may stream without
slowing down. Run it alone. Writes ``benchmarks/results/streaming.md``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))  # _common.py beside this script, also when a test loads it
from _common import cpu_model  # noqa: E402


def _loader(dataset, batch_size: int, workers: int, shuffle: bool):
    from mlic_hf.data.transforms import collate_fn

    return torch.utils.data.DataLoader(dataset, batch_size=batch_size, num_workers=workers, shuffle=shuffle,
                                       collate_fn=collate_fn)


def _epoch_rate(loader, epoch_setter, expected: int) -> float:
    epoch_setter(1)
    start, images = time.perf_counter(), 0
    for batch in loader:
        images += len(batch["pixel_values"])
    if images != expected:  # a pipeline that skips or repeats images would not be measuring the same work
        raise RuntimeError(f"an epoch gave {images} images, expected {expected}")
    return images / (time.perf_counter() - start)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--num_images", type=int, default=2000)
    parser.add_argument("--shards", type=int, default=8)
    parser.add_argument("--image_size", type=int, default=224)
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    parser.add_argument("--output", default=str(Path(__file__).parent / "results" / "streaming.md"))
    args = parser.parse_args(argv)

    from mlic_hf.data import load_fashion_mosaic
    from mlic_hf.data.hf_dataset import HFDatasetArguments, load_hf_dataset
    from mlic_hf.data.streaming import load_streaming_train, resolve_streaming_source, write_parquet_shards
    from mlic_hf.data.transforms import (AugmentationConfig, BatchTransform, TrainTransform, defer_image_decoding,
                                         with_index_column)

    mosaic = load_fashion_mosaic(num_train=args.num_images, num_validation=8, num_test=8, seed=0)
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        files = write_parquet_shards(mosaic["train"], Path(tmp) / "shards", args.shards)
        transform = TrainTransform(AugmentationConfig(image_size=args.image_size))
        import datasets

        datasets.config.HF_DATASETS_CACHE = Path(tmp) / "cache"  # a first load: the files are converted
        start = time.perf_counter()
        on_disk = load_hf_dataset("parquet", data_files={"train": files}, train_val_split=None)["train"]
        rows["start-up"] = {"on disk": time.perf_counter() - start}
        on_disk = with_index_column(defer_image_decoding(on_disk)).with_transform(BatchTransform(transform))
        start = time.perf_counter()
        source = resolve_streaming_source("parquet", data_files={"train": files})
        stream = load_streaming_train(HFDatasetArguments(dataset_name="parquet"), source)
        stream = stream.with_transform(BatchTransform(transform)).for_process(0, 1, args.batch_size)
        next(iter(stream))
        rows["start-up"]["streamed"] = time.perf_counter() - start
        for workers in args.workers:
            disk_loader = _loader(on_disk, args.batch_size, workers, shuffle=True)
            stream_loader = _loader(stream, args.batch_size, workers, shuffle=False)
            rates = {"on disk": [], "streamed": []}
            for _ in range(2):  # alternate, so that both see the same machine state
                rates["on disk"].append(_epoch_rate(disk_loader, lambda e: setattr(transform, "epoch", e),
                                                    args.num_images))
                rates["streamed"].append(_epoch_rate(stream_loader, stream.set_epoch, args.num_images))
            rows[f"{workers} workers"] = {k: max(v) for k, v in rates.items()}
    _report(args, rows)
    return 0


def _report(args, rows: dict) -> None:
    lines = [f"# Streaming vs on-disk input pipeline ({date.today()}, {cpu_model()}, {torch.get_num_threads()} threads)", "",
             f"{args.num_images} Fashion-MNIST mosaics in {args.shards} parquet shards, {args.image_size} px, "
             f"RandAugment + Cutout, batches of {args.batch_size}; best of 2 epochs.", "",
             "| setting | on disk | streamed | streamed / on disk |", "|---|---|---|---|"]
    startup = rows.pop("start-up")
    lines.append(f"| start-up (s) | {startup['on disk']:.2f} | {startup['streamed']:.2f} | "
                 f"{startup['streamed'] / startup['on disk']:.2f}× |")
    for name, rates in rows.items():
        lines.append(f"| {name}: images/s | {rates['on disk']:.0f} | {rates['streamed']:.0f} | "
                     f"{rates['streamed'] / rates['on disk']:.2f}× |")
    text = "\n".join(lines) + "\n"
    print(text)
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(text)
    Path(args.output).with_suffix(".json").write_text(json.dumps({"startup_s": startup, "images_per_s": rows},
                                                                  indent=2))


if __name__ == "__main__":
    sys.exit(main())
