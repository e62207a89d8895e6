"""Reliability-audit cases of ``mlic_hf.data.hf_dataset`` / ``streaming`` / ``transforms``: label columns that were
silently misread (a multi-hot typo, joined names, case-mismatched names, null lists), image paths leading outside the
data folder, null images, and streamed shards whose columns or bytes are wrong. Each test fails without its fix."""

from __future__ import annotations

import json
import logging
import tarfile
from pathlib import Path

import datasets
import numpy as np
import pytest
from PIL import Image

from mlic_hf.data.hf_dataset import HFDatasetArguments, label_encoder, load_hf_dataset
from mlic_hf.data.transforms import decode_image

NAMES = ["a", "b", "c", "d"]


def _png(path: Path, colour=(200, 10, 10)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 8), colour).save(path)
    return path


def _images(folder: Path, count: int) -> list[str]:
    return [str(_png(folder / f"img{i}.png", (30 * i % 255, 40, 50))) for i in range(count)]


def _save(tmp_path: Path, labels, feature, count=None, **columns) -> str:
    count = count if count is not None else len(labels)
    data = datasets.Dataset.from_dict(
        {"image": _images(tmp_path / "imgs", count), "labels": labels, **columns},
        features=datasets.Features({"image": datasets.Image(), "labels": feature,
                                    **{k: datasets.Value("string") for k in columns}}))
    data.save_to_disk(tmp_path / "saved")
    return str(tmp_path / "saved")


# --- 1 and 6: multi-hot columns with a bad value -----------------------------------------------------------------


def test_multi_hot_int_with_one_typo_names_row_and_value(tmp_path):
    rows = [[1, 0, 0, 1], [0, 1, 0, 0], [0, 0, 1, 0], [1, 1, 0, 0], [0, 0, 0, 1], [0, 2, 0, 0], [1, 0, 1, 0],
            [0, 1, 1, 1]]
    path = _save(tmp_path, rows, datasets.Sequence(datasets.Value("int64")))
    with pytest.raises(ValueError, match=r"label column 'labels': row 5 holds 2 at position 1 of a multi-hot"):
        load_hf_dataset(path, label_names=NAMES, train_val_split=None)


def test_fixed_length_id_lists_stay_id_lists():
    # every row holds every id of three labels: no row looks like a multi-hot vector
    feature = datasets.Sequence(datasets.Value("int64"))
    values = [[0, 1, 2], [2, 1, 0], [1, 0, 2]]
    encoder = label_encoder(feature, "labels", ["x", "y", "z"], training_values=values)
    assert encoder.form == "lists of label ids"
    # and id lists of varying length are still id lists
    values = [[3], [0, 2, 1], [1]]
    assert label_encoder(feature, "labels", NAMES, training_values=values).form == "lists of label ids"


def test_nan_in_multi_hot_float_names_column_and_row():
    feature = datasets.Sequence(datasets.Value("float32"))
    values = [[1.0, 0.0, 0.0, 1.0], [0.0, float("nan"), 1.0, 0.0], [0.0, 0.0, 1.0, 0.0]]
    with pytest.raises(ValueError, match=r"label column 'y': row 1 holds nan at position 1"):
        label_encoder(feature, "y", NAMES, training_values=values)
    # a NaN in another split than the one the form was read from
    encoder = label_encoder(feature, "y", NAMES, training_values=values[:1])
    with pytest.raises(ValueError, match=r"label column 'y': row 1 holds nan"):
        encoder.encode(values)


# --- 2: label names that miss the label set -----------------------------------------------------------------------


def test_case_mismatched_names_are_an_error(tmp_path):
    feature = datasets.Sequence(datasets.Value("string"))
    path = _save(tmp_path, [["Dog"], ["Cat", "Dog"], ["Cat"]], feature)
    with pytest.raises(ValueError, match=r"split 'train': 4 of its 4 label entries.*'Cat', 'Dog'.*"
                                         r"\['cat', 'dog'\].*match ignoring case"):
        load_hf_dataset(path, label_names=["cat", "dog"], train_val_split=None)
    with pytest.raises(ValueError, match=r"not in the label set.*'Cat'.*\['horse', 'cow'\]\)"):
        HFDatasetArguments(dataset_name=path, label_names="horse,cow").load()


def test_a_few_unseen_names_only_warn(tmp_path, caplog):
    feature = datasets.Sequence(datasets.Value("string"))
    path = _save(tmp_path, [["cat"], ["cat", "dog"], ["dog"], ["unicorn"]], feature)
    with caplog.at_level(logging.WARNING):
        loaded = load_hf_dataset(path, label_names=["cat", "dog"], train_val_split=None)
    assert len(loaded["train"]) == 4 and "unicorn" in caplog.text


# --- 3: joined label names without a separator ---------------------------------------------------------------------


def _csv(tmp_path: Path, labels: list[str]) -> str:
    _images(tmp_path / "imgs", len(labels))
    lines = ["file,labels"] + [f"imgs/img{i}.png,\"{label}\"" for i, label in enumerate(labels)]
    (tmp_path / "data.csv").write_text("\n".join(lines) + "\n")
    return str(tmp_path / "data.csv")


def test_joined_names_without_separator_are_an_error(tmp_path):
    path = _csv(tmp_path, ["person|dog", "dog", "person", "cat|dog"])
    with pytest.raises(ValueError, match=r"label column 'labels'.*'person\|dog'.*--label_separator '\|'"):
        load_hf_dataset("csv", data_files=path, image_column="file", train_val_split=None)
    loaded = load_hf_dataset("csv", data_files=path, image_column="file", label_separator="|", train_val_split=None)
    assert loaded["train"].features["label_ids"].feature.names == ["cat", "dog", "person"]


def test_comma_in_names_only_warns_unless_a_part_stands_alone(tmp_path, caplog):
    feature = datasets.Value("string")
    with caplog.at_level(logging.WARNING):
        encoder = label_encoder(feature, "who", training_values=["Smith, John", "Doe, Jane"])
    assert encoder.names == ["Doe, Jane", "Smith, John"] and "--label_separator ','" in caplog.text
    with pytest.raises(ValueError, match="joined by ','"):
        label_encoder(feature, "who", training_values=["cat,dog", "dog"])
    # names given that hold the character are kept
    assert label_encoder(feature, "who", ["a|b", "c"], training_values=["a|b", "c"]).names == ["a|b", "c"]


# --- 4: a null label list means "unknown" in every form ------------------------------------------------------------


@pytest.mark.parametrize("feature,values", [
    (datasets.Sequence(datasets.Value("string")), [["a", "b"], None, ["c"]]),
    (datasets.Sequence(datasets.ClassLabel(names=NAMES)), [[0, 1], None, [2]]),
    (datasets.Sequence(datasets.Value("int64")), [[0, 1], None, [2]]),
    (datasets.Sequence(datasets.Value("int64"), length=4), [[1, 1, 0, 0], None, [0, 0, 1, 0]]),
])
def test_null_label_list_is_unknown_in_every_form(feature, values):
    encoder = label_encoder(feature, "labels", NAMES, training_values=values)
    labels, unknown, _ = encoder.encode(values)
    np.testing.assert_array_equal(labels, [[1, 1, 0, 0], [0, 0, 0, 0], [0, 0, 1, 0]])
    np.testing.assert_array_equal(unknown.all(axis=1), [False, True, False])
    assert not unknown[0].any() and not unknown[2].any()


def test_null_in_loaded_name_lists_goes_to_ignore_mask(tmp_path):
    path = _save(tmp_path, [["a"], None, ["b"]], datasets.Sequence(datasets.Value("string")))
    train = load_hf_dataset(path, train_val_split=None)["train"]
    assert train["ignore_mask"] == [[False, False], [True, True], [False, False]]


# --- 5: image paths outside the data folder ------------------------------------------------------------------------


@pytest.mark.parametrize("where", ["dotdot", "absolute"])
def test_csv_paths_outside_the_data_folder_are_refused(tmp_path, where):
    secret = _png(tmp_path / "secret" / "s.png")
    data = tmp_path / "data"
    _images(data / "imgs", 2)
    outside = "../secret/s.png" if where == "dotdot" else str(secret)
    (data / "data.csv").write_text(f"file,labels\nimgs/img0.png,a\n{outside},b\nimgs/img1.png,a\n")
    with pytest.raises(ValueError, match=rf"split 'train', row 1: image path '{outside}'.*outside the dataset folder"):
        load_hf_dataset("csv", data_files=str(data / "data.csv"), image_column="file", train_val_split=None)


def test_absolute_paths_inside_the_data_folder_are_read(tmp_path):
    paths = _images(tmp_path / "imgs", 2)
    (tmp_path / "data.csv").write_text(f"file,labels\n{paths[0]},a\n{paths[1]},b\n")
    loaded = load_hf_dataset("csv", data_files=str(tmp_path / "data.csv"), image_column="file", train_val_split=None)
    assert loaded["train"]["image_id"] == ["img0", "img1"]


# --- 7: a null image ------------------------------------------------------------------------------------------------


def test_null_image_names_row_and_image_id(tmp_path):
    data = datasets.Dataset.from_dict(
        {"image": [_images(tmp_path / "imgs", 1)[0], None, None], "labels": [[0], [1], [0]],
         "image_id": ["x0", "x1", "x2"]},
        features=datasets.Features({"image": datasets.Image(), "labels": datasets.Sequence(
            datasets.ClassLabel(names=["a", "b"])), "image_id": datasets.Value("string")}))
    data.save_to_disk(tmp_path / "saved")
    with pytest.raises(ValueError, match=r"split 'train': image column 'image' is null in 2 row\(s\), first row 1, "
                                         r"image id 'x1'"):
        load_hf_dataset(str(tmp_path / "saved"), train_val_split=None)


def test_decode_image_of_a_null_names_the_image():
    with pytest.raises(ValueError, match=r"image 'x7': the image is missing"):
        decode_image(None, "x7")
    with pytest.raises(ValueError, match=r"image 'x8': the image is missing"):
        decode_image({"path": None, "bytes": None}, "x8")


# --- 8: streamed shards whose columns or bytes are wrong -----------------------------------------------------------


def _png_bytes(i: int) -> bytes:
    import io

    out = io.BytesIO()
    Image.new("RGB", (8, 8), (i * 20 % 255, 0, 0)).save(out, "PNG")
    return out.getvalue()


def _shard(path: Path, rows: int, start: int, extra: str | None = None, image: str = "image") -> str:
    columns = {image: [{"bytes": _png_bytes(i), "path": None} for i in range(start, start + rows)],
               "labels": [[i % 2] for i in range(start, start + rows)],
               "image_id": [f"r{i}" for i in range(start, start + rows)]}
    features = {image: datasets.Image(), "labels": datasets.Sequence(datasets.ClassLabel(names=["a", "b"])),
                "image_id": datasets.Value("string")}
    if extra:
        columns[extra], features[extra] = ["x"] * rows, datasets.Value("string")
    datasets.Dataset.from_dict(columns, features=datasets.Features(features)).to_parquet(str(path))
    return str(path)


def _stream(files, builder="parquet", **args):
    from mlic_hf.data.streaming import load_streaming_train, resolve_streaming_source

    options = HFDatasetArguments(dataset_name=builder, data_files=json.dumps({"train": files}), **args)
    source = resolve_streaming_source(builder, data_files={"train": files})
    return load_streaming_train(options, source, seed=0, shuffle_buffer_size=1)


def test_streamed_shard_with_an_extra_column_is_read(tmp_path):
    files = [_shard(tmp_path / "s0.parquet", 4, 0), _shard(tmp_path / "s1.parquet", 4, 4, extra="note")]
    rows = list(_stream(files))
    assert sorted(row["image_id"] for row in rows) == [f"r{i}" for i in range(8)]


def test_streamed_shard_with_a_renamed_column_is_named(tmp_path):
    files = [_shard(tmp_path / "s0.parquet", 4, 0), _shard(tmp_path / "s1.parquet", 4, 4, image="img")]
    with pytest.raises(ValueError, match=r"shard .*s1.parquet has no column 'image' \(its columns: \['img'"):
        list(_stream(files))


def test_streamed_corrupt_data_page_names_the_shard(tmp_path):
    files = [_shard(tmp_path / "c0.parquet", 4, 0), _shard(tmp_path / "c1.parquet", 40, 4)]
    raw = bytearray(Path(files[1]).read_bytes())
    for i in range(len(raw) // 4, len(raw) // 2):  # scramble the data pages, keep the footer
        raw[i] = (raw[i] * 7 + 13) % 256
    Path(files[1]).write_bytes(bytes(raw))
    with pytest.raises(ValueError, match=r"--streaming: cannot read shard .*c1.parquet"):
        list(_stream(files))


def test_streamed_corrupt_tar_names_the_file(tmp_path):
    import io

    good = tmp_path / "t0.tar"
    with tarfile.open(good, "w") as archive:
        for key in range(3):
            for suffix, data in (("png", _png_bytes(key)), ("labels.json", b'["a"]')):
                member = tarfile.TarInfo(f"k{key}.{suffix}")
                member.size = len(data)
                archive.addfile(member, io.BytesIO(data))
    bad = tmp_path / "t1.tar"
    raw = bytearray(good.read_bytes())
    raw[:600] = bytes(range(256)) * 2 + bytes(88)  # a broken first header
    bad.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match=r"t1.tar: cannot read its webdataset row count: ReadError"):
        _stream([str(good), str(bad)], "webdataset", image_column_name="png", label_column_name="labels.json",
                 label_names="a,b")


def test_streamed_names_missing_the_label_set_are_an_error(tmp_path):
    path = tmp_path / "n0.parquet"
    datasets.Dataset.from_dict({"image": [{"bytes": _png_bytes(i), "path": None} for i in range(4)],
                                "labels": [["Dog"], ["Cat"], ["Dog"], ["Cat"]]},
                               features=datasets.Features({"image": datasets.Image(), "labels": datasets.Sequence(
                                   datasets.Value("string"))})).to_parquet(str(path))
    with pytest.raises(ValueError, match=r"first 4 rows of .*n0.parquet.*match ignoring case"):
        _stream([str(path)], label_names="cat,dog")


def test_streamed_image_paths_outside_the_data_folder_are_refused(tmp_path):
    _png(tmp_path / "secret.png")
    data = tmp_path / "data"
    _images(data / "imgs", 2)
    path = data / "p0.parquet"
    features = datasets.Features({"image": datasets.Value("string"),
                                  "labels": datasets.Sequence(datasets.ClassLabel(names=["a", "b"]))})
    datasets.Dataset.from_dict({"image": ["imgs/img0.png", "../secret.png", "imgs/img1.png"],
                                "labels": [[0], [1], [0]]}, features=features).to_parquet(str(path))
    with pytest.raises(ValueError, match=r"streamed row 1: image path '\.\./secret.png' leads outside the dataset"):
        list(_stream([str(path)]))
