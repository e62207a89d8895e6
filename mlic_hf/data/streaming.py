"""Training on sharded data streamed from its files (``scripts/train.py --streaming``): parquet or WebDataset shards,
local or on the Hub, read through 🤗 Datasets' :class:`~datasets.IterableDataset` and never copied to the local disk.

Why the Trainer is not simply handed ``datasets``' IterableDataset: accelerate then gives each process whole shard
files (``IterableDataset.shard``), so processes whose files hold different numbers of rows reach the end of an epoch
at different steps (per-epoch evaluation and checkpoints then run on one process while another still trains: a hang
or wrong results), and with fewer files than processes every process reads everything. Here each epoch is planned
from the shards' row counts (parquet footers, tar member lists), which are read once at start-up:

1. every epoch the shard files are put in an order seeded by ``(seed, epoch)``, and that sequence of rows is cut into
   ``world_size`` equal contiguous ranges, one per process, of ``ceil(N / world_size)`` rows (the last range wraps
   around to the epoch's first rows, as torch's ``DistributedSampler`` pads) or ``floor`` with ``drop_last``; when
   ``N`` is a multiple of the world size every row is read exactly once per epoch, by one process;
2. a process's range is cut into whole batches, split contiguously among its DataLoader workers (so the batches
   come out in the same order whatever the workers' timing);
3. each worker streams its rows (``skip``/``take`` into the files they lie in) through a seeded shuffle buffer.

Every process has the same number of batches per epoch, so ``len()`` is known: ``--num_train_epochs``, the one-cycle
schedule and exact resumption (the Trainer skips the batches already trained of the seeded epoch) work as they do for
data on disk. Augmentation is seeded per sample by its row number in the unshuffled shards, as the on-disk path seeds
it by ``__index__``: a row gets the same augmentation in a streamed run as in an on-disk run of the same files.

The validation and test splits are small and read many times (every evaluation, threshold calibration, the test
report): they are loaded to the 🤗 Datasets cache as usual.
"""

from __future__ import annotations

import copy
import logging
import math
import os
import tarfile
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import datasets
import numpy as np
import torch

from .common import make_features
from .hf_dataset import (
    LabelEncoder,
    _check_image_column,
    _find_label_column,
    _is_saved_dataset,
    _path_inside,
    check_files_given,
    check_label_matches,
    label_encoder,
    label_table,
    load_hf_dataset,
    offline_note,
)
from .transforms import INDEX_COLUMN

logger = logging.getLogger(__name__)

#: the 🤗 Datasets builders whose shards can be streamed and counted
STREAMING_FORMATS = ("parquet", "webdataset")
#: rows read (and labels encoded) at a time from a stream
READ_BATCH_SIZE = 64
#: what reading a shard raises when it is corrupt: pyarrow's errors derive from OSError/ValueError, fsspec's from
#: OSError, tarfile's from TarError (not an OSError: a corrupt tar would otherwise escape with no file named)
READ_ERRORS = (OSError, ValueError, EOFError, tarfile.TarError)
#: rows whose labels tell a multi-hot vector from a list of label ids, when the feature does not say
PEEK_ROWS = 256


@dataclass(frozen=True)
class Segment:
    """Rows ``start:stop`` of shard file number ``file``."""

    file: int
    start: int
    stop: int


def epoch_file_order(num_files: int, seed: int, epoch: int) -> np.ndarray:
    """The order of the shard files in one epoch (a permutation seeded by ``(seed, epoch)``)."""
    return np.random.default_rng([seed, epoch]).permutation(num_files)


def process_range(total: int, rank: int, world_size: int, drop_last: bool = False) -> tuple[int, int]:
    """Positions ``[start, stop)`` of process ``rank`` in an epoch of ``total`` rows: equal contiguous ranges of
    ``ceil(total / world_size)`` rows (positions past ``total`` wrap around), ``floor`` with ``drop_last``."""
    per_process = total // world_size if drop_last else math.ceil(total / world_size)
    return rank * per_process, (rank + 1) * per_process


def worker_range(start: int, stop: int, batch_size: int, worker: int, num_workers: int) -> tuple[int, int]:
    """The part of ``[start, stop)`` that DataLoader worker ``worker`` of ``num_workers`` reads: a contiguous run of
    whole batches, so that every batch is made by one worker."""
    batches = math.ceil((stop - start) / batch_size)
    first, last = worker * batches // num_workers, (worker + 1) * batches // num_workers
    return start + first * batch_size, min(start + last * batch_size, stop)


def segments(counts: Sequence[int], order: Sequence[int], start: int, stop: int) -> list[Segment]:
    """The rows at positions ``[start, stop)`` of the files taken in ``order`` (``counts[f]`` rows in file ``f``),
    as runs of rows within files; positions wrap around past the last row."""
    total = sum(counts)
    ends = np.cumsum([counts[f] for f in order])
    out: list[Segment] = []
    position = start
    while position < stop:
        wrapped = position % total
        slot = int(np.searchsorted(ends, wrapped, side="right"))
        file_start = int(ends[slot]) - counts[order[slot]]
        begin = wrapped - file_start
        length = min(counts[order[slot]] - begin, stop - position)
        out.append(Segment(int(order[slot]), begin, begin + length))
        position += length
    return out


def count_rows(builder: str, files: Sequence[str], threads: int = 8) -> list[int]:
    """Rows in each shard file: from the parquet footers, or the samples of each tar archive (its member names,
    grouped by key as 🤗 Datasets' WebDataset reader groups them). Local or remote (``hf://``) files, read in
    parallel: a remote footer is one small request."""
    return [rows for rows, _ in read_shard_footers(builder, files, threads)]


def read_shard_footers(builder: str, files: Sequence[str], threads: int = 8) -> list[tuple[int, list[str]]]:
    """``(rows, columns)`` of each shard file, from one read of its footer (:func:`count_rows`): a parquet file's
    schema, or the fields of a WebDataset archive's samples (the member names' extensions, read with the row count;
    a field some samples lack is read as ``None`` there, as 🤗 Datasets reads it)."""
    def footer(path: str) -> tuple[int, list[str]]:
        try:
            return _footer(builder, path)
        except READ_ERRORS as err:
            raise ValueError(f"{path}: cannot read its {builder} row count: {type(err).__name__}: {err}") from err

    with ThreadPoolExecutor(max(1, min(threads, len(files)))) as pool:
        return list(pool.map(footer, files))


def _footer(builder: str, path: str) -> tuple[int, list[str]]:
    import fsspec

    with fsspec.open(path, "rb") as handle:
        if builder == "parquet":
            import pyarrow.parquet as pq

            parquet = pq.ParquetFile(handle)
            return parquet.metadata.num_rows, list(parquet.schema_arrow.names)
        return _tar_samples(handle)


def _tar_samples(handle) -> tuple[int, list[str]]:
    """Samples of a WebDataset tar archive (runs of regular, non-hidden members with the same key) and the fields
    they have (``cls``, ``jpg``...: the columns 🤗 Datasets makes of them), from the member headers alone."""
    from datasets.packaged_modules.webdataset.webdataset import base_plus_ext

    mode = "r:*" if handle.seekable() else "r|*"  # a local file: headers only, the data is skipped by seeking
    samples, last, fields = 0, None, set()
    with tarfile.open(fileobj=handle, mode=mode) as archive:
        for member in archive:
            if not member.isreg() or os.path.basename(member.name).startswith((".", "__")):
                continue
            key, field = base_plus_ext(member.name)
            if key is None:
                continue
            fields.add(field)
            if key != last:
                samples, last = samples + 1, key
    return samples, ["__key__", "__url__", *sorted(fields)]  # 🤗 Datasets gives every sample its key and url


def check_shard_columns(files: Sequence[str], columns: Sequence[Sequence[str]], needed: Sequence[str]) -> None:
    """Every shard must hold the ``needed`` columns: a ``ValueError`` naming the first shard that lacks one, and
    which (🤗 Datasets' own error is an Arrow schema dump naming no file). Extra columns are fine: only the needed
    ones are read."""
    for path, found in zip(files, columns):
        missing = [column for column in needed if column not in found]
        if missing:
            raise ValueError(f"--streaming: shard {path} has no column {missing[0]!r} (its columns: {found}); "
                             f"every shard needs {list(needed)} (a renamed column?)")


@dataclass
class StreamingSource:
    """Where a streamed dataset's shards are: the 🤗 Datasets ``builder`` that reads them, the resolved data files
    of each split, and the folder relative image paths are read from."""

    name: str
    builder: str
    files: dict[str, list[str]]
    base_dir: str | None


def resolve_streaming_source(name: str, config_name: str | None = None, data_files=None,
                             data_dir: str | None = None) -> StreamingSource:
    """The shard files of ``name`` (a packaged format with ``data_files``/``data_dir``, or a Hub id), split by split,
    as 🤗 Datasets resolves them; a ``ValueError`` when they are not parquet or WebDataset shards."""
    from .hf_dataset import _common_folder

    path = os.path.expanduser(name)
    if os.path.isdir(path) and _is_saved_dataset(path):
        raise ValueError(f"--streaming reads parquet or webdataset shards; {name} is a dataset saved with "
                         "save_to_disk, already on the local disk: train without --streaming")
    check_files_given(name, data_files, data_dir)
    try:
        builder = datasets.load_dataset_builder(name, config_name, data_files=data_files, data_dir=data_dir)
    except (FileNotFoundError, ConnectionError) as err:
        raise ValueError(f"--dataset_name {name!r}: no data files found{offline_note()}: "
                         f"{' '.join(str(err).split())}") from err
    if builder.name not in STREAMING_FORMATS:
        raise ValueError(f"--streaming reads parquet or webdataset shards, but {name!r} is read by the "
                         f"{builder.name!r} builder: convert it to parquet shards, or train without --streaming")
    files = {str(split): [str(f) for f in found] for split, found in (builder.config.data_files or {}).items()}
    return StreamingSource(name, builder.name, files, data_dir or _common_folder(data_files))


class StreamingTrainSet(torch.utils.data.IterableDataset):
    """The training split of sharded files as a streamed, per-process, epoch-planned dataset (see the module
    docstring). Yields ``{"pixel_values", "labels", "image_id"}`` once :meth:`with_transform` has attached the
    training transform (a :class:`~mlic_hf.data.transforms.BatchTransform`), else the converted rows (undecoded
    ``image``, multi-hot ``labels``, ``ignore_mask``, ``image_id``, ``__index__``).

    ``len()`` is the number of rows this process reads per epoch; :attr:`num_rows` the rows of the split.
    """

    def __init__(self, source: StreamingSource, files: Sequence[str], counts: Sequence[int], image_column: str,
                 label_column: str, encoder: LabelEncoder, *, seed: int = 0, shuffle_buffer_size: int = 1000,
                 id_column: str | None = None, features: datasets.Features | None = None) -> None:
        super().__init__()
        if len(files) != len(counts):
            raise ValueError(f"{len(files)} shard files but {len(counts)} row counts")
        self.source, self.files, self.counts = source, list(files), [int(c) for c in counts]
        self.image_column, self.label_column, self.id_column = image_column, label_column, id_column
        self.encoder, self.seed, self.shuffle_buffer_size = encoder, seed, shuffle_buffer_size
        self.raw_features = features
        self.transform = None
        self.epoch = 0
        self.rank, self.world_size, self.batch_size, self.drop_last = 0, 1, 1, False
        self._streams: dict[int, datasets.IterableDataset] = {}
        self._warned_dropped = False

    # --- what the split is --------------------------------------------------------------------------------------
    @property
    def num_rows(self) -> int:
        return sum(self.counts)

    @property
    def offsets(self) -> list[int]:
        """The row number of each shard's first row, in the unshuffled shards."""
        return [0, *np.cumsum(self.counts)[:-1].tolist()]

    @property
    def features(self) -> datasets.Features:
        """The ``mlic_hf`` columns (:func:`~mlic_hf.data.common.make_features`): ``label_names_of`` reads them."""
        return make_features(self.encoder.names)

    def __len__(self) -> int:
        start, stop = process_range(self.num_rows, self.rank, self.world_size, self.drop_last)
        return stop - start

    def __repr__(self) -> str:
        return (f"StreamingTrainSet({self.source.builder}, {len(self.files)} shards, {self.num_rows} rows, "
                f"process {self.rank}/{self.world_size}, epoch {self.epoch})")

    # --- derived views (copies: the original is untouched) ------------------------------------------------------
    def with_transform(self, transform) -> StreamingTrainSet:
        """A copy whose rows go through ``transform`` (a batch dict → ``{"pixel_values", "labels"}``)."""
        out = self._copy()
        out.transform = transform
        return out

    def for_process(self, rank: int, world_size: int, batch_size: int, drop_last: bool = False) -> StreamingTrainSet:
        """The copy process ``rank`` of ``world_size`` reads, in batches of ``batch_size`` (whole batches per
        DataLoader worker)."""
        if not 0 <= rank < world_size or batch_size < 1:
            raise ValueError(f"process {rank} of {world_size} with batch size {batch_size}: out of range")
        if self.num_rows < world_size:
            raise ValueError(f"the streamed training split has {self.num_rows} rows: fewer than the {world_size} "
                             "processes")
        out = self._copy()
        out.rank, out.world_size, out.batch_size, out.drop_last = rank, world_size, batch_size, drop_last
        return out

    def truncated(self, max_rows: int) -> StreamingTrainSet:
        """The first ``max_rows`` rows of the unshuffled shards (``--max_train_samples``)."""
        counts, left = [], max_rows
        for count in self.counts:
            counts.append(min(count, left))
            left -= counts[-1]
            if left == 0:
                break
        out = self._copy()
        out.files, out.counts = self.files[:len(counts)], counts
        return out

    def _copy(self) -> StreamingTrainSet:
        out = copy.copy(self)
        out._streams = {}
        return out

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_streams"] = {}  # DataLoader workers open their own streams
        return state

    def set_epoch(self, epoch: int) -> None:
        """Called by the Trainer's DataLoader at every epoch: it seeds the file order, the shuffle buffer and (through
        the transform's ``set_epoch``) the augmentation."""
        self.epoch = int(epoch)
        if hasattr(self.transform, "set_epoch"):
            self.transform.set_epoch(self.epoch)

    # --- reading ------------------------------------------------------------------------------------------------
    def plan(self, worker: int = 0, num_workers: int = 1) -> list[Segment]:
        """The rows DataLoader worker ``worker`` of this process reads in the current epoch."""
        start, stop = process_range(self.num_rows, self.rank, self.world_size, self.drop_last)
        start, stop = worker_range(start, stop, self.batch_size, worker, num_workers)
        return segments(self.counts, epoch_file_order(len(self.files), self.seed, self.epoch), start, stop)

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        worker, num_workers = (info.id, info.num_workers) if info is not None else (0, 1)
        parts = [self._segment_stream(segment) for segment in self.plan(worker, num_workers)]
        if not parts:
            return
        stream = parts[0] if len(parts) == 1 else datasets.concatenate_datasets(parts)
        if self.shuffle_buffer_size > 1:
            seed = int(np.random.SeedSequence([self.seed, self.epoch, self.rank, worker]).generate_state(1)[0])
            # one input shard at a time: interleaving several reads them in threads, and 🤗 Datasets then waits 5 s
            # at the end of every pass for parquet's reader threads to stop (apache/arrow#45214)
            stream = stream.shuffle(seed=seed, buffer_size=self.shuffle_buffer_size, max_buffer_input_shards=1)
        # .iter() reads this worker's plan as it is: iterating the IterableDataset itself inside a DataLoader worker
        # would split its shards among the workers a second time
        batches = stream.iter(batch_size=READ_BATCH_SIZE)
        while True:
            try:
                batch = next(batches)
            except StopIteration:
                return
            except READ_ERRORS as err:  # 🤗 Datasets' and pyarrow's messages name no shard file
                raise self._read_error(err, worker, num_workers) from err
            yield from self._examples(batch)

    def _read_error(self, err: Exception, worker: int, num_workers: int) -> ValueError:
        """A ``ValueError`` naming the shard a read failed in: each shard of the failed plan is read again on its
        own, the first that fails is named (all of them when none fails again)."""
        files = list(dict.fromkeys(self.files[segment.file] for segment in self.plan(worker, num_workers)))
        for path in files:
            try:
                for _ in self._read_alone(path).iter(batch_size=READ_BATCH_SIZE):
                    pass
            except READ_ERRORS as again:
                return ValueError(f"--streaming: cannot read shard {path}: {type(again).__name__}: "
                                  f"{' '.join(str(again).split())[:500]}")
        return ValueError(f"--streaming: cannot read one of the shards {files}: {type(err).__name__}: "
                          f"{' '.join(str(err).split())[:500]}")

    def _file_stream(self, index: int) -> datasets.IterableDataset:
        """Shard file ``index`` as an IterableDataset with undecoded images (decoded by the transform, which names
        the image that fails)."""
        if index not in self._streams:
            self._streams.update(self._open_all())
        return self._streams[index]

    def _needed_columns(self) -> list[str]:
        return [c for c in (self.image_column, self.label_column, self.id_column) if c is not None]

    def _load_options(self) -> dict:
        """Parquet shards are read for the needed columns only, so a shard with an extra column (or columns in
        another order) does not stop training with an Arrow cast error."""
        if self.source.builder != "parquet":
            return {"features": self.raw_features}
        needed = self._needed_columns()
        features = (datasets.Features({c: self.raw_features[c] for c in needed})
                    if self.raw_features is not None else None)
        return {"columns": needed, "features": features}

    def _read_alone(self, path: str) -> datasets.IterableDataset:
        return datasets.load_dataset(self.source.builder, data_files=[path], streaming=True, split="train",
                                     **self._load_options())

    def _open_all(self) -> dict[int, datasets.IterableDataset]:
        every = datasets.load_dataset(self.source.builder, data_files=self.files, streaming=True, split="train",
                                      **self._load_options())
        if every.n_shards == len(self.files):  # one shard per file, in the files' order: pick them by index
            shards = {i: every.shard(num_shards=len(self.files), index=i) for i in range(len(self.files))}
        else:
            shards = {i: self._read_alone(path) for i, path in enumerate(self.files)}
        return {i: _undecoded(ds, self.image_column) for i, ds in shards.items()}

    def _segment_stream(self, segment: Segment) -> datasets.IterableDataset:
        stream = self._file_stream(segment.file).skip(segment.start).take(segment.stop - segment.start)
        features = datasets.Features({**stream.features, INDEX_COLUMN: datasets.Value("int64")})
        return stream.map(_row_numbers, batched=True, with_indices=True, features=features,
                          fn_kwargs={"first": self.offsets[segment.file] + segment.start})

    def _examples(self, batch: dict):
        rows = self.convert(batch)
        if self.transform is None:
            keys = [key for key, values in rows.items() if values is not None]
            yield from ({key: rows[key][i] for key in keys} for i in range(len(rows["image_id"])))
            return
        out = self.transform(rows)
        for i, image_id in enumerate(rows["image_id"]):
            yield {"pixel_values": out["pixel_values"][i], "labels": out["labels"][i], "image_id": image_id}

    def convert(self, batch: dict) -> dict[str, list]:
        """A batch of raw rows in the ``mlic_hf`` columns (``image``, ``labels``, ``ignore_mask``, ``image_id``,
        ``__index__``)."""
        labels, unknown, dropped = self.encoder.encode(batch[self.label_column])
        if dropped and not self._warned_dropped:
            self._warned_dropped = True
            logger.warning("streamed training rows hold label entries not in the label set, dropped (e.g. %s)",
                           sorted({str(d) for d in dropped})[:5])
        indices = [int(i) for i in batch[INDEX_COLUMN]]
        images = batch[self.image_column]
        if self.source.base_dir is not None:  # paths may not lead outside the data folder (see hf_dataset)
            images = [_path_inside(p, self.source.base_dir, f"streamed row {index}: image path")
                      if isinstance(p, str) else p for p, index in zip(images, indices)]
        offsets = self.offsets
        images = [self._where(image, index, offsets) for image, index in zip(images, indices)]
        ids = ([str(v) for v in batch[self.id_column]] if self.id_column else [f"train-{i}" for i in indices])
        return {"image": images, "labels": list(labels), "ignore_mask": list(unknown) if unknown is not None else None,
                "image_id": ids, INDEX_COLUMN: indices}

    def _where(self, image, index: int, offsets: list[int]):
        """An image stored in a shard (bytes without a path) named by its shard and row, for the message of an image
        that cannot be decoded."""
        if isinstance(image, dict) and image.get("bytes") is not None and not image.get("path"):
            file = int(np.searchsorted(offsets, index, side="right")) - 1
            return {"bytes": image["bytes"], "path": f"row {index - offsets[file]} of {self.files[file]}"}
        return image

    def labels_dataset(self) -> datasets.Dataset:
        """The split's labels (``labels``, ``label_ids``, ``ignore_mask``: no images) as a map-style dataset, read
        in shard order, for set-up a method derives from the training labels (ML-VPT's label groups). Parquet
        shards are read for their label column only; WebDataset archives are read whole."""
        columns = {"columns": [self.label_column]} if self.source.builder == "parquet" else {}
        stream = datasets.load_dataset(self.source.builder, data_files=self.files, streaming=True, split="train",
                                       **columns)
        if self.source.builder != "parquet":
            stream = stream.select_columns([self.label_column])
        logger.info("reading the labels of %d streamed training rows", self.num_rows)
        labels, unknown = [], []
        for batch in stream.take(self.num_rows).iter(batch_size=1024):
            encoded, mask, _ = self.encoder.encode(batch[self.label_column])
            labels.append(encoded)
            unknown.append(mask if mask is not None else np.zeros_like(encoded, dtype=bool))
        mask = np.concatenate(unknown)
        return label_table(self.encoder.names, np.concatenate(labels), mask if mask.any() else None)


def _row_numbers(batch: dict, indices: list[int], first: int) -> dict:
    return {INDEX_COLUMN: [first + i for i in indices]}


def _undecoded(stream: datasets.IterableDataset, column: str) -> datasets.IterableDataset:
    feature = (stream.features or {}).get(column)
    if isinstance(feature, datasets.Image) and feature.decode:
        return stream.cast_column(column, datasets.Image(decode=False))
    return stream


def _id_column(features: datasets.Features, image_column: str) -> str | None:
    """The column naming each image (``image_id``, ``id`` or WebDataset's ``__key__``), if the shards have one."""
    for column in ("image_id", "id", "__key__"):
        if column in features and column != image_column:
            return column
    return None


def load_streaming_train(args, source: StreamingSource, split: str = "train", seed: int = 0,
                         shuffle_buffer_size: int = 1000) -> StreamingTrainSet:
    """Split ``split`` of ``source`` as the :class:`StreamingTrainSet` of ``args``
    (:class:`~mlic_hf.data.hf_dataset.HFDatasetArguments`: columns, label names and separator), its label set read
    from the label feature or ``--label_names``."""
    from .hf_dataset import parse_label_names

    if split not in source.files:
        raise ValueError(f"--streaming: dataset {args.dataset_name!r} has no split {split!r} to train on (splits: "
                         f"{sorted(source.files)})")
    files = source.files[split]
    if not files:
        raise ValueError(f"--streaming: no {split} files of dataset {args.dataset_name!r} were found (check the "
                         "paths or globs of --data_files, or --data_dir)")
    footers = read_shard_footers(source.builder, files)  # one read of each footer: row counts and columns
    counts = [rows for rows, _ in footers]
    logger.info("streaming %s: %d rows in %d %s shards", args.dataset_name, sum(counts), len(files), source.builder)
    if sum(counts) == 0:
        raise ValueError(f"--streaming: the {split} shards of {args.dataset_name!r} hold no rows")
    first = datasets.load_dataset(source.builder, data_files=files[:1], streaming=True, split="train")
    features = first.features
    if features is None:
        raise ValueError(f"--streaming: cannot read the columns of {files[0]}")
    image_column = _check_image_column(first, args.image_column_name, args.dataset_name)
    label_column = _find_label_column(first, args.label_column_name, args.dataset_name)
    names = parse_label_names(args.label_names)
    _check_label_names_known(features[label_column], label_column, names)
    peek = [row[label_column] for row in first.select_columns([label_column]).take(PEEK_ROWS)]
    encoder = label_encoder(features[label_column], label_column, names, args.label_separator, training_values=peek)
    peeked, _, dropped = encoder.encode(peek)
    check_label_matches(f"--streaming: the first {len(peek)} rows of {files[0]}", encoder.names, peeked, dropped)
    id_column = _id_column(features, image_column)
    columns = [found for _, found in footers]
    check_shard_columns(files, columns, [image_column, label_column])
    if id_column is not None and not all(id_column in found for found in columns):
        id_column = None  # image ids are optional: without them in every shard, rows are named by their row number
    train = StreamingTrainSet(source, files, counts, image_column, label_column, encoder, seed=seed,
                              shuffle_buffer_size=shuffle_buffer_size, id_column=id_column,
                              features=features if source.builder == "parquet" else None)
    return train


def _check_label_names_known(feature, column: str, names: list[str] | None) -> None:
    """Label names stored as strings need ``--label_names``: the label set of a stream cannot be read from it
    without reading every shard first."""
    inner = getattr(feature, "feature", feature)
    if names is None and isinstance(inner, datasets.Value) and inner.dtype in ("string", "large_string"):
        raise ValueError(f"--streaming: label column {column!r} holds label names ({feature}); the label set cannot "
                         "be read from a stream without reading every shard: give it with --label_names")


def load_streaming_eval_splits(args, source: StreamingSource, splits: Sequence[str], label_names: list[str],
                               seed: int = 0) -> datasets.DatasetDict:
    """The (small) evaluation splits of a streamed dataset, loaded to the 🤗 Datasets cache with the training
    split's label set; a missing split is a ``ValueError`` (a stream has no validation split to carve from)."""
    missing = [split for split in splits if split not in source.files]
    if missing:
        raise ValueError(f"--streaming: dataset {args.dataset_name!r} has no split {missing[0]!r} (splits: "
                         f"{sorted(source.files)}); a streamed training split is not split into train and "
                         "validation: give the validation files (e.g. --data_files '{\"train\": ..., "
                         "\"validation\": ...}') or --eval_split")
    wanted = {split: source.files[split] for split in dict.fromkeys(splits)}
    return load_hf_dataset(source.builder, data_files=wanted, data_dir=source.base_dir,
                           image_column=args.image_column_name, label_column=args.label_column_name,
                           label_names=label_names, label_separator=args.label_separator, train_val_split=None,
                           seed=seed)


def write_parquet_shards(split: datasets.Dataset, folder: str | os.PathLike, shards: int | Sequence[int],
                         prefix: str = "train") -> list[str]:
    """Write an ``mlic_hf`` dataset split as parquet shards that ``--streaming`` reads without further flags:
    ``image``, ``labels`` (the ``label_ids`` as ``Sequence(ClassLabel)``, names included) and ``image_id``, in
    ``shards`` files of near-equal size (or of the sizes listed), named ``PREFIX-0000K-of-0000N.parquet``. Returns
    the paths. A split with unknown labels (``ignore_mask``) is refused: the shards cannot hold them."""
    if "ignore_mask" in split.column_names and any(any(row) for row in split["ignore_mask"]):
        raise ValueError("the split has unknown labels (ignore_mask), which parquet shards of label ids cannot hold")
    sizes = ([len(split) // shards + (k < len(split) % shards) for k in range(shards)] if isinstance(shards, int)
             else list(shards))
    if sum(sizes) != len(split) or any(size < 1 for size in sizes):
        raise ValueError(f"shards of {sizes} rows do not divide the split's {len(split)} rows")
    os.makedirs(folder, exist_ok=True)
    stored = split.select_columns(["image", "label_ids", "image_id"]).rename_column("label_ids", "labels")
    paths, start = [], 0
    for number, size in enumerate(sizes):
        path = os.path.join(folder, f"{prefix}-{number:05d}-of-{len(sizes):05d}.parquet")
        stored.select(range(start, start + size)).to_parquet(path)
        paths.append(path)
        start += size
    return paths
