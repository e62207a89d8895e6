"""The ``(N, K)`` label matrix of an ``mlic_hf`` dataset split, read from its Arrow columns without decoding any image.

Shared by the label statistics (``scripts/dataset_stats.py``), ML-VPT's label grouping and anything else that needs a
split's labels as numbers: 1 = positive, 0 = negative, -1 = ignored (``ignore_mask``).
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np

__all__ = ["label_matrix_from_dataset"]


def _list_column_to_numpy(table: Any, column: str) -> tuple[np.ndarray, np.ndarray]:
    """``(values, offsets)`` of a (fixed-size or variable) list column of a ``pyarrow.Table``."""
    import pyarrow as pa

    array = table.column(column).combine_chunks()
    if array.null_count:
        raise ValueError(f"column {column!r}: {array.null_count} rows have no value (null)")
    if pa.types.is_fixed_size_list(array.type):
        width = array.type.list_size
        values = array.flatten().to_numpy(zero_copy_only=False)
        offsets = np.arange(len(array) + 1, dtype=np.int64) * width
        return values, offsets
    if pa.types.is_list(array.type) or pa.types.is_large_list(array.type):
        offsets = np.asarray(array.offsets.to_numpy(zero_copy_only=False), dtype=np.int64)
        values = array.values.to_numpy(zero_copy_only=False)[offsets[0]:offsets[-1]]
        return values, offsets - offsets[0]
    raise ValueError(f"column {column!r}: expected a list column (one list per sample), got arrow type {array.type}")


def label_matrix_from_dataset(
    dataset: Any,
    label_column: str = "labels",
    num_labels: int | None = None,
    ignore_column: str | None = "ignore_mask",
) -> np.ndarray:
    """The ``(N, K)`` label matrix of an ``mlic_hf`` dataset split, read without decoding any image.

    ``mlic_hf.data`` loaders store (see :mod:`mlic_hf.data.common`) a multi-hot ``labels`` column
    (``List(Value("float32"), length=K)``), a ``label_ids`` column of positive class indices
    (``List(ClassLabel(names=...))``) and, for some datasets (VOC "difficult"), a boolean ``ignore_mask``.

    Args:
        dataset: a :class:`datasets.Dataset` (one split; a ``DatasetDict`` is rejected, pick a split). Selections /
            shuffles (indices mappings) are honoured.
        label_column: a multi-hot list column (any list of numbers or booleans, one value per label) or a column of
            class-index lists whose inner feature is a ``ClassLabel`` (e.g. ``"label_ids"``), converted to multi-hot.
        num_labels: the expected ``K``. For a multi-hot column the row width is checked against it; for a
            ``ClassLabel`` index column it sets ``K`` (default: the number of ``ClassLabel`` names).
        ignore_column: a boolean per-label column; where it is True the entry is set to ``-1`` (not observed, so it is
            not counted by :func:`cooccurrence_counts`). Used only if the dataset has it; ``None`` disables it.

    Returns:
        A float32 ``(N, K)`` matrix with 1 = positive, 0 = negative, -1 = ignored.
    """
    import datasets as hf_datasets

    if isinstance(dataset, (hf_datasets.DatasetDict, hf_datasets.IterableDatasetDict)):
        raise TypeError(f"expected one split (a datasets.Dataset), got a DatasetDict with splits {list(dataset)}")
    if not isinstance(dataset, hf_datasets.Dataset):
        raise TypeError(f"expected a datasets.Dataset, got {type(dataset).__name__}")
    if label_column not in dataset.column_names:
        raise ValueError(f"label column {label_column!r} not in the dataset (columns: {dataset.column_names})")
    if num_labels is not None:
        if isinstance(num_labels, bool) or not isinstance(num_labels, numbers.Integral):
            raise TypeError(f"num_labels: expected an integer, got {num_labels!r} ({type(num_labels).__name__})")
        if num_labels < 1:
            raise ValueError(f"num_labels: expected an integer >= 1, got {num_labels}")
    if len(dataset) == 0:
        raise ValueError("the dataset has no rows: cannot build a label matrix")

    feature = dataset.features[label_column]
    inner = getattr(feature, "feature", None)
    use_ignore = ignore_column is not None and ignore_column in dataset.column_names and ignore_column != label_column
    columns = [label_column] + ([ignore_column] if use_ignore else [])
    # Arrow format on the needed columns only: honours indices mappings and never touches (or decodes) the images.
    table = dataset.with_format("arrow", columns=columns)[:]
    values, offsets = _list_column_to_numpy(table, label_column)
    num_rows = len(offsets) - 1
    lengths = np.diff(offsets)

    if isinstance(inner, hf_datasets.ClassLabel):
        width = num_labels if num_labels is not None else inner.num_classes
        if width is None or width < 1:
            raise ValueError(f"column {label_column!r}: cannot tell the number of labels, pass num_labels")
        indices = np.asarray(values, dtype=np.int64)
        if indices.size and (indices.min() < 0 or indices.max() >= width):
            bad = int(indices[(indices < 0) | (indices >= width)][0])
            raise ValueError(f"column {label_column!r}: class index {bad} outside [0, {width})")
        matrix = np.zeros((num_rows, width), dtype=np.float32)
        matrix[np.repeat(np.arange(num_rows), lengths), indices] = 1.0
    else:
        if num_rows and (lengths != lengths[0]).any():
            row = int(np.flatnonzero(lengths != lengths[0])[0])
            raise ValueError(
                f"column {label_column!r}: rows have different lengths ({int(lengths[0])} and {int(lengths[row])} "
                f"at row {row}); expected a multi-hot vector per sample (for a class-index column use a ClassLabel "
                "feature)"
            )
        width = int(lengths[0])
        if num_labels is not None and width != num_labels:
            raise ValueError(f"column {label_column!r}: rows have {width} values, expected num_labels={num_labels}")
        if width == 0:
            raise ValueError(f"column {label_column!r}: rows are empty lists (no labels)")
        try:
            matrix = np.array(values, dtype=np.float32).reshape(num_rows, width)  # a writable copy
        except (TypeError, ValueError) as err:
            raise ValueError(f"column {label_column!r}: expected numeric multi-hot values ({err})") from None

    if use_ignore:
        mask_values, mask_offsets = _list_column_to_numpy(table, ignore_column)
        if len(mask_values) != matrix.size or (np.diff(mask_offsets) != matrix.shape[1]).any():
            raise ValueError(
                f"column {ignore_column!r}: expected {matrix.shape[1]} values per row (one per label), like "
                f"{label_column!r}"
            )
        mask = np.asarray(mask_values, dtype=bool).reshape(matrix.shape)
        matrix[mask] = -1.0
    return matrix
