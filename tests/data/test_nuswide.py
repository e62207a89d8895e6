import datasets
import pytest

from mlic_hf.data.common import label_names_of, skipped_images_of
from mlic_hf.data.nuswide import load_nus_wide

from .fixtures import NUS_CONCEPTS, make_nus_wide, write_text


def col(ds, column):
    return ds.select_columns([column])[column]


@pytest.mark.parametrize("concepts_in_subdir", [False, True])
def test_official_layout_with_backslash_paths(tmp_path, concepts_in_subdir):
    make_nus_wide(tmp_path, concepts_in_subdir=concepts_in_subdir)
    dd = load_nus_wide(tmp_path)
    assert list(dd) == ["train", "test"]
    assert label_names_of(dd) == NUS_CONCEPTS
    train = dd["train"]
    assert col(train, "image_id") == ["0001_2124494179", "0002_1234", "0003_5678"]
    assert col(train, "labels") == [[1.0, 0.0, 1.0], [0.0, 0.0, 0.0], [0.0, 1.0, 0.0]]
    assert col(train, "label_ids") == [[0, 2], [], [1]]
    # "actor\\0001_...jpg" resolves to Flickr/actor/0001_...jpg
    paths = [row["path"] for row in train.cast_column("image", datasets.Image(decode=False))["image"]]
    assert paths[0] == str(tmp_path / "Flickr" / "actor" / "0001_2124494179.jpg")
    # "C:\\ImageData\\Flickr\\zebra\\0004_999.jpg": the prefix up to Flickr is dropped
    test = dd["test"]
    assert col(test, "image_id") == ["0004_999"] and col(test, "labels") == [[1.0, 1.0, 0.0]]
    assert test[0]["image"].size == (6, 4)


def test_drop_unlabeled(tmp_path):
    make_nus_wide(tmp_path)
    train = load_nus_wide(tmp_path, splits="train", drop_unlabeled=True)["train"]
    assert col(train, "image_id") == ["0001_2124494179", "0003_5678"]


def test_line_count_mismatch_names_file_and_counts(tmp_path):
    make_nus_wide(tmp_path)
    label_file = tmp_path / "Groundtruth" / "TrainTestLabels" / "Labels_sky_Train.txt"
    write_text(label_file, "0\n1\n0\n1\n")
    with pytest.raises(ValueError, match=r"Labels_sky_Train\.txt: has 4 label lines but .*TrainImagelist\.txt lists 3"):
        load_nus_wide(tmp_path, splits="train")
    # the test split is unaffected
    assert load_nus_wide(tmp_path, splits="test")["test"].num_rows == 1


def test_bad_label_value_and_missing_label_file(tmp_path):
    make_nus_wide(tmp_path)
    label_file = tmp_path / "Groundtruth" / "TrainTestLabels" / "Labels_water_Test.txt"
    write_text(label_file, "2\n")
    with pytest.raises(ValueError, match=r"Labels_water_Test\.txt, line 1: expected 0 or 1, got '2'"):
        load_nus_wide(tmp_path, splits="test")
    label_file.unlink()
    with pytest.raises(FileNotFoundError, match=r"Labels_water_Test\.txt"):
        load_nus_wide(tmp_path, splits="test")


def test_missing_image_list_and_concepts(tmp_path):
    make_nus_wide(tmp_path)
    (tmp_path / "ImageList" / "TestImagelist.txt").unlink()
    with pytest.raises(FileNotFoundError, match=r"ImageList/TestImagelist\.txt"):
        load_nus_wide(tmp_path)
    (tmp_path / "Concepts81.txt").unlink()
    with pytest.raises(FileNotFoundError, match=r"Concepts81\.txt"):
        load_nus_wide(tmp_path, splits="train")


def test_missing_flickr_image_is_named_or_skipped(tmp_path):
    make_nus_wide(tmp_path)
    missing = tmp_path / "Flickr" / "beach" / "0002_1234.jpg"
    missing.unlink()
    with pytest.raises(FileNotFoundError, match=str(missing)):
        load_nus_wide(tmp_path, splits="train", verify_images=False)
    train = load_nus_wide(tmp_path, splits="train", on_bad_image="skip")["train"]
    assert col(train, "image_id") == ["0001_2124494179", "0003_5678"] and skipped_images_of(train) == 1


def test_image_path_leaving_the_image_folder_is_refused_naming_list_and_line(tmp_path):
    make_nus_wide(tmp_path)
    image_list = write_text(tmp_path / "ImageList" / "TestImagelist.txt", "..\\..\\outside.jpg\r\n")
    expected = rf"{image_list}, line 1: image path '\.\./\.\./outside\.jpg' leads outside the dataset folder"
    with pytest.raises(ValueError, match=expected):
        load_nus_wide(tmp_path, splits="test", verify_images=False)


def test_split_emptied_by_drop_unlabeled_is_an_error(tmp_path):
    make_nus_wide(tmp_path)
    write_text(tmp_path / "Groundtruth" / "TrainTestLabels" / "Labels_animal_Test.txt", "0\r\n")
    write_text(tmp_path / "Groundtruth" / "TrainTestLabels" / "Labels_sky_Test.txt", "0\r\n")
    with pytest.raises(ValueError, match=r"split 'test' \(.*TestImagelist\.txt, 1 images .*\): has no images"):
        load_nus_wide(tmp_path, splits="test", drop_unlabeled=True)
