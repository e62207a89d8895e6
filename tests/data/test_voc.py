import datasets
import pytest

from mlic_hf.data.common import label_names_of, skipped_images_of
from mlic_hf.data.voc import VOC_CLASSES, load_voc

from .fixtures import VOC_CLASSES as EXPECTED_CLASSES
from .fixtures import make_voc, voc_xml, write_corrupt, write_text

C = {name: index for index, name in enumerate(EXPECTED_CLASSES)}


def multi_hot(*names):
    out = [0.0] * 20
    for name in names:
        out[C[name]] = 1.0
    return out


def mask(*names):
    out = [False] * 20
    for name in names:
        out[C[name]] = True
    return out


def rows(ds, column):
    return ds.select_columns([column])[column]


def test_class_order_is_the_standard_voc_order(tmp_path):
    make_voc(tmp_path)
    dd = load_voc(tmp_path, splits=("train",))
    assert list(VOC_CLASSES) == list(EXPECTED_CLASSES)
    assert label_names_of(dd) == list(EXPECTED_CLASSES)
    assert label_names_of(dd["train"])[0] == "aeroplane" and label_names_of(dd["train"])[-1] == "tvmonitor"


def test_difficult_ignore_is_the_default(tmp_path):
    make_voc(tmp_path)
    dd = load_voc(tmp_path)
    assert list(dd) == ["trainval", "test"]
    assert dd["trainval"].num_rows == 3 and dd["test"].num_rows == 1
    tv = dd["trainval"]
    assert list(tv.column_names) == ["image", "labels", "label_ids", "ignore_mask", "image_id"]
    assert rows(tv, "image_id") == ["000001", "000002", "000003"]
    assert rows(tv, "labels") == [multi_hot("dog"), multi_hot("cat", "tvmonitor"), multi_hot("aeroplane")]
    assert rows(tv, "label_ids") == [[C["dog"]], [C["cat"], C["tvmonitor"]], [C["aeroplane"]]]
    # person (000001) and chair (000002) are only difficult -> ignored; cat also has a non-difficult object
    assert rows(tv, "ignore_mask") == [mask("person"), mask("chair"), mask()]
    assert rows(dd["test"], "labels") == [multi_hot("person")]
    assert rows(dd["test"], "ignore_mask") == [mask("bicycle")]


def test_difficult_positive(tmp_path):
    make_voc(tmp_path)
    tv = load_voc(tmp_path, splits="trainval", difficult="positive")["trainval"]
    assert "ignore_mask" not in tv.column_names
    assert rows(tv, "labels") == [
        multi_hot("dog", "person"),
        multi_hot("cat", "chair", "tvmonitor"),
        multi_hot("aeroplane"),
    ]
    assert rows(tv, "label_ids") == [
        [C["dog"], C["person"]],
        [C["cat"], C["chair"], C["tvmonitor"]],
        [C["aeroplane"]],
    ]


def test_difficult_negative(tmp_path):
    make_voc(tmp_path)
    tv = load_voc(tmp_path, splits=["trainval"], difficult="negative")["trainval"]
    assert "ignore_mask" not in tv.column_names
    assert rows(tv, "labels") == [multi_hot("dog"), multi_hot("cat", "tvmonitor"), multi_hot("aeroplane")]


def test_invalid_difficult_mode(tmp_path):
    make_voc(tmp_path)
    with pytest.raises(ValueError, match="difficult.*'drop'"):
        load_voc(tmp_path, difficult="drop")


@pytest.mark.parametrize("sub", ["", "VOCdevkit", "VOCdevkit/VOC2007"])
def test_root_variants(tmp_path, sub):
    make_voc(tmp_path)
    dd = load_voc(tmp_path / sub if sub else tmp_path, splits=("train", "val"))
    assert rows(dd["train"], "image_id") == ["000001"]
    assert rows(dd["val"], "image_id") == ["000002", "000003"]
    stored = dd["train"].cast_column("image", datasets.Image(decode=False))[0]["image"]
    assert stored["bytes"] is None  # lazy: only the path is stored
    assert stored["path"].endswith("VOCdevkit/VOC2007/JPEGImages/000001.jpg")


def test_root_without_voc_raises(tmp_path):
    with pytest.raises(FileNotFoundError, match="no PASCAL VOC 2007 folder"):
        load_voc(tmp_path)


def test_voc2012_and_its_test_split(tmp_path):
    make_voc(tmp_path, year="2012", splits={"trainval": ["000001", "000002"]})
    dd = load_voc(tmp_path / "VOCdevkit", year="2012", splits=("trainval",))
    assert dd["trainval"].num_rows == 2
    with pytest.raises(ValueError, match="VOC2012 test has no public annotations"):
        load_voc(tmp_path, year="2012", splits=("trainval", "test"))
    with pytest.raises(ValueError, match="year"):
        load_voc(tmp_path, year="2010")
    # root pointing at VOC2012 while asking for 2007
    with pytest.raises(ValueError, match="VOC2012 folder but year='2007'"):
        load_voc(tmp_path / "VOCdevkit" / "VOC2012", year="2007", splits=("trainval",))


def test_missing_split_file_is_named(tmp_path):
    voc = make_voc(tmp_path, splits={"trainval": ["000001"]})
    with pytest.raises(FileNotFoundError, match=r"ImageSets/Main/test\.txt.*VOCtest_06-Nov-2007"):
        load_voc(tmp_path)
    assert (voc / "ImageSets" / "Main" / "trainval.txt").exists()


def test_missing_annotation_is_named(tmp_path):
    voc = make_voc(tmp_path)
    (voc / "Annotations" / "000002.xml").unlink()
    with pytest.raises(FileNotFoundError, match=r"Annotations/000002\.xml"):
        load_voc(tmp_path, splits="val")


def test_unknown_class_names_the_xml_and_the_name(tmp_path):
    voc = make_voc(tmp_path)
    write_text(voc / "Annotations" / "000003.xml", voc_xml([("aeroplane", 0), ("spaceship", 0)]))
    with pytest.raises(ValueError, match=r"000003\.xml: unknown class name 'spaceship'"):
        load_voc(tmp_path, splits="trainval")


def test_invalid_xml_is_named(tmp_path):
    voc = make_voc(tmp_path)
    write_text(voc / "Annotations" / "000001.xml", "<annotation><object>")
    with pytest.raises(ValueError, match=r"000001\.xml: invalid XML"):
        load_voc(tmp_path, splits="train")


def test_corrupt_image_raises_or_is_skipped(tmp_path, caplog):
    voc = make_voc(tmp_path)
    bad = write_corrupt(voc / "JPEGImages" / "000002.jpg")
    with pytest.raises(ValueError, match=str(bad)):
        load_voc(tmp_path, splits="trainval")
    with caplog.at_level("WARNING", logger="mlic_hf.data.common"):
        tv = load_voc(tmp_path, splits="trainval", on_bad_image="skip")["trainval"]
    assert rows(tv, "image_id") == ["000001", "000003"]
    assert rows(tv, "ignore_mask") == [mask("person"), mask()]
    assert skipped_images_of(tv) == 1 and "skipped_images=1" in tv.info.description
    assert f"skipped 1 of 3 images (first: {bad})" in caplog.text


def test_image_id_leaving_the_voc_folder_is_refused_naming_file_line_and_id(tmp_path):
    voc = make_voc(tmp_path)
    split_file = write_text(voc / "ImageSets" / "Main" / "val.txt", "000002\n\n../../../secret\n")
    write_text(tmp_path / "secret.xml", voc_xml([("dog", 0)]))  # a real annotation outside: it must not be read
    expected = rf"{split_file}, line 3: image id '(\.\./){{3}}secret', path '(\.\./){{3}}secret\.xml' leads outside"
    with pytest.raises(ValueError, match=expected):
        load_voc(tmp_path, splits="val")
