import json

import numpy as np
import pytest

from mlic_hf.data.common import label_names_of, skipped_images_of
from mlic_hf.data.visual_genome import load_visual_genome

from .fixtures import VG_NAMES, make_vg_jsonl, make_vg_pat, make_vg_ssgrl, write_corrupt, write_jsonl, write_text


def col(ds, column):
    return ds.select_columns([column])[column]


def test_jsonl_with_names_and_ids(tmp_path):
    make_vg_jsonl(tmp_path)
    dd = load_visual_genome(tmp_path, num_labels=4)
    assert list(dd) == ["train", "test"]
    assert label_names_of(dd) == VG_NAMES
    train = dd["train"]
    assert col(train, "image_id") == ["2345", "2346", "custom-7"]
    assert col(train, "labels") == [[1.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 1.0], [0.0, 0.0, 0.0, 0.0]]
    assert col(train, "label_ids") == [[0, 1], [2, 3], []]
    assert col(dd["test"], "label_ids") == [[1]]  # the blank first line is ignored
    assert train[1]["image"].size == (6, 4)  # images/sub/2346.jpg


def test_jsonl_unknown_label_and_bad_fields(tmp_path):
    make_vg_jsonl(tmp_path)
    path = tmp_path / "test.jsonl"
    write_jsonl(path, [{"file_name": "2400.jpg", "labels": ["man"]}, {"file_name": "2400.jpg", "labels": ["unicorn"]}])
    with pytest.raises(ValueError, match=r"test\.jsonl, line 2: unknown label 'unicorn'"):
        load_visual_genome(tmp_path, num_labels=4)
    write_jsonl(path, [{"file_name": "2400.jpg", "label_ids": [4]}])
    with pytest.raises(ValueError, match=r"test\.jsonl, line 1: label id 4 is not an integer in \[0, 4\)"):
        load_visual_genome(tmp_path, num_labels=4)
    write_jsonl(path, [{"file_name": "2400.jpg", "labels": ["man"], "label_ids": [0]}])
    with pytest.raises(ValueError, match="exactly one of the fields 'labels' .* or 'label_ids' .*, got both"):
        load_visual_genome(tmp_path, num_labels=4)
    write_jsonl(path, [{"labels": ["man"]}])
    with pytest.raises(ValueError, match="missing or empty field 'file_name'"):
        load_visual_genome(tmp_path, num_labels=4)
    write_jsonl(path, ['{"file_name": "2400.jpg", "labels": ["man"]'])
    with pytest.raises(ValueError, match=r"test\.jsonl, line 1: invalid JSON"):
        load_visual_genome(tmp_path, num_labels=4)


def test_jsonl_label_count_must_match_num_labels(tmp_path):
    make_vg_jsonl(tmp_path)
    (tmp_path / "vg4_labels.txt").rename(tmp_path / "vg5_labels.txt")
    with pytest.raises(ValueError, match=r"vg5_labels\.txt: has 4 class names, expected num_labels=5"):
        load_visual_genome(tmp_path, num_labels=5, layout="jsonl")
    with pytest.raises(FileNotFoundError, match=r"no Visual Genome 4-label files found"):
        load_visual_genome(tmp_path, num_labels=4)


def test_ssgrl_layout_with_placeholder_names(tmp_path, caplog):
    make_vg_ssgrl(tmp_path)
    with caplog.at_level("WARNING"):
        dd = load_visual_genome(tmp_path, num_labels=4)
    assert label_names_of(dd) == ["vg4_0", "vg4_1", "vg4_2", "vg4_3"]
    assert "no class names" in caplog.text
    assert col(dd["train"], "image_id") == ["11", "12"]
    assert col(dd["train"], "label_ids") == [[0, 2], [3]]
    assert col(dd["test"], "labels") == [[1.0, 1.0, 0.0, 0.0]]  # found in VG_100K_2/
    assert dd["test"][0]["image"].size == (6, 4)


def test_ssgrl_layout_with_names_file_and_missing_entry(tmp_path):
    make_vg_ssgrl(tmp_path, with_names=True)
    assert label_names_of(load_visual_genome(tmp_path, num_labels=4, layout="ssgrl")) == VG_NAMES
    write_text(tmp_path / "vg_category_4_labels_index.json", json.dumps({"11.jpg": [0], "13.jpg": [1]}))
    with pytest.raises(ValueError, match=r"train_list_4\.txt: image '12\.jpg' has no entry in .*labels_index\.json"):
        load_visual_genome(tmp_path, num_labels=4, layout="ssgrl")


def test_mlc_pat_layout(tmp_path):
    make_vg_pat(tmp_path)
    dd = load_visual_genome(tmp_path, num_labels=4)  # "test" reads the formatted_val_* arrays
    assert label_names_of(dd) == ["man", "shirt", "tree", "sky"]
    assert col(dd["train"], "label_ids") == [[0, 3], [1, 2]]
    assert col(dd["test"], "image_id") == ["23"] and col(dd["test"], "labels") == [[0.0, 0.0, 1.0, 0.0]]
    np.save(tmp_path / "formatted_val_labels.npy", np.array([[0.0, 0, 1, 0], [1, 0, 0, 0]]))
    expected = r"formatted_val_labels\.npy: has 2 rows but .*formatted_val_images\.npy has 1"
    with pytest.raises(ValueError, match=expected):
        load_visual_genome(tmp_path, num_labels=4)


def test_bad_images(tmp_path):
    make_vg_jsonl(tmp_path)
    bad = write_corrupt(tmp_path / "images" / "2345.jpg")
    with pytest.raises(ValueError, match=f"cannot read image file {bad}"):
        load_visual_genome(tmp_path, num_labels=4, splits="train")
    train = load_visual_genome(tmp_path, num_labels=4, splits="train", on_bad_image="skip")["train"]
    assert col(train, "image_id") == ["2346", "custom-7"] and skipped_images_of(train) == 1
    with pytest.raises(ValueError, match="num_labels"):
        load_visual_genome(tmp_path, num_labels=0)
    with pytest.raises(ValueError, match="layout"):
        load_visual_genome(tmp_path, num_labels=4, layout="coco")


def test_image_paths_leaving_the_root_are_refused_in_every_layout(tmp_path):
    jsonl = make_vg_jsonl(tmp_path / "jsonl")
    rows = [{"file_name": "2400.jpg", "labels": []}, {"file_name": "../../x.jpg", "labels": []}]
    write_jsonl(jsonl / "test.jsonl", rows)
    with pytest.raises(ValueError, match=rf"{jsonl}/test\.jsonl, line 2: file_name '\.\./\.\./x\.jpg' leads outside"):
        load_visual_genome(jsonl, num_labels=4, splits="test", verify_images=False)
    write_jsonl(jsonl / "test.jsonl", [{"file_name": "../2400.jpg", "labels": []}])  # images/.. is still the root
    with pytest.raises(FileNotFoundError, match=rf"image file not found: {jsonl / '2400.jpg'}"):
        load_visual_genome(jsonl, num_labels=4, splits="test")

    ssgrl = make_vg_ssgrl(tmp_path / "ssgrl")
    write_text(ssgrl / "test_list_4.txt", "13.jpg\n../../13.jpg\n")
    write_text(ssgrl / "vg_category_4_labels_index.json", json.dumps({"13.jpg": [1], "../../13.jpg": [0]}))
    with pytest.raises(ValueError, match=r"test_list_4\.txt, line 2: image '\.\./\.\./13\.jpg' leads outside"):
        load_visual_genome(ssgrl, num_labels=4, splits="test", verify_images=False)

    pat = make_vg_pat(tmp_path / "pat")
    np.save(pat / "formatted_val_images.npy", np.array(["../VG_100K/23.jpg"]))
    expected = r"formatted_val_images\.npy: entry 0, image path '\.\./VG_100K/23\.jpg' leads outside"
    with pytest.raises(ValueError, match=expected):
        load_visual_genome(pat, num_labels=4, splits="test", verify_images=False)


def test_empty_jsonl_split_has_no_images(tmp_path):
    make_vg_jsonl(tmp_path)
    split_file = write_text(tmp_path / "test.jsonl", "\n")
    with pytest.raises(ValueError, match=rf"split 'test' \({split_file}\): has no images"):
        load_visual_genome(tmp_path, num_labels=4)
