#!/usr/bin/env python
"""Images/second through mlic_hf's loading + augmentation pipeline vs a plain PIL + torchvision folder loader doing
the same transforms (resize, flip, RandAugment, Cutout, to-tensor, normalise), measured in one run.

    python benchmarks/bench_data.py [--num_images 2000] [--image_size 96] [--workers 0] [--batch_size 32]

Goal: ratio (mlic_hf / plain) >= 1.0. Prints a report; always exits 0.
"""

import argparse
import os
import random
import tempfile
import time

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--num_images", type=int, default=2000)
    parser.add_argument("--image_size", type=int, default=96)
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()

    from timm.data.auto_augment import rand_augment_transform
    from torchvision import transforms as T

    from mlic_hf.data import load_fashion_mosaic
    from mlic_hf.data.transforms import (
        AugmentationConfig,
        BatchTransform,
        Cutout,
        TrainTransform,
        collate_fn,
        with_index_column,
    )

    cache = tempfile.mkdtemp(prefix="bench-data-")
    data = load_fashion_mosaic(num_train=args.num_images, num_validation=1, num_test=1, cache_dir=cache)["train"]
    mean, std = (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)
    config = AugmentationConfig(image_size=args.image_size, mean=mean, std=std, rand_augment="rand-m9-mstd0.5",
                                cutout=0.5, hflip=0.5)
    ours = with_index_column(data).with_transform(BatchTransform(TrainTransform(config)))

    # the same images as PNG files in a folder, read by a plain PIL + torchvision Dataset
    folder = os.path.join(cache, "folder")
    os.makedirs(folder)
    raw = data.cast_column("image", data.features["image"].__class__(decode=False))
    files = []
    for i, row in enumerate(raw):
        path = os.path.join(folder, f"{i:06d}.png")
        with open(path, "wb") as handle:
            handle.write(row["image"]["bytes"])
        files.append((path, np.asarray(row["labels"], dtype=np.float32)))

    rand_augment = rand_augment_transform("rand-m9-mstd0.5", {"translate_const": int(args.image_size * 0.45),
                                                              "img_mean": (128, 128, 128)})
    cutout = Cutout(0.5)
    plain_transform = T.Compose([
        T.Resize((args.image_size, args.image_size), interpolation=T.InterpolationMode.BILINEAR),
        T.RandomHorizontalFlip(),
        rand_augment,
        lambda im: cutout(im, random),
        T.ToTensor(),
        T.Normalize(mean, std),
    ])

    class PlainFolder(Dataset):
        def __len__(self):
            return len(files)

        def __getitem__(self, index):
            path, labels = files[index]
            with Image.open(path) as image:
                image = image.convert("RGB")
            return {"pixel_values": plain_transform(image), "labels": torch.from_numpy(labels)}

    def throughput(dataset, collate):
        best = 0.0
        for _ in range(args.repeats):
            loader = DataLoader(dataset, batch_size=args.batch_size, shuffle=True, num_workers=args.workers,
                                collate_fn=collate)
            start = time.perf_counter()
            count = sum(batch["pixel_values"].shape[0] for batch in loader)
            best = max(best, count / (time.perf_counter() - start))
        return best

    plain = throughput(PlainFolder(), None)
    ours_rate = throughput(ours, collate_fn)
    ratio = ours_rate / plain
    print(f"images: {args.num_images}, size {args.image_size}, batch {args.batch_size}, workers {args.workers}")
    print(f"plain PIL + torchvision folder loader: {plain:8.1f} images/s")
    print(f"mlic_hf HF-datasets pipeline:          {ours_rate:8.1f} images/s")
    print(f"ratio mlic_hf / plain: {ratio:.2f}x  (goal >= 1.0x: {'PASS' if ratio >= 1.0 else 'FAIL'})")


if __name__ == "__main__":
    main()
