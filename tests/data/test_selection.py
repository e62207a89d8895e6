"""Dataset selection shared by every script (mlic_hf.data.selection.DatasetArguments) and the one script that only
reads labels, scripts/dataset_stats.py, on a built-in and on a 🤗 Datasets dataset."""

import importlib.util
from pathlib import Path

import pytest

from mlic_hf.data.selection import DEFAULT_DATASET, DatasetArguments

from .fixtures import make_folder

REPO = Path(__file__).resolve().parents[2]


def _dataset_stats():
    spec = importlib.util.spec_from_file_location("dataset_stats", REPO / "scripts" / "dataset_stats.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_defaults_and_conflicts():
    assert DatasetArguments().dataset == DEFAULT_DATASET and DatasetArguments().label == DEFAULT_DATASET
    hub = DatasetArguments(dataset_name="parquet", data_files="a.parquet")
    assert hub.dataset is None and hub.label == "parquet"
    with pytest.raises(ValueError, match="either --dataset .* or --dataset_name .*, not both"):
        DatasetArguments(dataset="voc2007", dataset_name="parquet")
    with pytest.raises(ValueError, match="--dataset_kwargs sets options of a built-in dataset's loader"):
        DatasetArguments(dataset_name="parquet", dataset_kwargs='{"num_train": 8}')
    with pytest.raises(ValueError, match="--dataset_kwargs must be a JSON object"):
        DatasetArguments(dataset_name="parquet", dataset_kwargs="[1]")
    with pytest.raises(ValueError, match="--train_val_split"):  # the 🤗 Datasets flags are checked too
        DatasetArguments(train_val_split=1.5)


def test_default_split_of_each_role():
    assert DatasetArguments(dataset="voc2007").default_splits() == {"train": "trainval", "eval": "test",
                                                                     "test": "test"}
    hub = DatasetArguments(dataset_name="parquet")
    assert hub.default_splits(["train", "val"]) == {"train": "train", "eval": "val", "test": "val"}
    assert hub.default_splits(["train", "test"], eval_split="dev")["eval"] == "dev"


def test_load_split_of_a_folder_dataset(tmp_path):
    data = DatasetArguments(dataset="folder", data_dir=str(make_folder(tmp_path / "data")))
    train, name = data.load_split(role="train")
    assert name == "train" and len(train) == 2
    test, name = data.load_split(role="test", max_samples=1)
    assert name == "test" and len(test) == 1
    assert data.load_split("train", max_samples=1)[0][0]["image_id"] == train[0]["image_id"]
    with pytest.raises(ValueError, match=r"split 'val' not in dataset 'folder' \(has \['train', 'test'\]\)"):
        data.load_split("val")
    with pytest.raises(ValueError, match="--max_samples must be at least 1"):
        data.load_split(max_samples=0)


def test_dataset_stats_on_a_built_in_and_a_saved_dataset(tmp_path, capsys):
    script = _dataset_stats()
    root = str(make_folder(tmp_path / "data"))
    assert script.main(["--dataset", "folder", "--data_dir", root]) == 0
    built_in = capsys.readouterr().out
    assert built_in.startswith("folder/train\nimages: 2\nlabels per image: mean 1.500, min 1, max 2")
    assert "  cat + dog: 1 (lift 2.00)" in built_in  # 1 image of 2 has both; expected under independence 1/2

    # the same images as a 🤗 Datasets folder written by save_to_disk: the same statistics
    DatasetArguments(dataset="folder", data_dir=root).load_dataset_dict().save_to_disk(str(tmp_path / "saved"))
    assert script.main(["--dataset_name", str(tmp_path / "saved"), "--label_column_name", "label_ids"]) == 0
    saved = capsys.readouterr().out
    assert saved.split("\n", 1)[1] == built_in.split("\n", 1)[1]


def test_dataset_stats_errors_are_one_line(tmp_path, capsys):
    script = _dataset_stats()
    assert script.main(["--dataset", "folder", "--data_dir", str(make_folder(tmp_path / "d")), "--split", "x"]) == 2
    assert capsys.readouterr().err.startswith("error: split 'x' not in dataset 'folder'")
    assert script.main(["--dataset", "voc2007", "--dataset_name", "parquet"]) == 2
    assert "not both" in capsys.readouterr().err
    assert script.main(["--top", "-1"]) == 2
    assert capsys.readouterr().err == "error: --top must be >= 0, got -1\n"
