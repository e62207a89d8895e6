"""The streamed training split (``mlic_hf.data.streaming``): the epoch plan (hand-computed segments, every row once
per epoch across processes and workers, padding and ``drop_last``), shard row counts, rows and labels equal to the
on-disk split's, per-sample augmentation with DataLoader workers, WebDataset shards, and one clear error per
mistake."""

import json

import datasets
import numpy as np
import pytest
import torch

from mlic_hf.data import load_fashion_mosaic
from mlic_hf.data.hf_dataset import HFDatasetArguments, load_hf_dataset
from mlic_hf.data.streaming import (
    Segment,
    count_rows,
    load_streaming_train,
    process_range,
    resolve_streaming_source,
    segments,
    worker_range,
    write_parquet_shards,
)
from mlic_hf.data.transforms import AugmentationConfig, BatchTransform, TrainTransform, collate_fn

from .shards import write_webdataset_shards

SIZES = [7, 12, 13]


@pytest.fixture(scope="module")
def mosaic(tmp_path_factory):
    return load_fashion_mosaic(num_train=32, num_validation=8, num_test=8, seed=0,
                               cache_dir=tmp_path_factory.mktemp("mosaic"))


@pytest.fixture(scope="module")
def parquet(mosaic, tmp_path_factory):
    folder = tmp_path_factory.mktemp("parquet")
    return write_parquet_shards(mosaic["train"], folder, SIZES)


@pytest.fixture(scope="module")
def tars(mosaic, tmp_path_factory):
    folder = tmp_path_factory.mktemp("tars")
    return write_webdataset_shards(mosaic["train"], folder, SIZES)


def _stream(files, builder="parquet", **args):
    options = HFDatasetArguments(dataset_name=builder, data_files=json.dumps({"train": files}), **args)
    source = resolve_streaming_source(builder, data_files={"train": files})
    return load_streaming_train(options, source, seed=0, shuffle_buffer_size=4)


def test_segments_hand_computed():
    # files in the order 2, 0, 1: positions 0-12 are file 2, 13-19 file 0, 20-31 file 1
    assert segments(SIZES, [2, 0, 1], 5, 20) == [Segment(2, 5, 13), Segment(0, 0, 7)]
    assert segments(SIZES, [2, 0, 1], 13, 21) == [Segment(0, 0, 7), Segment(1, 0, 1)]
    # past the last row the positions wrap around to the first (padding)
    assert segments([3, 2], [0, 1], 4, 7) == [Segment(1, 1, 2), Segment(0, 0, 2)]
    assert process_range(33, 1, 2) == (17, 34) and process_range(33, 1, 2, drop_last=True) == (16, 32)
    # 17 rows in batches of 4 = 5 batches, over 2 workers: 2 and 3 whole batches
    assert worker_range(17, 34, 4, 0, 2) == (17, 25) and worker_range(17, 34, 4, 1, 2) == (25, 34)


@pytest.mark.parametrize("world_size,num_workers,batch_size", [(1, 1, 4), (2, 1, 4), (2, 3, 4), (4, 2, 3)])
def test_every_row_once_per_epoch(world_size, num_workers, batch_size):
    counts = SIZES
    offsets = np.concatenate([[0], np.cumsum(counts)[:-1]])
    from mlic_hf.data.streaming import epoch_file_order

    orders = []
    for epoch in (0, 1, 2):
        seen = []
        order = epoch_file_order(len(counts), seed=0, epoch=epoch)
        orders.append(order.tolist())
        for rank in range(world_size):
            start, stop = process_range(sum(counts), rank, world_size)
            for worker in range(num_workers):
                a, b = worker_range(start, stop, batch_size, worker, num_workers)
                assert (a - start) % batch_size == 0  # every worker starts at a batch boundary
                seen += [offsets[s.file] + row for s in segments(counts, order, a, b) for row in range(s.start, s.stop)]
        assert sorted(seen) == list(range(32))
    assert len({tuple(o) for o in orders}) > 1  # the file order changes with the epoch


def test_uneven_total_pads_or_drops():
    counts, seen = [7, 12, 14], {False: [], True: []}  # 33 rows on 2 processes
    for drop_last in (False, True):
        for rank in (0, 1):
            start, stop = process_range(33, rank, 2, drop_last)
            seen[drop_last] += [(s.file, r) for s in segments(counts, [0, 1, 2], start, stop)
                                for r in range(s.start, s.stop)]
    assert len(seen[False]) == 34 and len(set(seen[False])) == 33  # one row twice, as DistributedSampler pads
    assert len(seen[True]) == 32 and len(set(seen[True])) == 32  # one row left out


def test_row_counts(parquet, tars, tmp_path):
    assert count_rows("parquet", parquet) == SIZES
    assert count_rows("webdataset", tars) == SIZES
    broken = tmp_path / "broken.parquet"
    broken.write_bytes(b"not a parquet file")
    with pytest.raises(ValueError, match="broken.parquet: cannot read its parquet row count"):
        count_rows("parquet", [parquet[0], str(broken)])


def test_rows_and_labels_match_the_on_disk_split(parquet, mosaic):
    stream = _stream(parquet)
    assert len(stream) == stream.num_rows == 32
    on_disk = load_hf_dataset("parquet", data_files={"train": parquet}, train_val_split=None)["train"]
    rows = list(stream)
    assert sorted(r["__index__"] for r in rows) == list(range(32))
    for row in rows:  # row numbers are the on-disk split's (the augmentation seed), labels the same
        assert row["image_id"] == on_disk[row["__index__"]]["image_id"]
        np.testing.assert_array_equal(row["labels"], on_disk[row["__index__"]]["labels"])
    assert [r["image_id"] for r in rows] != list(on_disk["image_id"])  # the shuffle buffer mixed them
    assert stream.features["label_ids"].feature.names == mosaic["train"].features["label_ids"].feature.names
    np.testing.assert_array_equal(stream.labels_dataset()["labels"], on_disk["labels"])
    assert len(stream.truncated(10)) == 10 and len(stream.truncated(10).files) == 2


def test_workers_read_every_row_with_the_same_augmentation(parquet):
    transform = TrainTransform(AugmentationConfig(image_size=24, rand_augment="rand-m9-mstd0.5", cutout=0.5))
    stream = _stream(parquet).with_transform(BatchTransform(transform)).for_process(0, 1, batch_size=5)
    by_workers = {}
    for workers in (0, 2):
        stream.set_epoch(1)
        loader = torch.utils.data.DataLoader(stream, batch_size=5, num_workers=workers,
                                             collate_fn=lambda rows: rows)
        batches = list(loader)
        assert len(batches) == len(loader) == 7  # 32 rows in batches of 5, each batch made by one worker
        by_workers[workers] = {row["image_id"]: row["pixel_values"] for batch in batches for row in batch}
    assert len(by_workers[0]) == 32 and by_workers[0].keys() == by_workers[2].keys()
    for image_id, pixels in by_workers[0].items():
        torch.testing.assert_close(by_workers[2][image_id], pixels, rtol=0, atol=0)
    stream.set_epoch(2)  # another epoch: other augmentations
    first = {row["image_id"]: row["pixel_values"] for row in stream}
    assert sum(not torch.equal(first[i], by_workers[0][i]) for i in first) >= 28
    batch = collate_fn(list(stream)[:4])
    assert batch["pixel_values"].shape == (4, 3, 24, 24) and batch["labels"].shape == (4, 10)


def test_webdataset_shards(tars, parquet, mosaic):
    names = mosaic["train"].features["label_ids"].feature.names
    with pytest.raises(ValueError, match="label column 'labels.json' holds label names.*--label_names"):
        _stream(tars, "webdataset", image_column_name="png", label_column_name="labels.json")
    stream = _stream(tars, "webdataset", image_column_name="png", label_column_name="labels.json",
                     label_names=json.dumps(names))
    from_parquet = {r["image_id"]: r for r in _stream(parquet)}
    rows = list(stream)
    assert len(rows) == 32
    for row in rows:  # the WebDataset key is the image id; same row numbers and labels as the parquet shards
        twin = from_parquet[row["image_id"]]
        assert row["__index__"] == twin["__index__"]
        np.testing.assert_array_equal(row["labels"], twin["labels"])


def test_webdataset_shard_without_the_image_field_is_named_at_start(tars, mosaic, tmp_path):
    import shutil
    import tarfile

    names = mosaic["train"].features["label_ids"].feature.names
    renamed = tmp_path / "train-renamed.tar"
    with tarfile.open(tars[1]) as source, tarfile.open(renamed, "w") as target:
        for member in source.getmembers():  # every image stored as .jpeg instead of .png
            data = source.extractfile(member)
            member.name = member.name.replace(".png", ".jpeg")
            target.addfile(member, data)
    files = [tars[0], str(renamed), shutil.copy(tars[2], tmp_path)]
    assert count_rows("webdataset", files) == SIZES
    with pytest.raises(ValueError, match=r"shard .*train-renamed.tar has no column 'png' \(its columns: "
                                         r"\['__key__', '__url__', 'jpeg', 'labels.json'\]"):
        _stream(files, "webdataset", image_column_name="png", label_column_name="labels.json",
                label_names=json.dumps(names))


def test_clear_errors(parquet, tmp_path):
    with pytest.raises(ValueError, match="parquet or webdataset shards.*'csv' builder"):
        (tmp_path / "a.csv").write_text("image,labels\nx.png,cat\n")
        resolve_streaming_source("csv", data_files={"train": str(tmp_path / "a.csv")})
    saved = tmp_path / "saved"
    datasets.Dataset.from_dict({"x": [1]}).save_to_disk(str(saved))
    with pytest.raises(ValueError, match="save_to_disk.*without --streaming"):
        resolve_streaming_source(str(saved))
    with pytest.raises(ValueError, match="--data_files"):
        resolve_streaming_source("parquet")
    with pytest.raises(ValueError, match="fewer than the 40 processes"):
        _stream(parquet).for_process(0, 40, batch_size=1)


def test_write_parquet_shards(mosaic, tmp_path):
    paths = write_parquet_shards(mosaic["train"], tmp_path / "even", 5)
    assert [p.rsplit("/", 1)[1] for p in paths][:2] == ["train-00000-of-00005.parquet", "train-00001-of-00005.parquet"]
    assert count_rows("parquet", paths) == [7, 7, 6, 6, 6]
    back = load_hf_dataset("parquet", data_files={"train": paths}, train_val_split=None)["train"]
    assert back["image_id"] == mosaic["train"]["image_id"]
    np.testing.assert_array_equal(back["labels"], mosaic["train"]["labels"])
    with pytest.raises(ValueError, match="do not divide the split's 32 rows"):
        write_parquet_shards(mosaic["train"], tmp_path / "bad", [10, 10])
    masked = mosaic["train"].add_column("ignore_mask", [[i == 0] * 10 for i in range(32)])
    with pytest.raises(ValueError, match="unknown labels"):
        write_parquet_shards(masked, tmp_path / "masked", 2)


def test_an_undecodable_image_names_its_shard_and_row(mosaic, tmp_path):
    paths = write_parquet_shards(mosaic["train"], tmp_path, [16, 16])
    shard = datasets.load_dataset("parquet", data_files=paths[1], split="train").cast_column(
        "image", datasets.Image(decode=False))
    rows = shard.to_dict()
    rows["image"][5] = {"bytes": rows["image"][5]["bytes"][:60], "path": None}  # a truncated PNG
    datasets.Dataset.from_dict(rows, features=shard.features).to_parquet(paths[1])
    transform = BatchTransform(TrainTransform(AugmentationConfig(image_size=16)))
    stream = _stream(paths).with_transform(transform)
    bad = rows["image_id"][5]
    with pytest.raises(ValueError, match=rf"image '{bad}' \(row 5 of .*train-00001-of-00002.parquet\): cannot decode"):
        list(stream)


def test_shards_on_a_remote_filesystem(parquet, tars):
    """Shards behind an fsspec URL (``memory://`` standing in for ``hf://`` or ``s3://``: the same code path, row
    counts from the remote footers and tar headers) stream the same rows as local ones."""
    import fsspec

    memory = fsspec.filesystem("memory")
    for path in parquet + tars:
        memory.pipe(f"/remote/{path.rsplit('/', 1)[1]}", open(path, "rb").read())
    remote = _stream(["memory://remote/train-*.parquet"])
    assert remote.files[0].startswith("memory://") and remote.counts == SIZES
    local = {r["image_id"]: r["__index__"] for r in _stream(parquet)}
    assert {r["image_id"]: r["__index__"] for r in remote} == local
    assert count_rows("webdataset", [f"memory://remote/{t.rsplit('/', 1)[1]}" for t in tars]) == SIZES
