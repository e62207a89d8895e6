"""WebDataset copies of an ``mlic_hf`` dataset split, as users stream them (``--streaming``): tar archives of uneven
sizes holding ``KEY.png`` and ``KEY.labels.json`` (a JSON list of label names). Parquet shards come from the
library's :func:`mlic_hf.data.streaming.write_parquet_shards`."""

from __future__ import annotations

import io
import json
import tarfile
from collections.abc import Sequence
from pathlib import Path

import datasets


def write_webdataset_shards(split: datasets.Dataset, folder: Path, sizes: Sequence[int], prefix: str = "train") -> list[str]:
    """``split`` as WebDataset tar archives of ``sizes`` samples each: ``KEY.png`` and ``KEY.labels.json`` (a list of
    label names) per sample, the key being the ``image_id``."""
    if sum(sizes) != len(split):
        raise ValueError(f"shard sizes {list(sizes)} do not add up to {len(split)} rows")
    folder.mkdir(parents=True, exist_ok=True)
    names = split.features["label_ids"].feature.names
    rows = split.cast_column("image", datasets.Image(decode=False))
    paths, start = [], 0
    for number, size in enumerate(sizes):
        path = folder / f"{prefix}-{number:05d}.tar"
        with tarfile.open(path, "w") as archive:
            for row in rows.select(range(start, start + size)):
                labels = json.dumps([names[i] for i in row["label_ids"]]).encode()
                for suffix, data in (("png", _png_bytes(row["image"])), ("labels.json", labels)):
                    member = tarfile.TarInfo(f"{row['image_id']}.{suffix}")
                    member.size = len(data)
                    archive.addfile(member, io.BytesIO(data))
        paths.append(str(path))
        start += size
    return paths


def _png_bytes(image: dict) -> bytes:
    if image.get("bytes") is not None and image["bytes"][:8] == b"\x89PNG\r\n\x1a\n":
        return image["bytes"]
    from PIL import Image

    source = io.BytesIO(image["bytes"]) if image.get("bytes") is not None else image["path"]
    out = io.BytesIO()
    Image.open(source).save(out, "PNG")
    return out.getvalue()
