"""The label-matrix reader shared by the label statistics and ML-VPT's grouping (mlic_hf.data.label_matrix)."""

import datasets
import numpy as np
import pytest

from mlic_hf.data.label_matrix import label_matrix_from_dataset

from .fixtures import label_split


def test_label_matrix_from_dataset(tmp_path):
    dataset = label_split(tmp_path)
    expected = np.array([[1, 1, -1], [0, 0, 1], [-1, 0, 0], [1, 0, 1]], dtype=np.float32)
    matrix = label_matrix_from_dataset(dataset)
    assert matrix.dtype == np.float32
    np.testing.assert_array_equal(matrix, expected)
    np.testing.assert_array_equal(label_matrix_from_dataset(dataset, ignore_column=None), np.maximum(expected, 0))
    np.testing.assert_array_equal(label_matrix_from_dataset(dataset, "label_ids"), expected)  # ClassLabel indices
    wider = label_matrix_from_dataset(dataset, "label_ids", num_labels=5, ignore_column=None)
    np.testing.assert_array_equal(wider, np.pad(np.maximum(expected, 0), ((0, 0), (0, 2))))
    with pytest.raises(ValueError, match="expected 5 values per row"):  # the ignore mask has 3 values per row
        label_matrix_from_dataset(dataset, "label_ids", num_labels=5)
    with pytest.raises(ValueError, match="class index 2 outside"):
        label_matrix_from_dataset(dataset, "label_ids", num_labels=2, ignore_column=None)
    # selections / shuffles are honoured
    np.testing.assert_array_equal(label_matrix_from_dataset(dataset.select([3, 1])), expected[[3, 1]])
    no_mask = dataset.remove_columns("ignore_mask")
    np.testing.assert_array_equal(label_matrix_from_dataset(no_mask), np.maximum(expected, 0))

    with pytest.raises(ValueError, match="not in the dataset"):
        label_matrix_from_dataset(dataset, "tags")
    with pytest.raises(ValueError, match="num_labels=4"):
        label_matrix_from_dataset(dataset, num_labels=4)
    with pytest.raises(TypeError, match="DatasetDict"):
        label_matrix_from_dataset(datasets.DatasetDict({"train": dataset}))
    with pytest.raises(ValueError, match="no rows"):
        label_matrix_from_dataset(dataset.select([]))
