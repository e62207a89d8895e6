import datasets
import pytest
from PIL import Image

from mlic_hf.data.common import (
    build_split,
    check_images,
    label_names_of,
    make_features,
    skipped_images_of,
)
from mlic_hf.data.folder import load_image_folder
from mlic_hf.data.transforms import BatchTransform, EvalTransform, defer_image_decoding

from .fixtures import make_folder, write_corrupt, write_image, write_jsonl, write_text, write_truncated_jpeg


def col(ds, column):
    return ds.select_columns([column])[column]


# ----------------------------------------------------------------------------------------------------------------------
# load_image_folder
# ----------------------------------------------------------------------------------------------------------------------


def test_vocabulary_is_the_sorted_union_over_all_splits(tmp_path):
    make_folder(tmp_path)
    dd = load_image_folder(tmp_path)
    assert list(dd) == ["train", "test"]  # canonical order; notasplit/ has no metadata
    names = ["bird", "cat", "dog", "zebra"]
    assert label_names_of(dd) == names
    assert col(dd["train"], "image_id") == ["img1", "img2"]
    assert col(dd["train"], "label_ids") == [[1, 2], [0]]
    assert col(dd["train"], "labels") == [[0.0, 1.0, 1.0, 0.0], [1.0, 0.0, 0.0, 0.0]]
    # loading one split keeps the vocabulary of all splits (zebra only appears in test)
    only_train = load_image_folder(tmp_path, splits="train")
    assert list(only_train) == ["train"] and label_names_of(only_train) == names


def test_labels_txt_sets_the_order(tmp_path):
    make_folder(tmp_path, with_labels_txt=True)
    dd = load_image_folder(tmp_path)
    assert label_names_of(dd) == ["zebra", "dog", "cat", "bird", "fish"]
    assert col(dd["train"], "label_ids") == [[1, 2], [3]]
    assert col(dd["test"], "labels") == [[1.0, 0.0, 0.0, 0.0, 0.0]]


def test_label_names_argument_wins_and_unknown_label_names_line(tmp_path):
    make_folder(tmp_path, with_labels_txt=True)
    dd = load_image_folder(tmp_path, splits=["test"], label_names=["zebra", "other"])
    assert label_names_of(dd) == ["zebra", "other"] and col(dd["test"], "label_ids") == [[0]]
    with pytest.raises(ValueError, match=r"train/metadata\.jsonl, line 1: unknown label 'dog'"):
        load_image_folder(tmp_path, label_names=["zebra", "other"])
    write_text(tmp_path / "labels.txt", "dog\ncat\n")
    expected = r"train/metadata\.jsonl, line 2: unknown label 'bird' \(not in .*labels\.txt\)"
    with pytest.raises(ValueError, match=expected):
        load_image_folder(tmp_path, splits="train")


def test_flat_layout_is_a_train_split(tmp_path):
    write_jsonl(
        tmp_path / "metadata.jsonl", [{"file_name": "a.png", "labels": ["x"]}, {"file_name": "b.jpg", "labels": []}]
    )
    write_image(tmp_path / "a.png")
    write_image(tmp_path / "b.jpg")
    dd = load_image_folder(tmp_path)
    assert list(dd) == ["train"] and col(dd["train"], "label_ids") == [[0], []]
    (tmp_path / "val").mkdir()
    write_jsonl(tmp_path / "val" / "metadata.jsonl", [])
    with pytest.raises(ValueError, match="both metadata.jsonl at the top level and in the split folders"):
        load_image_folder(tmp_path)


def test_metadata_errors_name_file_line_and_field(tmp_path):
    make_folder(tmp_path)
    meta = tmp_path / "test" / "metadata.jsonl"
    write_text(meta, '{"file_name": "img3.jpg", "labels": ["zebra"]}\n{"file_name": "img3.jpg", labels: []}\n')
    with pytest.raises(ValueError, match=r"test/metadata\.jsonl, line 2: invalid JSON"):
        load_image_folder(tmp_path)
    write_jsonl(meta, [{"file_name": "img3.jpg"}])
    with pytest.raises(ValueError, match=r"line 1: missing field 'labels'"):
        load_image_folder(tmp_path)
    write_jsonl(meta, [{"labels": ["zebra"]}])
    with pytest.raises(ValueError, match=r"line 1: missing field 'file_name'"):
        load_image_folder(tmp_path)
    write_jsonl(meta, [{"file_name": "img3.jpg", "labels": "zebra"}])
    with pytest.raises(ValueError, match=r"field 'labels' must be a list of non-empty strings"):
        load_image_folder(tmp_path)


def test_missing_split_and_missing_root(tmp_path):
    make_folder(tmp_path)
    with pytest.raises(FileNotFoundError, match=r"split 'validation': .*validation/metadata\.jsonl not found"):
        load_image_folder(tmp_path, splits=("train", "validation"))
    with pytest.raises(FileNotFoundError, match="image folder not found"):
        load_image_folder(tmp_path / "nope")
    with pytest.raises(FileNotFoundError, match="no metadata.jsonl found"):
        load_image_folder(tmp_path / "notasplit")


# ----------------------------------------------------------------------------------------------------------------------
# Bad-image policy, decoding, serialization (shared behaviour from common.py)
# ----------------------------------------------------------------------------------------------------------------------


def test_corrupt_image_raises_naming_the_file_or_is_skipped(tmp_path, caplog):
    make_folder(tmp_path)
    bad = write_corrupt(tmp_path / "train" / "img1.jpg")
    with pytest.raises(ValueError, match=f"cannot read image file {bad}"):
        load_image_folder(tmp_path)
    with caplog.at_level("WARNING", logger="mlic_hf.data.common"):
        dd = load_image_folder(tmp_path, on_bad_image="skip")
    assert col(dd["train"], "image_id") == ["img2"]
    assert skipped_images_of(dd["train"]) == 1 and "skipped_images=1" in dd["train"].info.description
    assert skipped_images_of(dd["test"]) == 0
    assert f"skipped 1 of 2 images (first: {bad})" in caplog.text
    # verify_images=False only checks existence: the corrupt file passes
    assert load_image_folder(tmp_path, verify_images=False)["train"].num_rows == 2


def test_missing_image_raises_naming_the_path(tmp_path):
    make_folder(tmp_path)
    missing = tmp_path / "train" / "nested" / "img2.png"
    missing.unlink()
    for verify in (True, False):
        with pytest.raises(FileNotFoundError, match=f"image file not found: {missing}"):
            load_image_folder(tmp_path, verify_images=verify)


def test_image_decodes_to_pil_and_roundtrips_through_save_to_disk(tmp_path):
    make_folder(tmp_path / "src", with_labels_txt=True)
    dd = load_image_folder(tmp_path / "src")
    image = dd["train"][1]["image"]
    assert isinstance(image, Image.Image) and image.size == (6, 4) and image.format == "PNG"
    dd.save_to_disk(str(tmp_path / "saved"))
    loaded = datasets.load_from_disk(str(tmp_path / "saved"))
    for split in dd:
        assert loaded[split].features == dd[split].features
        assert label_names_of(loaded[split]) == ["zebra", "dog", "cat", "bird", "fish"]
        assert loaded[split].info.description == dd[split].info.description
        assert col(loaded[split], "labels") == col(dd[split], "labels")
        assert col(loaded[split], "label_ids") == col(dd[split], "label_ids")
    assert isinstance(loaded["train"][0]["image"], Image.Image)


def test_ignore_mask_roundtrips(tmp_path):
    write_image(tmp_path / "a.jpg")
    ds = build_split(
        [{"path": tmp_path / "a.jpg", "label_ids": [0], "ignore_ids": [2]}], ["x", "y", "z"], with_ignore_mask=True
    )
    assert ds[0]["ignore_mask"] == [False, False, True] and ds[0]["image_id"] == "a"
    datasets.DatasetDict({"train": ds}).save_to_disk(str(tmp_path / "saved"))
    loaded = datasets.load_from_disk(str(tmp_path / "saved"))["train"]
    assert loaded.features == make_features(["x", "y", "z"], with_ignore_mask=True)
    assert loaded[0]["ignore_mask"] == [False, False, True]


def test_make_features_and_label_names_of(tmp_path):
    features = make_features(["a", "b"], with_ignore_mask=True)
    assert list(features) == ["image", "labels", "label_ids", "ignore_mask", "image_id"]
    assert features["labels"].length == 2 and features["labels"].feature.dtype == "float32"
    assert features["ignore_mask"].length == 2 and features["ignore_mask"].feature.dtype == "bool"
    assert isinstance(features["image"], datasets.Image)
    assert label_names_of(features) == ["a", "b"]
    assert "ignore_mask" not in make_features(["a"])
    with pytest.raises(ValueError, match="duplicate class name 'a'"):
        make_features(["a", "b", "a"])
    with pytest.raises(ValueError, match="empty"):
        make_features([])
    with pytest.raises(ValueError, match="label_ids"):
        label_names_of(datasets.Features({"x": datasets.Value("int32")}))
    write_image(tmp_path / "a.jpg")
    one = build_split([{"path": tmp_path / "a.jpg", "label_ids": []}], ["a", "b"])
    other = build_split([{"path": tmp_path / "a.jpg", "label_ids": []}], ["a", "c"])
    with pytest.raises(ValueError, match="different label names"):
        label_names_of(datasets.DatasetDict({"train": one, "test": other}))


def test_build_split_validates_records(tmp_path):
    write_image(tmp_path / "a.jpg")
    path = tmp_path / "a.jpg"
    with pytest.raises(ValueError, match=r"record 'a': 'label_ids' contains class index 3, expected 0 <= index < 2"):
        build_split([{"path": path, "label_ids": [3]}], ["x", "y"])
    with pytest.raises(ValueError, match="both positive and ignored"):
        build_split([{"path": path, "label_ids": [0], "ignore_ids": [0]}], ["x", "y"], with_ignore_mask=True)
    with pytest.raises(ValueError, match="without an ignore_mask"):
        build_split([{"path": path, "label_ids": [0], "ignore_ids": [1]}], ["x", "y"])
    with pytest.raises(ValueError, match="missing field 'path'"):
        build_split([{"label_ids": [0]}], ["x", "y"])


def test_check_images_many_files_uses_threads_and_keeps_order(tmp_path, caplog):
    paths = [write_image(tmp_path / f"{i:03d}.png", color=(i, i, i)) for i in range(80)]
    bad = [write_corrupt(tmp_path / "bad1.jpg"), tmp_path / "absent.jpg"]
    mixed = paths[:40] + [bad[0]] + paths[40:] + [bad[1]]
    with caplog.at_level("WARNING", logger="mlic_hf.data.common"):
        kept = check_images(mixed, on_bad_image="skip")
    assert kept == [str(p) for p in paths]
    assert f"skipped 2 of 82 images (first: {bad[0]})" in caplog.text
    with pytest.raises(ValueError, match="bad1.jpg"):
        check_images(mixed)
    with pytest.raises(FileNotFoundError, match="absent.jpg"):
        check_images(mixed, verify=False)
    with pytest.raises(ValueError, match="on_bad_image"):
        check_images(paths, on_bad_image="warn")


# ----------------------------------------------------------------------------------------------------------------------
# Path safety, truncated images, empty splits
# ----------------------------------------------------------------------------------------------------------------------


def test_file_name_leaving_the_root_is_refused_naming_file_line_and_value(tmp_path):
    root = make_folder(tmp_path / "ds")
    write_image(tmp_path / "other" / "x.png")  # a real file outside the dataset: it must not be read
    meta = root / "train" / "metadata.jsonl"
    write_jsonl(meta, [{"file_name": "img1.jpg", "labels": ["dog"]}, {"file_name": "../../other/x.png", "labels": []}])
    expected = rf"{meta}, line 2: file_name '\.\./\.\./other/x\.png' leads outside the dataset folder {root} "
    with pytest.raises(ValueError, match=expected):
        load_image_folder(root)
    write_jsonl(meta, [{"file_name": "..\\..\\other\\x.png", "labels": []}])  # Windows separators too
    with pytest.raises(ValueError, match=rf"{meta}, line 1: file_name .* leads outside"):
        load_image_folder(root, verify_images=False)


def test_dotdot_inside_the_root_absolute_names_and_symlinks_are_allowed(tmp_path):
    root = make_folder(tmp_path / "ds")
    outside = write_image(tmp_path / "elsewhere" / "real.png", color=(1, 2, 3))
    (root / "train" / "link").symlink_to(outside.parent, target_is_directory=True)
    meta = root / "train" / "metadata.jsonl"
    rows = [
        {"file_name": "../test/img3.jpg", "labels": ["dog"]},  # a sibling split: still inside the dataset
        {"file_name": "/nested/img2.png", "labels": []},  # absolute: read relative to the split folder
        {"file_name": "link/real.png", "labels": []},  # a symlink inside the root is the user's choice
        {"file_name": "link/../img1.jpg", "labels": []},  # normalised lexically: train/img1.jpg, not via the link
    ]
    write_jsonl(meta, rows)
    train = load_image_folder(root, splits="train")["train"]
    paths = [row["path"] for row in train.cast_column("image", datasets.Image(decode=False))["image"]]
    train_dir = root / "train"
    assert paths == [str(root / "test" / "img3.jpg"), str(train_dir / "nested" / "img2.png"),
                     str(train_dir / "link" / "real.png"), str(train_dir / "img1.jpg")]
    assert train[2]["image"].getpixel((0, 0)) == (1, 2, 3)


def test_truncated_jpeg_raises_naming_the_file_or_is_skipped_and_reported(tmp_path, caplog):
    make_folder(tmp_path)
    bad = write_truncated_jpeg(tmp_path / "train" / "img1.jpg")
    with Image.open(bad) as image:
        image.verify()  # the header check alone lets it through
    with pytest.raises(ValueError, match=rf"cannot read image file {bad}: OSError: image file is truncated"):
        load_image_folder(tmp_path)
    with caplog.at_level("WARNING", logger="mlic_hf.data.common"):
        dd = load_image_folder(tmp_path, on_bad_image="skip")
    assert col(dd["train"], "image_id") == ["img2"] and skipped_images_of(dd["train"]) == 1
    assert f"skipped 1 of 2 images (first: {bad})" in caplog.text


def test_truncated_jpeg_that_slips_through_is_named_when_decoded(tmp_path):
    make_folder(tmp_path)
    bad = write_truncated_jpeg(tmp_path / "train" / "img1.jpg")
    train = load_image_folder(tmp_path, verify_images=False)["train"]  # existence only: the file passes
    batches = defer_image_decoding(train).with_transform(BatchTransform(EvalTransform(8, [0.5] * 3, [0.5] * 3)))
    assert tuple(batches[1]["pixel_values"].shape) == (3, 8, 8)
    with pytest.raises(ValueError, match=rf"image 'img1' \({bad}\): cannot decode: OSError: image file is truncated"):
        batches[0]


def test_empty_metadata_file_has_no_images(tmp_path):
    make_folder(tmp_path)
    meta = write_text(tmp_path / "test" / "metadata.jsonl", "\n\n")
    with pytest.raises(ValueError, match=rf"{meta}: has no images"):
        load_image_folder(tmp_path)
    assert list(load_image_folder(tmp_path, splits="train")) == ["train"]  # an empty split not asked for is no error


def test_split_whose_images_are_all_skipped_is_an_error(tmp_path):
    make_folder(tmp_path)
    bad = write_corrupt(tmp_path / "test" / "img3.jpg")
    meta = tmp_path / "test" / "metadata.jsonl"
    with pytest.raises(ValueError, match=rf"split 'test' \({meta}\): all 1 images are missing or unreadable .*{bad}"):
        load_image_folder(tmp_path, on_bad_image="skip")
    with pytest.raises(ValueError, match=r"split 'x': has no images"):
        build_split([], ["a"], split="x")
