"""Any 🤗 Datasets dataset as an ``mlic_hf`` dataset: a Hub id, a folder written by ``save_to_disk``, or packaged files
(``parquet`` / ``arrow`` / ``csv`` / ``json`` / ``imagefolder`` with ``data_files`` or ``data_dir``), converted to the
column contract of :mod:`mlic_hf.data.common` (``image``, multi-hot ``labels``, ``label_ids``, optional
``ignore_mask``, ``image_id``). ``scripts/train.py``, ``scripts/evaluate.py`` and ``scripts/compute_label_groups.py``
take it with the flags of transformers' ``run_image_classification.py`` (``--dataset_name``,
``--dataset_config_name``, ``--image_column_name``, ``--label_column_name``, ``--train_val_split``).

The label column may take any form multi-label datasets use; the form is read from the column's feature type:

=====================================================  ===========================================================
feature                                                read as
=====================================================  ===========================================================
``Sequence(ClassLabel(names))``                        lists of label ids; names from the feature; ``-1`` entries
                                                       (ClassLabel's "no label") are dropped, counted in a warning
``Sequence(ClassLabel(names), length=len(names))``     a multi-hot vector whose names live in the feature
``Sequence(Value("string"))``                          lists of label names; the label set is the training split's,
                                                       sorted (or ``label_names``); names unseen in it are dropped
                                                       from other splits, counted in a warning
``Sequence(Value(int/float/bool))``, every row of the  a multi-hot vector (1 positive, 0 negative, ``-1`` unknown:
same length, values in {-1} ∪ [0, 1]                   kept in ``ignore_mask``); names from ``label_names``
other ``Sequence(Value(int))``                         lists of label ids into ``label_names``
``ClassLabel(names)``                                  one label per image (single-label data); ``-1`` = unlabelled
``Value("string")``                                    one label name per image, or several joined by
                                                       ``label_separator`` (CSV files cannot hold lists)
=====================================================  ===========================================================

Anything else is a ``ValueError`` naming the column and its feature type. What is refused rather than guessed:

- a fixed-length numeric column that is mostly multi-hot vectors with a few other values (a ``2``, a ``NaN``): an
  error naming the row and value, not a re-reading as label ids (rule in ``_numeric_lists``);
- label strings that look like names joined by ``|``, ``;`` or ``,`` while no ``label_separator`` is given (rule in
  ``_check_no_joined_names``; a ``,`` only warns unless a part also stands alone as a label);
- a split whose label names (almost) all miss the label set (e.g. ``Dog`` vs ``dog``): an error naming both, instead
  of all-zero targets or a NaN mAP (:func:`check_label_matches`).

A **null** label value means "labels unknown": every label of that row is ignored (``ignore_mask``), whatever the
form (id lists, name lists, WebDataset's JSON lists, multi-hot vectors, ClassLabel). The only exception is a
label-name *string* column: CSV files (whose empty cell is read as null) have no other way to write an image without
labels, so a null or empty string there means "no labels". An empty list always means "no labels".

The image column may be an ``Image()`` feature or file paths (relative ones are read from ``data_dir``, else the
folder of the data files, else the folder of a ``save_to_disk`` dataset). As the folder, COCO and VOC loaders do,
paths that lead outside that folder (``../`` components, or absolute paths elsewhere) are refused with an error
naming the row and the path; a null image is an error naming its row (and image id).

Splits keep their names; when there is no validation split (``validation``, ``valid``, ``val`` or ``dev``),
``train_val_split`` of the training split becomes ``validation``, seeded.
"""

from __future__ import annotations

import logging
import os
import tarfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import datasets
import numpy as np

from .common import join_inside, make_features

logger = logging.getLogger(__name__)

#: names ``datasets.load_dataset`` takes for files without a loading script
PACKAGED_FORMATS = ("parquet", "arrow", "csv", "json", "imagefolder", "text", "webdataset")
#: validation split names recognised, in order of preference
VALIDATION_NAMES = ("validation", "valid", "val", "dev")
#: label column names tried when ``label_column`` is not given
DEFAULT_LABEL_COLUMNS = ("labels", "label", "label_ids", "tags")


@dataclass
class HFDatasetArguments:
    """Flags that load a 🤗 Datasets dataset (``--dataset_name`` and friends, as in transformers' examples)."""

    dataset_name: str | None = field(default=None, metadata={"help": (
        "A 🤗 Datasets dataset instead of a built-in one: a Hub id, a folder written by save_to_disk, or a packaged "
        "format (parquet, arrow, csv, json, imagefolder) with --data_files or --data_dir.")})
    dataset_config_name: str | None = field(default=None, metadata={"help": "The dataset's configuration name."})
    data_files: str | None = field(default=None, metadata={"help": (
        "Files of a packaged format: a path or glob (the train split), or a JSON object of split -> path(s).")})
    image_column_name: str = field(default="image", metadata={"help": "Column holding the images or their paths."})
    label_column_name: str | None = field(default=None, metadata={"help": (
        "Column holding the labels (default: the first of labels, label, label_ids, tags).")})
    label_names: str | None = field(default=None, metadata={"help": (
        "Class names, comma-separated or a JSON list: needed for multi-hot vectors or id lists without names.")})
    label_separator: str | None = field(default=None, metadata={"help": (
        "Separator of several label names in one string (e.g. '|' for a CSV column 'cat|dog').")})
    train_val_split: float = field(default=0.15, metadata={"help": (
        "Fraction of train made into the validation split when the dataset has none (seeded by --seed).")})

    def __post_init__(self):
        if not 0.0 < self.train_val_split < 1.0:
            raise ValueError(f"--train_val_split must be a fraction strictly between 0 and 1, got "
                             f"{self.train_val_split}")
        if self.label_separator == "":
            raise ValueError("--label_separator must not be empty")
        parse_label_names(self.label_names)

    def load(self, data_dir: str | None = None, seed: int = 0, label_names: Sequence[str] | None = None,
             make_validation: bool = True):
        """The dataset as an ``mlic_hf`` :class:`datasets.DatasetDict` (see :func:`load_hf_dataset`);
        ``label_names`` (e.g. a checkpoint's) win over ``--label_names``; ``make_validation=False`` never splits
        ``train`` (the caller names its own validation split)."""
        return load_hf_dataset(
            self.dataset_name, self.dataset_config_name, data_files=parse_data_files(self.data_files),
            data_dir=data_dir, image_column=self.image_column_name, label_column=self.label_column_name,
            label_names=list(label_names) if label_names is not None else parse_label_names(self.label_names),
            label_separator=self.label_separator, seed=seed,
            train_val_split=self.train_val_split if make_validation else None,
        )


def default_split_roles(available=None, eval_split: str | None = None) -> dict[str, str]:
    """The splits a 🤗 Datasets dataset with splits ``available`` (``None``: not known yet) uses by role: ``train``,
    ``eval`` (``eval_split``, else the first of :data:`VALIDATION_NAMES` it has, else ``validation``, the one made
    from train) and ``test`` (``test``, else the eval split: reported on like COCO's ``val``)."""
    present = set(available or ())
    evaluation = eval_split or next((n for n in VALIDATION_NAMES if n in present), "validation")
    return {"train": "train", "eval": evaluation,
            "test": "test" if available is None or "test" in present else evaluation}


def parse_label_names(value: str | None) -> list[str] | None:
    """``--label_names`` as a list: a JSON list or comma-separated names (``None`` stays ``None``)."""
    import json

    if value is None:
        return None
    text = value.strip()
    if text.startswith("["):
        try:
            names = json.loads(text)
        except json.JSONDecodeError as err:
            raise ValueError(f"--label_names: not a JSON list ({err}): {value!r}") from err
    else:
        names = [name.strip() for name in text.split(",")]
    if not names or not all(isinstance(name, str) and name for name in names):
        raise ValueError(f"--label_names must list non-empty class names, got {value!r}")
    if len(set(names)) != len(names):
        raise ValueError(f"--label_names has duplicate names: {value!r}")
    return names


def parse_data_files(value: str | None) -> str | list | dict | None:
    """``--data_files`` as ``load_dataset`` takes it: a JSON object (split -> path(s)) or list, else one path/glob."""
    import json

    if value is None or not value.strip().startswith(("{", "[")):
        return value
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError as err:
        raise ValueError(f"--data_files: not a JSON object or list ({err}): {value!r}") from err
    if isinstance(parsed, dict) and not all(isinstance(v, (str, list)) for v in parsed.values()):
        raise ValueError(f"--data_files: each split needs a path or a list of paths, got {value!r}")
    return parsed


def is_hub_id(name: str) -> bool:
    """Whether ``dataset_name`` names a Hub dataset (not a local folder or a packaged format): the model card links
    it."""
    return not (os.path.exists(os.path.expanduser(name)) or name in PACKAGED_FORMATS)


def load_hf_dataset(
    name: str,
    config_name: str | None = None,
    *,
    data_files: str | list | dict | None = None,
    data_dir: str | None = None,
    image_column: str = "image",
    label_column: str | None = None,
    label_names: Sequence[str] | None = None,
    label_separator: str | None = None,
    train_val_split: float | None = 0.15,
    seed: int = 0,
) -> datasets.DatasetDict:
    """Load ``name`` (a Hub id, a ``save_to_disk`` folder or a packaged format) and convert every split to the
    ``mlic_hf`` columns. The label set comes from ``label_names``, else the label feature, else the training split.
    A missing validation split is made from ``train_val_split`` of ``train`` (seeded; ``None``: never)."""
    raw, base_dir = _load_raw(name, config_name, data_files, data_dir)
    if not raw:
        raise ValueError(f"dataset {name!r} has no splits")
    if train_val_split is not None:
        raw = _with_validation_split(raw, train_val_split, seed)
    first = raw["train"] if "train" in raw else next(iter(raw.values()))
    image_column = _check_image_column(first, image_column, name)
    label_column = _find_label_column(first, label_column, name)
    encoder = label_encoder(first.features[label_column], label_column, label_names, label_separator,
                            training_values=first.select_columns([label_column])[label_column])
    converted = {split: _convert(ds, split, image_column, label_column, encoder, base_dir)
                 for split, ds in raw.items()}
    logger.info("dataset %s: %d labels (%s), splits %s", name, len(encoder.names), encoder.form,
                {split: len(ds) for split, ds in converted.items()})
    return datasets.DatasetDict(converted)


def _load_raw(name, config_name, data_files, data_dir) -> tuple[datasets.DatasetDict, str | None]:
    """The dataset as loaded by 🤗 Datasets, and the folder relative image paths are read from."""
    path = os.path.expanduser(name)
    if os.path.isdir(path) and _is_saved_dataset(path):
        if data_files or config_name:
            raise ValueError(f"{name} is a dataset saved with save_to_disk: --data_files and --dataset_config_name "
                             "do not apply to it")
        loaded = datasets.load_from_disk(path)
        if isinstance(loaded, datasets.Dataset):
            loaded = datasets.DatasetDict({"train": loaded})
        return loaded, data_dir or path
    check_files_given(name, data_files, data_dir)
    try:
        loaded = datasets.load_dataset(name, config_name, data_files=data_files, data_dir=data_dir)
    except (FileNotFoundError, ConnectionError) as err:
        raise ValueError(f"--dataset_name {name!r}: not a local dataset folder, packaged format or reachable Hub "
                         f"dataset{offline_note()}: {' '.join(str(err).split())}") from err
    except (datasets.exceptions.DatasetGenerationError, tarfile.TarError) as err:  # a corrupt or empty file
        cause = err.__cause__ or err
        where = unreadable_file(name, config_name, data_files, data_dir)
        raise ValueError(f"--dataset_name {name!r}: cannot read {where or 'its data files'}: "
                         f"{type(cause).__name__}: {' '.join(str(cause).split())}") from err
    if isinstance(loaded, datasets.Dataset):
        loaded = datasets.DatasetDict({"train": loaded})
    return loaded, data_dir or _common_folder(data_files)


def check_files_given(name: str, data_files, data_dir: str | None) -> None:
    """A packaged format (``parquet``, ``csv``, ...) names no data: a ``ValueError`` unless files or a folder are
    given."""
    if name in PACKAGED_FORMATS and not (data_files or data_dir):
        raise ValueError(f"--dataset_name {name} reads files: give --data_files (a path, glob or JSON object of "
                         "split -> paths) or --data_dir")


def offline_note() -> str:
    """`` (offline: HF_HUB_OFFLINE is set)`` when it is, for messages about data that was not found."""
    return " (offline: HF_HUB_OFFLINE is set)" if os.environ.get("HF_HUB_OFFLINE") == "1" else ""


def unreadable_file(name: str, config_name=None, data_files=None, data_dir=None) -> str | None:
    """The first data file of ``name`` that 🤗 Datasets cannot read a row from, to name it in an error (🤗 Datasets
    reports that generation failed, not which file failed)."""
    try:
        builder = datasets.load_dataset_builder(name, config_name, data_files=data_files, data_dir=data_dir)
    except Exception:  # noqa: BLE001 - only looking for a better message
        return None
    for found in (builder.config.data_files or {}).values():
        for path in found:
            try:
                next(iter(datasets.load_dataset(builder.name, data_files=[str(path)], streaming=True,
                                                split="train")), None)
            except Exception:  # noqa: BLE001 - any failure names the file
                return str(path)
    return None


def _is_saved_dataset(path: str) -> bool:
    return any(os.path.exists(os.path.join(path, f)) for f in ("dataset_dict.json", "state.json"))


def _common_folder(data_files) -> str | None:
    """The folder of the data files when they share one (where a CSV's relative image paths point)."""
    if data_files is None:
        return None
    files = data_files.values() if isinstance(data_files, dict) else [data_files]
    flat = [f for entry in files for f in ([entry] if isinstance(entry, str) else entry)]
    folders = {os.path.dirname(os.path.abspath(os.path.expanduser(f))) for f in flat}
    return folders.pop() if len(folders) == 1 else None


def _with_validation_split(raw: datasets.DatasetDict, fraction: float, seed: int) -> datasets.DatasetDict:
    """``raw`` with a ``validation`` split: the dataset's own (any of :data:`VALIDATION_NAMES`), else ``fraction``
    of ``train`` (seeded), logged."""
    if any(name in raw for name in VALIDATION_NAMES) or "train" not in raw:
        return raw
    if len(raw["train"]) < 2:
        raise ValueError(f"the train split has {len(raw['train'])} example(s): too few to split off a validation "
                         "split (--train_val_split)")
    parts = raw["train"].train_test_split(test_size=fraction, seed=seed, shuffle=True)
    logger.info("no validation split: %.0f%% of train (%d examples, seed %d) becomes 'validation'",
                100 * fraction, len(parts["test"]), seed)
    return datasets.DatasetDict({**raw, "train": parts["train"], "validation": parts["test"]})


def _check_image_column(ds: datasets.Dataset, column: str, name: str) -> str:
    if column not in ds.column_names:
        raise ValueError(f"dataset {name!r} has no image column {column!r} (columns: {ds.column_names}); "
                         "set --image_column_name")
    feature = ds.features[column]
    if not (isinstance(feature, datasets.Image) or (isinstance(feature, datasets.Value) and feature.dtype in
                                                    ("string", "large_string"))):
        raise ValueError(f"image column {column!r} of dataset {name!r} has feature {feature}: expected Image() or "
                         "file paths (Value('string'))")
    return column


def _find_label_column(ds: datasets.Dataset, column: str | None, name: str) -> str:
    if column is not None:
        if column not in ds.column_names:
            raise ValueError(f"dataset {name!r} has no label column {column!r} (columns: {ds.column_names})")
        return column
    for candidate in DEFAULT_LABEL_COLUMNS:
        if candidate in ds.column_names:
            return candidate
    raise ValueError(f"dataset {name!r} has none of the label columns {list(DEFAULT_LABEL_COLUMNS)} (columns: "
                     f"{ds.column_names}); set --label_column_name")


@dataclass
class LabelEncoder:
    """How one label column becomes multi-hot targets: the class ``names``, the ``form`` (for messages) and
    ``encode(values) -> (multi-hot float32 [n, C], unknown-label mask bool [n, C] or None, dropped entries)``."""

    names: list[str]
    form: str
    encode: Callable[[list], tuple[np.ndarray, np.ndarray | None, list]]


def label_encoder(feature, column: str, label_names: Sequence[str] | None = None, separator: str | None = None,
                  training_values: list | None = None) -> LabelEncoder:
    """The :class:`LabelEncoder` of a label column with feature ``feature`` (see the module docstring's table);
    ``training_values`` (the training split's column) give the label set of name lists when ``label_names`` is
    not set, and tell a multi-hot vector from an id list."""
    names = list(label_names) if label_names is not None else None
    if isinstance(feature, (datasets.List, datasets.LargeList)):
        inner = feature.feature
        if isinstance(inner, datasets.ClassLabel):
            feature_names = _names_matching(inner.names, names, column)
            if getattr(feature, "length", -1) == len(feature_names):
                return LabelEncoder(feature_names, "multi-hot vector (names from the feature)",
                                    _multi_hot(len(feature_names), column))
            return LabelEncoder(feature_names, "lists of ClassLabel ids", _id_lists(len(feature_names), column))
        if isinstance(inner, datasets.Value) and inner.dtype in ("string", "large_string"):
            names = names or _sorted_names(training_values, column)
            return LabelEncoder(names, "lists of label names", _name_lists(names, None, lists=True))
        if isinstance(inner, datasets.Value) and _numeric(inner.dtype):
            return _numeric_lists(names, column, feature, training_values)
    if isinstance(feature, datasets.ClassLabel):
        feature_names = _names_matching(feature.names, names, column)
        return LabelEncoder(feature_names, "one ClassLabel per image",
                            _id_lists(len(feature_names), column, single=True))
    if isinstance(feature, datasets.Value) and feature.dtype in ("string", "large_string"):
        if separator is None:
            _check_no_joined_names(training_values, column, names)
        names = names or _sorted_names(_split_strings(training_values, separator), column)
        form = f"label names joined by {separator!r}" if separator else "one label name per image"
        return LabelEncoder(names, form, _name_lists(names, separator))
    raise ValueError(
        f"label column {column!r} has feature {feature}, which is none of the forms mlic_hf reads: a "
        "Sequence(ClassLabel) of label ids, a list of label-name strings, a multi-hot vector, a ClassLabel or a "
        "label-name string (see mlic_hf.data.hf_dataset)")


def _numeric(dtype: str) -> bool:
    return dtype == "bool" or dtype.startswith(("int", "uint", "float"))


def _names_matching(feature_names: list[str], given: list[str] | None, column: str) -> list[str]:
    if given is not None and list(given) != list(feature_names):
        raise ValueError(f"label column {column!r} names its classes {feature_names[:8]}...: they differ from the "
                         f"label names given ({given[:8]}...)")
    return list(feature_names)


def _numeric_lists(names, column, feature, values) -> LabelEncoder:
    """Multi-hot vectors (fixed length, values in {-1} ∪ [0, 1]) or lists of integer label ids.

    A fixed-length column (the feature's length, or every row of the same length) of the label count's length
    (when names are given) whose rows are mostly valid multi-hot vectors but where a few rows hold another value
    (a ``2``, a ``NaN``) is a multi-hot column with a typo, not lists of label ids: re-reading it as id lists would
    make every row's labels wrong without a word. "Mostly" is more than half of the rows: genuine id lists of a
    fixed length ``C`` over ``C`` labels hold every id from 0 to ``C - 1`` in each row, so (for ``C >= 3``) none of
    their rows looks like a multi-hot vector. Lists of label ids of varying length stay id lists."""
    rows = [row for row in values or [] if row is not None]
    lengths = {len(row) for row in rows}
    flat = np.asarray([x for row in rows for x in row], dtype=np.float64)
    length = getattr(feature, "length", -1)
    fixed = length > 0 or len(lengths) == 1
    multi_hot = fixed and bool(np.all(_valid_multi_hot(flat)))
    if fixed and not multi_hot:
        width = length if length > 0 else next(iter(lengths))
        valid_rows = sum(bool(np.all(_valid_multi_hot(np.asarray(row, dtype=np.float64)))) for row in rows)
        float_column = getattr(feature.feature, "dtype", "").startswith("float")
        sized = len(names) == width if names is not None else width > 1
        if sized and (2 * valid_rows > len(rows) or float_column):  # floats are never label ids
            _raise_bad_multi_hot(column, [row if row is not None else [] for row in values])
    if multi_hot:
        width = length if length > 0 else lengths.pop()
        if names is None:
            raise ValueError(f"label column {column!r} holds multi-hot vectors of length {width} without class "
                             "names: give them with --label_names")
        if len(names) != width:
            raise ValueError(f"label column {column!r} holds multi-hot vectors of length {width}, but "
                             f"{len(names)} label names were given")
        return LabelEncoder(list(names), "multi-hot vector", _multi_hot(width, column))
    if names is None:
        raise ValueError(f"label column {column!r} holds lists of integer label ids without class names: give "
                         "them with --label_names (or store the column as Sequence(ClassLabel))")
    return LabelEncoder(list(names), "lists of label ids", _id_lists(len(names), column))


def _valid_multi_hot(values: np.ndarray) -> np.ndarray:
    """Which values a multi-hot vector may hold: -1 (unknown) or 0..1 (NaN is not one of them)."""
    return (values == -1) | ((values >= 0) & (values <= 1))


def _raise_bad_multi_hot(column: str, rows: Sequence) -> None:
    """A ``ValueError`` naming the first row of a multi-hot column holding a value that is not -1 or 0..1."""
    for index, row in enumerate(rows):
        array = np.asarray(row, dtype=np.float64)
        bad = np.flatnonzero(~_valid_multi_hot(array))
        if bad.size:
            raise ValueError(f"label column {column!r}: row {index} holds {row[int(bad[0])]!r} at position "
                             f"{int(bad[0])} of a multi-hot vector: expected 0 or 1 (or -1 for an unknown label)")


def _sorted_names(values, column: str) -> list[str]:
    names = sorted({str(name) for row in values or [] if row is not None
                    for name in (row if isinstance(row, list) else [row])})
    if not names:
        raise ValueError(f"label column {column!r} of the training split holds no label names")
    return names


#: characters that join several label names in one string when a file format cannot hold lists (CSV)
LIKELY_SEPARATORS = ("|", ";", ",")


def _check_no_joined_names(values, column: str, names: Sequence[str] | None) -> None:
    """Refuse label strings that look like several names joined (``person|dog``) when no separator is given:
    they would silently become labels of their own. The rule, per candidate separator (``|``, ``;``, ``,``), over
    the strings holding it that are not given label names: ``|`` and ``;`` (which class names do not hold) are an
    error as soon as one string holds them between two non-empty parts; ``,`` (which a name may hold:
    ``"Smith, John"``) is an error when a part also stands alone as a row's label elsewhere in the column (``dog``
    and ``cat,dog``), else a logged warning. Names given with ``--label_names`` that hold the character are kept."""
    given = set(names or ())
    strings = [value for value in values or [] if isinstance(value, str) and value not in given]
    whole = {value.strip() for value in strings}
    for separator in LIKELY_SEPARATORS:
        joined = [value for value in strings
                  if separator in value and sum(bool(part.strip()) for part in value.split(separator)) >= 2]
        if not joined:
            continue
        alone = sorted({part.strip() for value in joined for part in value.split(separator)} & whole)
        hint = (f"label column {column!r} holds {len(joined)} label string(s) like {joined[0]!r} that look like "
                f"several names joined by {separator!r}, but no separator is given: pass --label_separator "
                f"'{separator}' (or list the names that hold {separator!r} with --label_names)")
        if separator != "," or alone:
            raise ValueError(hint + (f"; {alone[:3]} also stand alone as labels" if alone else ""))
        logger.warning("%s", hint)


def _split_strings(values, separator: str | None):
    if values is None or separator is None:
        return values
    return [[part.strip() for part in value.split(separator) if part.strip()] if value else [] for value in values]


def _multi_hot(width: int, column: str):
    def encode(values):
        rows = [row if row is not None else [-1] * width for row in values]
        bad = next((i for i, row in enumerate(rows) if len(row) != width), None)
        if bad is not None:
            raise ValueError(f"label column {column!r}: row {bad} has {len(rows[bad])} entries, expected {width}")
        matrix = np.asarray(rows, dtype=np.float32).reshape(len(rows), width)
        if not np.all(_valid_multi_hot(matrix)):  # NaN fails this too
            _raise_bad_multi_hot(column, rows)
        unknown = matrix == -1
        return np.where(unknown, 0.0, matrix).astype(np.float32), (unknown if unknown.any() else None), []
    return encode


def _id_lists(width: int, column: str, single: bool = False):
    def encode(values):
        labels = np.zeros((len(values), width), dtype=np.float32)
        unknown = np.zeros_like(labels, dtype=bool)
        dropped = []
        for row, ids in enumerate(values):
            if single or ids is None:
                if ids is None or ids == -1:
                    unknown[row] = True  # an unlabelled image: every label unknown, left out of loss and metrics
                    continue
                ids = [ids]
            for index in ids:
                if index == -1:
                    dropped.append(index)
                elif not (0 <= index < width and float(index).is_integer()):  # NaN, 1.5: a ValueError, not numpy's
                    raise ValueError(f"label column {column!r}: row {row} has label id {index}, expected an "
                                     f"integer 0..{width - 1}")
                else:
                    labels[row, int(index)] = 1.0
        return labels, (unknown if unknown.any() else None), dropped
    return encode


def _name_lists(names: list[str], separator: str | None, lists: bool = False):
    """Encode label names; with ``lists`` (a list column) a null row is unknown (every label ignored)."""
    index = {name: i for i, name in enumerate(names)}

    def encode(values):
        labels = np.zeros((len(values), len(names)), dtype=np.float32)
        unknown = np.zeros_like(labels, dtype=bool)
        dropped = []
        for row, (raw, entry) in enumerate(zip(values, _split_strings(values, separator) if separator else values)):
            if raw is None and lists:
                unknown[row] = True  # a null list: labels unknown, as for id lists (see the module docstring)
                continue
            for name in ([] if entry is None else entry if isinstance(entry, list) else [entry]):
                if str(name) in index:
                    labels[row, index[str(name)]] = 1.0
                else:
                    dropped.append(name)
        return labels, (unknown if unknown.any() else None), dropped
    return encode


def _convert(ds: datasets.Dataset, split: str, image_column: str, label_column: str, encoder: LabelEncoder,
             base_dir: str | None) -> datasets.Dataset:
    """One split in the ``mlic_hf`` columns. The image column is kept as it is stored (no image is decoded or
    copied); the label columns are built with numpy and joined beside it."""
    labels, unknown, dropped = encoder.encode(ds.select_columns([label_column])[label_column])
    check_label_matches(f"split {split!r}", encoder.names, labels, dropped)
    if dropped:
        logger.warning("split %r: %d label entr%s not in the label set dropped (e.g. %s)", split, len(dropped),
                       "y" if len(dropped) == 1 else "ies", sorted({str(d) for d in dropped})[:5])
    _check_no_null_images(ds, split, image_column)
    image_ids = _image_ids(ds, split, image_column)
    images = ds.select_columns([image_column])
    if image_column != "image":
        images = images.rename_column(image_column, "image")
    if isinstance(images.features["image"], datasets.Value):
        images = _image_paths(images, split, base_dir)
    table = label_table(encoder.names, labels, unknown, image_ids=image_ids)
    return datasets.concatenate_datasets([images, table], axis=1)


#: a split whose label entries match the label set at most this often is refused, not trained or scored on
MIN_MATCHED_FRACTION = 0.05


def check_label_matches(where: str, names: Sequence[str], labels: np.ndarray, dropped: list) -> None:
    """Refuse label names that (almost) all miss the label set: a split whose label *names* match it in at most
    :data:`MIN_MATCHED_FRACTION` of their entries would train on all-zero targets or score NaN, with only a warning.
    ``-1`` ids (ClassLabel's "no label") are not names and do not count. The error names a few of the split's names
    and the expected ones, and says when they match ignoring case (``Dog`` vs ``dog``)."""
    missed = [entry for entry in dropped if isinstance(entry, str)]
    matched = int(np.count_nonzero(labels))
    if not missed or matched > MIN_MATCHED_FRACTION * (matched + len(missed)):
        return
    seen = sorted(set(missed))
    folded = {name.casefold() for name in names}
    case_note = (" (they match ignoring case: label names are case-sensitive)"
                 if all(name.casefold() in folded for name in seen) else "")
    raise ValueError(f"{where}: {len(missed)} of its {matched + len(missed)} label entries are not in the label set "
                     f"(its names: {seen[:5]}; expected: {list(names)[:8]}){case_note}: check --label_names or the "
                     "checkpoint's label names against the dataset's")


def _check_no_null_images(ds: datasets.Dataset, split: str, column: str) -> None:
    """A null image (or image path) is an error naming its row and image id, not a failure deep in decoding."""
    stored = ds.with_format("arrow")[column]  # the rows as selected (a split made from train has an index mapping)
    if stored.null_count == 0:
        return
    row = next(i for i, value in enumerate(stored.is_null().to_pylist()) if value)
    id_column = next((c for c in ("image_id", "id") if c in ds.column_names and c != column), None)
    image_id = f", image id {ds[row][id_column]!r}" if id_column else ""
    raise ValueError(f"split {split!r}: image column {column!r} is null in {stored.null_count} row(s), first row "
                     f"{row}{image_id}: every row needs an image")


def label_table(names: Sequence[str], labels: np.ndarray, unknown: np.ndarray | None = None,
                image_ids: list[str] | None = None) -> datasets.Dataset:
    """The ``mlic_hf`` label columns of encoded labels (:class:`LabelEncoder`): multi-hot ``labels``, ``label_ids``,
    ``ignore_mask`` when ``unknown`` is given, and ``image_id`` when ``image_ids`` are."""
    columns: dict[str, Any] = {
        "labels": labels.tolist(),
        "label_ids": [np.flatnonzero(row).tolist() for row in labels],
    }
    if unknown is not None:
        columns["ignore_mask"] = unknown.tolist()
    if image_ids is not None:
        columns["image_id"] = image_ids
    features = make_features(list(names), with_ignore_mask=unknown is not None)
    return datasets.Dataset.from_dict(columns, features=datasets.Features(
        {k: v for k, v in features.items() if k in columns}))


def _image_paths(images: datasets.Dataset, split: str, base_dir: str | None) -> datasets.Dataset:
    """File-path images as an ``Image()`` column, relative paths read from ``base_dir``; a missing file is an error
    naming it (and how many others are missing)."""
    paths = [_path_inside(p, base_dir, f"split {split!r}, row {row}: image path")
             for row, p in enumerate(images["image"])]
    missing = [p for p in paths if not os.path.isfile(p)]
    if missing:
        raise FileNotFoundError(f"split {split!r}: {len(missing)} image file(s) not found, first {missing[0]}"
                                + ("" if base_dir else " (relative paths need --data_dir)"))
    return datasets.Dataset.from_dict({"image": paths}, features=datasets.Features({"image": datasets.Image()}))


def _path_inside(path: str, base_dir: str | None, where: str) -> str:
    """An image path of a dataset's path column, refused (``ValueError`` naming ``where`` and the path) when it
    leads outside the data folder ``base_dir``, as the folder, COCO and VOC loaders refuse them: a dataset file must
    not make training read files elsewhere on the machine. Relative paths are joined to ``base_dir`` and checked
    lexically by :func:`~mlic_hf.data.common.join_inside` (``..`` may not climb out); absolute paths are kept only
    when inside ``base_dir`` (to use images elsewhere, pass their common folder as ``--data_dir``). Without a data
    folder, relative paths are read as given (and must exist) and absolute ones are refused."""
    if os.path.isabs(path):
        if base_dir is not None:
            boundary = os.path.normpath(os.path.abspath(base_dir))
            normalised = os.path.normpath(path)
            if os.path.commonpath([boundary, normalised]) == boundary:
                return normalised
        raise ValueError(f"{where} {path!r} is an absolute path outside the dataset folder "
                         f"{base_dir if base_dir is not None else '(none given)'}: image paths must stay inside it "
                         "(give the folder holding the images as --data_dir, with paths relative to it)")
    if base_dir is None:
        return path
    return join_inside(os.path.abspath(base_dir), path, where)


def _image_ids(ds: datasets.Dataset, split: str, image_column: str) -> list[str]:
    for column in ("image_id", "id"):
        if column in ds.column_names and column != image_column:
            return [str(value) for value in ds[column]]
    feature = ds.features[image_column]
    if isinstance(feature, datasets.Value):
        return [os.path.splitext(os.path.basename(p))[0] for p in ds[image_column]]
    # the stored file name when the images carry one, else the row index: without decoding any image
    stored = ds.select_columns([image_column]).cast_column(image_column, datasets.Image(decode=False))[image_column]
    return [os.path.splitext(os.path.basename(item["path"]))[0] if item and item.get("path") else f"{split}-{i}"
            for i, item in enumerate(stored)]
