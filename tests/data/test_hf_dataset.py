"""Any 🤗 Datasets dataset as an mlic_hf dataset (``mlic_hf.data.hf_dataset``): every label form read to the right
multi-hot targets, every source kind (save_to_disk, parquet, imagefolder with metadata, CSV of paths) loaded offline,
the validation split made from train when missing, clear errors, and ``scripts/train.py``, ``scripts/evaluate.py``
and ``scripts/compute_label_groups.py`` driven with ``--dataset_name``."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import datasets
import numpy as np
import pytest
from PIL import Image

from mlic_hf.data.hf_dataset import HFDatasetArguments, label_encoder, load_hf_dataset, parse_label_names

NAMES = ["person", "cup", "cat", "vehicle"]
# (photo, label names) per image: ten images of four scikit-image photos, one with two labels
ROWS = [("astronaut", ["person"]), ("coffee", ["cup"]), ("chelsea", ["cat"]), ("rocket", ["vehicle", "person"]),
        ("astronaut", ["person"]), ("coffee", ["cup", "person"]), ("chelsea", ["cat"]), ("rocket", ["vehicle"]),
        ("coffee", ["cup"]), ("chelsea", ["cat", "cup"])]


def _multi_hot(rows, names=NAMES) -> list[list[float]]:
    return [[1.0 if name in labels else 0.0 for name in names] for _, labels in rows]


@pytest.fixture(scope="module")
def photo_files(tmp_path_factory) -> list[Path]:
    """ROWS as 32×32 PNG files of real photos."""
    import skimage.data

    folder = tmp_path_factory.mktemp("photos")
    paths = []
    for index, (photo, _) in enumerate(ROWS):
        path = folder / f"{photo}_{index}.png"
        Image.fromarray(getattr(skimage.data, photo)()).convert("RGB").resize((32, 32)).save(path)
        paths.append(path)
    return paths


# ----------------------------------------------------------------------------------------------------------------------
# Label forms
# ----------------------------------------------------------------------------------------------------------------------


def _encode(feature, values, **kwargs):
    encoder = label_encoder(feature, "labels", training_values=values, **kwargs)
    labels, unknown, dropped = encoder.encode(values)
    return encoder.names, labels, unknown, dropped


def test_classlabel_id_lists_drop_minus_one():
    feature = datasets.Sequence(datasets.ClassLabel(names=NAMES))
    names, labels, unknown, dropped = _encode(feature, [[0, 3], [], [2, -1]])
    assert names == NAMES and unknown is None and dropped == [-1]
    np.testing.assert_array_equal(labels, [[1, 0, 0, 1], [0, 0, 0, 0], [0, 0, 1, 0]])


def test_classlabel_vector_of_class_count_is_multi_hot():
    feature = datasets.Sequence(datasets.ClassLabel(names=NAMES), length=4)
    names, labels, unknown, _ = _encode(feature, [[1, 0, 0, 1], [0, -1, 1, 0]])
    assert names == NAMES
    np.testing.assert_array_equal(labels, [[1, 0, 0, 1], [0, 0, 1, 0]])
    np.testing.assert_array_equal(unknown, [[False] * 4, [False, True, False, False]])


def test_name_lists_sorted_label_set_from_training_split():
    feature = datasets.Sequence(datasets.Value("string"))
    encoder = label_encoder(feature, "tags", training_values=[["dog", "cat"], ["zebra"], []])
    assert encoder.names == ["cat", "dog", "zebra"]
    labels, unknown, dropped = encoder.encode([["zebra", "unicorn"], None])  # another split: unseen name dropped
    np.testing.assert_array_equal(labels, [[0, 0, 1], [0, 0, 0]])
    assert dropped == ["unicorn"]
    np.testing.assert_array_equal(unknown, [[False] * 3, [True] * 3])  # a null list: labels unknown


@pytest.mark.parametrize("dtype", ["int64", "float32", "int8"])
def test_numeric_multi_hot_minus_one_is_ignored(dtype):
    feature = datasets.Sequence(datasets.Value(dtype))
    names, labels, unknown, _ = _encode(feature, [[1, 0, -1, 0], [0, 1, 1, 0]], label_names=NAMES)
    assert names == NAMES
    np.testing.assert_array_equal(labels, [[1, 0, 0, 0], [0, 1, 1, 0]])
    np.testing.assert_array_equal(unknown, [[False, False, True, False], [False] * 4])


def test_numeric_id_lists_of_varying_length_need_names():
    feature = datasets.Sequence(datasets.Value("int64"))
    names, labels, _, _ = _encode(feature, [[3], [0, 2, 1]], label_names=NAMES)
    np.testing.assert_array_equal(labels, [[0, 0, 0, 1], [1, 1, 1, 0]])
    with pytest.raises(ValueError, match="integer label ids without class names: give them with --label_names"):
        _encode(feature, [[3], [0, 2, 1]])


def test_multi_hot_needs_matching_names():
    feature = datasets.Sequence(datasets.Value("int64"), length=4)
    with pytest.raises(ValueError, match="multi-hot vectors of length 4 without class names"):
        _encode(feature, [[1, 0, 0, 1]])
    with pytest.raises(ValueError, match="length 4, but 2 label names were given"):
        _encode(feature, [[1, 0, 0, 1]], label_names=["a", "b"])


def test_single_classlabel_minus_one_row_is_all_unknown():
    names, labels, unknown, _ = _encode(datasets.ClassLabel(names=NAMES), [2, -1, 0])
    np.testing.assert_array_equal(labels, [[0, 0, 1, 0], [0, 0, 0, 0], [1, 0, 0, 0]])
    np.testing.assert_array_equal(unknown.any(axis=1), [False, True, False])
    assert unknown[1].all()


def test_joined_names_with_separator():
    names, labels, _, _ = _encode(datasets.Value("string"), ["cat|dog", "dog", ""], separator="|")
    assert names == ["cat", "dog"]
    np.testing.assert_array_equal(labels, [[1, 1], [0, 1], [0, 0]])


def test_feature_names_must_match_given_names():
    with pytest.raises(ValueError, match="differ from the label names given"):
        _encode(datasets.Sequence(datasets.ClassLabel(names=NAMES)), [[0]], label_names=["a", "b", "c", "d"])


def test_unreadable_label_feature_names_column_and_type():
    with pytest.raises(ValueError, match=r"label column 'labels' has feature Value\('float32'\).*none of the forms"):
        _encode(datasets.Value("float32"), [0.5])


def test_label_names_flag_forms():
    assert parse_label_names("a, b,c") == ["a", "b", "c"]
    assert parse_label_names('["a,1", "b"]') == ["a,1", "b"]
    for bad in ("a,,b", "a,a", "[1, 2]", "[nope"):
        with pytest.raises(ValueError, match="--label_names"):
            parse_label_names(bad)
    with pytest.raises(ValueError, match="--train_val_split must be a fraction strictly between 0 and 1"):
        HFDatasetArguments(train_val_split=1.0)


# ----------------------------------------------------------------------------------------------------------------------
# Source kinds
# ----------------------------------------------------------------------------------------------------------------------


def _classlabel_dataset(photo_files) -> datasets.Dataset:
    features = datasets.Features({"image": datasets.Image(),
                                  "labels": datasets.Sequence(datasets.ClassLabel(names=NAMES))})
    return datasets.Dataset.from_dict(
        {"image": [str(p) for p in photo_files], "labels": [[NAMES.index(n) for n in labels] for _, labels in ROWS]},
        features=features)


def _check_contract(split: datasets.Dataset, rows, names=NAMES) -> None:
    assert split.column_names[:3] == ["image", "labels", "label_ids"] and split.column_names[-1] == "image_id"
    assert split.features["label_ids"].feature.names == names
    assert list(split["labels"]) == _multi_hot(rows, names)
    assert isinstance(split[0]["image"], Image.Image) and split[0]["image"].size == (32, 32)


def test_save_to_disk_dict_and_single_dataset(photo_files, tmp_path):
    data = _classlabel_dataset(photo_files)
    datasets.DatasetDict({"train": data.select(range(6)), "validation": data.select(range(6, 8)),
                          "test": data.select(range(8, 10))}).save_to_disk(tmp_path / "dict")
    loaded = load_hf_dataset(str(tmp_path / "dict"))
    assert {k: len(v) for k, v in loaded.items()} == {"train": 6, "validation": 2, "test": 2}
    _check_contract(loaded["test"], ROWS[8:])
    assert list(loaded["train"]["image_id"]) == [p.stem for p in photo_files[:6]]  # the stored file names

    data.save_to_disk(tmp_path / "single")
    single = load_hf_dataset(str(tmp_path / "single"), train_val_split=0.3, seed=5)
    assert sorted(single) == ["train", "validation"] and len(single["validation"]) == 3
    assert sorted(list(single["train"]["image_id"]) + list(single["validation"]["image_id"])) == sorted(p.stem for p in photo_files)
    again = load_hf_dataset(str(tmp_path / "single"), train_val_split=0.3, seed=5)
    assert list(again["validation"]["image_id"]) == list(single["validation"]["image_id"])  # seeded
    other = load_hf_dataset(str(tmp_path / "single"), train_val_split=0.3, seed=6)
    assert list(other["validation"]["image_id"]) != list(single["validation"]["image_id"])
    assert list(load_hf_dataset(str(tmp_path / "single"), train_val_split=None)) == ["train"]


def test_parquet_with_name_lists_and_renamed_columns(photo_files, tmp_path):
    table = datasets.Dataset.from_dict({"img": [str(p) for p in photo_files], "tags": [labels for _, labels in ROWS]})
    table = table.cast_column("img", datasets.Image())
    table.select(range(7)).to_parquet(str(tmp_path / "train.parquet"))
    table.select(range(7, 10)).to_parquet(str(tmp_path / "test.parquet"))
    files = {"train": str(tmp_path / "train.parquet"), "test": str(tmp_path / "test.parquet")}
    loaded = load_hf_dataset("parquet", data_files=files, image_column="img", label_column="tags",
                             train_val_split=None)
    names = sorted({name for _, labels in ROWS[:7] for name in labels})
    _check_contract(loaded["test"], ROWS[7:], names)


def test_imagefolder_with_metadata_multi_hot(photo_files, tmp_path):
    folder = tmp_path / "folder" / "train"
    folder.mkdir(parents=True)
    with open(folder / "metadata.jsonl", "w") as handle:
        for path, (_, labels) in zip(photo_files, ROWS):
            Image.open(path).save(folder / path.name)
            handle.write(json.dumps({"file_name": path.name, "labels": [int(n in labels) for n in NAMES]}) + "\n")
    loaded = load_hf_dataset("imagefolder", data_dir=str(tmp_path / "folder"), label_names=NAMES,
                             train_val_split=None)
    by_id = dict(zip(loaded["train"]["image_id"], loaded["train"]["labels"]))
    assert by_id == {path.stem: row for path, row in zip(photo_files, _multi_hot(ROWS))}


def test_csv_of_relative_paths_with_separator(photo_files, tmp_path):
    (tmp_path / "images").mkdir()
    lines = ["file,labels"]
    for path, (_, labels) in zip(photo_files, ROWS):
        Image.open(path).save(tmp_path / "images" / path.name)
        lines.append(f"images/{path.name},{';'.join(labels)}")
    (tmp_path / "data.csv").write_text("\n".join(lines) + "\n")
    loaded = load_hf_dataset("csv", data_files=str(tmp_path / "data.csv"), image_column="file",
                             label_separator=";", train_val_split=None)
    _check_contract(loaded["train"], ROWS, sorted(NAMES))
    assert list(loaded["train"]["image_id"]) == [p.stem for p in photo_files]

    (tmp_path / "images" / photo_files[3].name).unlink()
    with pytest.raises(FileNotFoundError, match=f"1 image file.*not found, first .*{photo_files[3].name}"):
        load_hf_dataset("csv", data_files=str(tmp_path / "data.csv"), image_column="file", label_separator=";")


def test_missing_columns_and_sources_are_named(photo_files, tmp_path):
    _classlabel_dataset(photo_files).save_to_disk(tmp_path / "saved")
    with pytest.raises(ValueError, match=r"no image column 'picture' \(columns: \['image', 'labels'\]\)"):
        load_hf_dataset(str(tmp_path / "saved"), image_column="picture")
    with pytest.raises(ValueError, match="no label column 'tags'"):
        load_hf_dataset(str(tmp_path / "saved"), label_column="tags")
    with pytest.raises(ValueError, match="--dataset_name parquet reads files: give --data_files"):
        load_hf_dataset("parquet")
    with pytest.raises(ValueError, match="'someone/not-cached': not a local dataset folder.*Hub dataset"):
        load_hf_dataset("someone/not-cached")


# ----------------------------------------------------------------------------------------------------------------------
# The scripts with --dataset_name
# ----------------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def saved_dataset(photo_files, tmp_path_factory) -> Path:
    """A save_to_disk dataset with train and test only (validation made from train)."""
    path = tmp_path_factory.mktemp("hfdata") / "saved"
    data = _classlabel_dataset(photo_files)
    datasets.DatasetDict({"train": data, "test": data.select(range(6))}).save_to_disk(path)
    return path


def _train_argv(output_dir, method="mlic-resnet-probabilistic", **flags) -> list[str]:
    from tests.models.tiny_configs import TINY_CONFIGS

    tiny = dict(TINY_CONFIGS[method])
    overrides = {k: v for k, v in tiny.items() if k not in ("backbone", "image_size")}
    argv = ["--method", method, "--backbone", tiny["backbone"], "--image_size", "32", "--output_dir", str(output_dir),
            "--per_device_train_batch_size", "4", "--max_steps", "3", "--learning_rate", "1e-3", "--ema_decay", "0",
            "--use_cpu", "true", "--dataloader_num_workers", "0", "--disable_tqdm", "true", "--report_to", "none",
            "--save_strategy", "no", "--rand_augment", "", "--cutout", "0"]
    if overrides:
        argv += ["--config_overrides", json.dumps(overrides)]
    for key, value in flags.items():
        argv += [f"--{key}", str(value)]
    return argv


def test_train_then_evaluate_with_dataset_name(saved_dataset, tmp_path, caplog):
    from tests.training.test_training import _load_script

    out = tmp_path / "run"
    with caplog.at_level(logging.INFO):
        assert _load_script("train").main(_train_argv(out, dataset_name=saved_dataset, seed=3)) == 0
    assert "becomes 'validation'" in caplog.text
    run = json.loads((out / "mlic_run.json").read_text())
    assert run["dataset"] == "saved" and run["dataset_id"] is None  # a local folder: its name only
    assert run["splits"] == {"train": "train", "eval": "validation", "test": "test"}
    assert str(tmp_path) not in (out / "mlic_run.json").read_text()
    config = json.loads((out / "config.json").read_text())
    assert [config["id2label"][str(i)] for i in range(4)] == NAMES

    metrics = tmp_path / "metrics.json"
    assert _load_script("evaluate").main(["--checkpoint", str(out), "--dataset_name", str(saved_dataset),
                                          "--output", str(metrics)]) == 0
    result = json.loads(metrics.read_text())
    assert result["split"] == "test" and result["num_samples"] == 6
    assert result["metrics"]["mAP"] == pytest.approx(run["test_metrics"]["mAP"], abs=1e-6)


@pytest.mark.parametrize("form", ["names", "multi_hot", "classlabel"])
def test_train_every_label_form_and_report_on_validation(form, photo_files, tmp_path):
    """Each label form through scripts/train.py; a dataset without a test split is reported on the validation split
    made from train, which scripts/evaluate.py rebuilds from the same seed."""
    from tests.training.test_training import _load_script

    columns = {"names": ([labels for _, labels in ROWS], datasets.Sequence(datasets.Value("string"))),
               "multi_hot": ([[int(v) for v in row] for row in _multi_hot(ROWS)],
                             datasets.Sequence(datasets.Value("int32"), length=4)),
               "classlabel": ([NAMES.index(labels[0]) for _, labels in ROWS], datasets.ClassLabel(names=NAMES))}
    values, feature = columns[form]
    data = datasets.Dataset.from_dict({"picture": [str(p) for p in photo_files], "target": values},
                                      features=datasets.Features({"picture": datasets.Image(), "target": feature}))
    data.save_to_disk(tmp_path / "data")
    flags = {"dataset_name": tmp_path / "data", "image_column_name": "picture", "label_column_name": "target",
             "train_val_split": 0.3, "seed": 11}
    if form == "multi_hot":
        flags["label_names"] = ",".join(NAMES)
    out = tmp_path / "run"
    assert _load_script("train").main(_train_argv(out, **flags)) == 0
    run = json.loads((out / "mlic_run.json").read_text())
    assert run["splits"]["test"] == "validation" and run["num_test_samples"] == 3
    evaluate_flags = [f"--{k}={v}" for k, v in flags.items() if k not in ("train_val_split",)]
    metrics = tmp_path / "metrics.json"
    assert _load_script("evaluate").main(["--checkpoint", str(out), "--train_val_split", "0.3", "--output",
                                          str(metrics), *evaluate_flags]) == 0
    result = json.loads(metrics.read_text())
    assert result["split"] == "validation"
    assert result["metrics"]["mAP"] == pytest.approx(run["test_metrics"]["mAP"], abs=1e-6)


def test_ml_vpt_label_groups_from_dataset_name(saved_dataset, tmp_path):
    """ML-VPT computes its label groups from the converted training split, as compute_label_groups.py does."""
    from tests.training.test_training import _load_script

    from mlic_hf.models.multilabel_vpt.grouping import compute_label_groups

    out = tmp_path / "run"
    argv = _train_argv(out, method="mlic-ml-vpt", dataset_name=saved_dataset, train_val_split=0.2, seed=0)
    assert _load_script("train").main(argv) == 0
    config = json.loads((out / "config.json").read_text())
    train = load_hf_dataset(str(saved_dataset), train_val_split=0.2, seed=0)["train"]
    groups = compute_label_groups(np.asarray(list(train["labels"])), num_groups=config["num_groups"])
    assert config["co_groups"] == list(groups.to_config_kwargs()["co_groups"])

    output = tmp_path / "groups.json"
    assert _load_script("compute_label_groups").main(["--dataset_name", str(saved_dataset), "--num_groups", "2",
                                                      "--output", str(output)]) == 0
    saved = json.loads(output.read_text())
    full = np.asarray(list(load_hf_dataset(str(saved_dataset), train_val_split=None)["train"]["labels"]))
    assert saved["co"] == list(compute_label_groups(full, num_groups=2).co)
    assert saved["id2label"] == {str(i): name for i, name in enumerate(NAMES)}


def test_hub_dataset_id_is_loaded_and_linked_on_the_card(saved_dataset, tmp_path, monkeypatch):
    """A Hub id goes to ``datasets.load_dataset`` with the config name (the Hub cannot be reached here: the call is
    answered from a local copy) and the model card links the dataset."""
    from tests.training.test_training import _load_script

    calls = []

    def load_dataset(name, config_name=None, **kwargs):
        calls.append((name, config_name, kwargs))
        return datasets.load_from_disk(str(saved_dataset))

    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    out = tmp_path / "run"
    argv = _train_argv(out, dataset_name="someone/photos", dataset_config_name="small")
    assert _load_script("train").main(argv) == 0
    assert calls == [("someone/photos", "small", {"data_files": None, "data_dir": None})]
    run = json.loads((out / "mlic_run.json").read_text())
    assert run["dataset"] == run["dataset_id"] == "someone/photos" and run["data_args"]["dataset"] is None
    card = (out / "README.md").read_text()
    assert "[someone/photos](https://huggingface.co/datasets/someone/photos)" in card
    assert "datasets:\n- someone/photos" in card


@pytest.mark.parametrize("flags, expected", [
    ({"dataset": "fashion_mosaic", "dataset_name": "x"}, "give either --dataset"),
    ({"dataset_name": "x", "dataset_kwargs": "{}"}, None),  # an empty object is no option
    ({"dataset_name": "x", "dataset_kwargs": '{"num_train": 3}'}, "--dataset_kwargs sets options of a built-in"),
    ({"dataset_name": "x", "train_val_split": "0"}, "--train_val_split must be a fraction"),
    ({"dataset_name": "x", "label_names": "a,a"}, "--label_names has duplicate names"),
])
def test_dataset_name_flag_errors(flags, expected, tmp_path):
    from mlic_hf.training import parse_args

    argv = ["--output_dir", str(tmp_path)] + [item for k, v in flags.items() for item in (f"--{k}", v)]
    if expected is None:
        parse_args(argv)
        return
    with pytest.raises(ValueError, match=expected):
        parse_args(argv)


@pytest.mark.parametrize("builder,good,bad", [("parquet", "train.parquet", "test.parquet"),
                                              ("webdataset", "train.tar", "test.tar")])
def test_an_unreadable_data_file_is_named(builder, good, bad, tmp_path):
    """A corrupt parquet file or an empty tar archive: one ValueError naming the file (🤗 Datasets only says that
    generating the dataset failed)."""
    import io
    import tarfile

    if builder == "parquet":
        datasets.Dataset.from_dict({"image": ["a.png"], "labels": [["cat"]]}).to_parquet(str(tmp_path / good))
        (tmp_path / bad).write_bytes(b"not a parquet file")
    else:
        with tarfile.open(tmp_path / good, "w") as archive:
            member = tarfile.TarInfo("a.labels.json")
            member.size = len(b'["cat"]')
            archive.addfile(member, io.BytesIO(b'["cat"]'))
        (tmp_path / bad).write_bytes(b"")
    files = {"train": str(tmp_path / good), "test": str(tmp_path / bad)}
    with pytest.raises(ValueError, match=rf"--dataset_name '{builder}': cannot read .*{bad}: "):
        load_hf_dataset(builder, data_files=files, train_val_split=None)
