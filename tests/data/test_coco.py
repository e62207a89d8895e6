import json

import pytest

from mlic_hf.data.coco import load_coco
from mlic_hf.data.common import label_names_of, skipped_images_of

from .fixtures import COCO_CATEGORIES, coco_instances, make_coco, write_corrupt, write_image, write_text


def col(ds, column):
    return ds.select_columns([column])[column]


def test_category_id_order_and_labels(tmp_path):
    make_coco(tmp_path)
    dd = load_coco(tmp_path)
    # categories listed as 90, 1, 3 in the json -> sorted by id: person (1), car (3), toothbrush (90)
    assert label_names_of(dd) == ["person", "car", "toothbrush"]
    train = dd["train"]
    assert train.column_names == ["image", "labels", "label_ids", "image_id"]
    assert col(train, "image_id") == ["10", "20", "30"]
    # image 10: two person annotations + a crowd car (crowd annotations are kept)
    assert col(train, "labels") == [[1.0, 1.0, 0.0], [0.0, 0.0, 1.0], [0.0, 0.0, 0.0]]
    assert col(train, "label_ids") == [[0, 1], [2], []]
    # val images live under images/val2014/; JSON order is kept (id 7 before 5)
    assert col(dd["val"], "image_id") == ["7", "5"]
    assert col(dd["val"], "labels") == [[0.0, 0.0, 0.0], [0.0, 1.0, 0.0]]


def test_keep_empty_false_drops_unannotated_images(tmp_path):
    make_coco(tmp_path, val_under_images=False)
    dd = load_coco(tmp_path, keep_empty=False)
    assert dd["train"].num_rows == 2 and dd["val"].num_rows == 1
    assert col(dd["train"], "image_id") == ["10", "20"]
    assert col(dd["val"], "label_ids") == [[1]]
    kept = load_coco(tmp_path, keep_empty=True)
    assert kept["train"].num_rows == 3 and kept["val"].num_rows == 2


def test_year_2017_and_single_split(tmp_path):
    make_coco(tmp_path, year="2017")
    dd = load_coco(tmp_path, year="2017", splits="val")
    assert list(dd) == ["val"] and dd["val"].num_rows == 2
    with pytest.raises(FileNotFoundError, match=r"instances_train2014\.json"):
        load_coco(tmp_path, year="2014")


def test_unknown_category_id_names_file_and_id(tmp_path):
    make_coco(tmp_path)
    path = tmp_path / "annotations" / "instances_train2014.json"
    data = coco_instances([(1, "COCO_train2014_000000000010.jpg")], [(1, 1, 0), (1, 77, 0)])
    write_text(path, json.dumps(data))
    with pytest.raises(ValueError, match=r"instances_train2014\.json: annotations\[1\] has category_id 77"):
        load_coco(tmp_path, splits="train")


def test_annotation_for_unknown_image_and_category_mismatch(tmp_path):
    make_coco(tmp_path)
    path = tmp_path / "annotations" / "instances_train2014.json"
    write_text(path, json.dumps(coco_instances([(1, "COCO_train2014_000000000010.jpg")], [(2, 1, 0)])))
    with pytest.raises(ValueError, match="image_id 2, which is not in 'images'"):
        load_coco(tmp_path, splits="train")
    fewer = [c for c in COCO_CATEGORIES if c["id"] != 90]
    write_text(path, json.dumps(coco_instances([(1, "COCO_train2014_000000000010.jpg")], [], categories=fewer)))
    with pytest.raises(ValueError, match="categories differ"):
        load_coco(tmp_path)


def test_test_split_and_bad_arguments_are_refused(tmp_path):
    make_coco(tmp_path)
    with pytest.raises(ValueError, match="no public instance annotations"):
        load_coco(tmp_path, splits=("train", "test"))
    with pytest.raises(ValueError, match="year"):
        load_coco(tmp_path, year="2015")
    with pytest.raises(ValueError, match="on_bad_image"):
        load_coco(tmp_path, on_bad_image="ignore")


def test_missing_image_folder_and_missing_image(tmp_path):
    make_coco(tmp_path)
    missing = tmp_path / "train2014" / "COCO_train2014_000000000020.jpg"
    missing.unlink()
    with pytest.raises(FileNotFoundError, match=str(missing)):
        load_coco(tmp_path, splits="train")
    # without verification only existence is checked: the missing file still raises
    with pytest.raises(FileNotFoundError, match=str(missing)):
        load_coco(tmp_path, splits="train", verify_images=False)
    train = load_coco(tmp_path, splits="train", on_bad_image="skip")["train"]
    assert col(train, "image_id") == ["10", "30"] and skipped_images_of(train) == 1
    for image in (tmp_path / "train2014").iterdir():
        image.unlink()
    (tmp_path / "train2014").rmdir()
    with pytest.raises(FileNotFoundError, match=r"COCO image folder not found: .*train2014 or .*images/train2014"):
        load_coco(tmp_path, splits="train")


def test_verify_images_false_does_not_open_files(tmp_path):
    make_coco(tmp_path)
    write_corrupt(tmp_path / "train2014" / "COCO_train2014_000000000030.jpg")
    with pytest.raises(ValueError, match="COCO_train2014_000000000030.jpg"):
        load_coco(tmp_path, splits="train")
    train = load_coco(tmp_path, splits="train", verify_images=False)["train"]
    assert train.num_rows == 3 and skipped_images_of(train) == 0


def test_file_name_leaving_the_root_is_refused_and_absolute_names_stay_inside(tmp_path):
    make_coco(tmp_path / "coco")
    write_image(tmp_path / "outside.jpg")  # a real image outside the dataset: it must not be read
    ann = tmp_path / "coco" / "annotations" / "instances_val2014.json"
    write_text(ann, json.dumps(coco_instances([(1, "a.jpg"), (2, "../../../outside.jpg")], [])))
    expected = rf"{ann}: images\[1\]\.file_name '\.\./\.\./\.\./outside\.jpg' leads outside the dataset folder"
    with pytest.raises(ValueError, match=expected):
        load_coco(tmp_path / "coco", splits="val", verify_images=False)
    # an absolute file_name is read inside the image folder (os.path.join would have returned it unchanged)
    write_text(ann, json.dumps(coco_instances([(1, str(tmp_path / "outside.jpg"))], [])))
    inside = tmp_path / "coco" / "images" / "val2014" / tmp_path.relative_to("/") / "outside.jpg"
    with pytest.raises(FileNotFoundError, match=f"image file not found: {inside}"):
        load_coco(tmp_path / "coco", splits="val")


def test_split_without_images_names_the_instances_file(tmp_path):
    make_coco(tmp_path)
    ann = tmp_path / "annotations" / "instances_val2014.json"
    write_text(ann, json.dumps(coco_instances([(7, "COCO_val2014_000000000007.jpg")], [])))
    expected = rf"split 'val' \({ann}, 1 images without annotations dropped \(keep_empty=False\)\): has no images"
    with pytest.raises(ValueError, match=expected):
        load_coco(tmp_path, splits="val", keep_empty=False)
    write_text(ann, json.dumps(coco_instances([], [])))
    with pytest.raises(ValueError, match=rf"split 'val' \({ann}\): has no images"):
        load_coco(tmp_path, splits="val")
