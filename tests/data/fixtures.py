"""Tiny on-disk dataset trees in the official layouts, built under pytest's ``tmp_path``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

VOC_CLASSES = (
    "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor",
)  # fmt: skip


def write_image(path: Path, color: tuple[int, int, int] = (200, 30, 30), size: tuple[int, int] = (6, 4)) -> Path:
    """A small real image; the format follows the suffix (.jpg -> JPEG, .png -> PNG)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, color).save(path)
    return path


def write_corrupt(path: Path) -> Path:
    """A file with an image name that PIL cannot identify."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"this is not an image at all")
    return path


def write_truncated_jpeg(path: Path) -> Path:
    """A real JPEG cut in half: its header is intact (``Image.open`` + ``verify()`` pass), its pixels are not."""
    path.parent.mkdir(parents=True, exist_ok=True)
    noise = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)  # mostly entropy-coded data
    Image.fromarray(noise).save(path, format="JPEG")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def write_text(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def write_jsonl(path: Path, rows: list) -> Path:
    return write_text(path, "".join((row if isinstance(row, str) else json.dumps(row)) + "\n" for row in rows))


# ----------------------------------------------------------------------------------------------------------------------
# PASCAL VOC
# ----------------------------------------------------------------------------------------------------------------------


def voc_xml(objects: list[tuple[str, int | None]]) -> str:
    """An annotation with ``(name, difficult)`` objects; ``difficult=None`` omits the ``<difficult>`` element."""
    parts = ["<annotation><folder>VOC2007</folder><size><width>6</width><height>4</height></size>"]
    for name, difficult in objects:
        diff = "" if difficult is None else f"<difficult>{difficult}</difficult>"
        parts.append(
            f"<object><name>{name}</name><pose>Unspecified</pose><truncated>0</truncated>{diff}"
            "<bndbox><xmin>1</xmin><ymin>1</ymin><xmax>3</xmax><ymax>3</ymax></bndbox></object>"
        )
    parts.append("</annotation>")
    return "\n".join(parts)


# image id -> objects; see test_voc.py for the expected labels
VOC_ANNOTATIONS = {
    "000001": [("dog", 0), ("person", 1)],  # person only difficult
    "000002": [("cat", 1), ("cat", 0), ("chair", 1), ("tvmonitor", 0)],  # cat also non-difficult; chair difficult
    "000003": [("aeroplane", None), ("aeroplane", None)],  # no <difficult> element = 0
    "000004": [("person", 0), ("bicycle", 1)],
}
VOC_SPLITS = {
    "train": ["000001"],
    "val": ["000002", "000003"],
    "trainval": ["000001", "000002", "000003"],
    "test": ["000004"],
}


def make_voc(root: Path, year: str = "2007", annotations=None, splits=None) -> Path:
    """``root/VOCdevkit/VOC<year>/{Annotations,ImageSets/Main,JPEGImages}``; returns the ``VOC<year>`` folder."""
    voc = root / "VOCdevkit" / f"VOC{year}"
    annotations = VOC_ANNOTATIONS if annotations is None else annotations
    splits = VOC_SPLITS if splits is None else splits
    for position, (image_id, objects) in enumerate(annotations.items()):
        write_text(voc / "Annotations" / f"{image_id}.xml", voc_xml(objects))
        write_image(voc / "JPEGImages" / f"{image_id}.jpg", color=(10 * position, 100, 50))
    for split, ids in splits.items():
        write_text(voc / "ImageSets" / "Main" / f"{split}.txt", "".join(f"{i}\n" for i in ids))
    return voc


# ----------------------------------------------------------------------------------------------------------------------
# MS-COCO
# ----------------------------------------------------------------------------------------------------------------------

# listed out of id order on purpose; id order is person (1), car (3), toothbrush (90)
COCO_CATEGORIES = [
    {"supercategory": "indoor", "id": 90, "name": "toothbrush"},
    {"supercategory": "person", "id": 1, "name": "person"},
    {"supercategory": "vehicle", "id": 3, "name": "car"},
]


def coco_instances(images: list[tuple[int, str]], annotations: list[tuple[int, int, int]], categories=None) -> dict:
    """``images``: ``(id, file_name)``; ``annotations``: ``(image_id, category_id, iscrowd)``."""
    return {
        "info": {"description": "tiny"},
        "images": [{"id": i, "file_name": f, "width": 6, "height": 4} for i, f in images],
        "annotations": [
            {"id": n, "image_id": i, "category_id": c, "iscrowd": crowd, "bbox": [0, 0, 1, 1], "area": 1.0}
            for n, (i, c, crowd) in enumerate(annotations)
        ],
        "categories": COCO_CATEGORIES if categories is None else categories,
    }


def make_coco(root: Path, year: str = "2014", val_under_images: bool = True) -> Path:
    """train: 3 images (one without annotations); val: 2 images under ``images/val<year>/`` (one empty)."""
    train = [(10, f"COCO_train{year}_000000000010.jpg"), (20, f"COCO_train{year}_000000000020.jpg"),
             (30, f"COCO_train{year}_000000000030.jpg")]  # fmt: skip
    train_ann = [(10, 1, 0), (10, 3, 1), (10, 1, 0), (20, 90, 0)]  # 10: person + crowd car, 20: toothbrush, 30: none
    val = [(7, f"COCO_val{year}_000000000007.jpg"), (5, f"COCO_val{year}_000000000005.jpg")]
    val_ann = [(5, 3, 0)]  # 7 has no annotation
    write_text(root / "annotations" / f"instances_train{year}.json", json.dumps(coco_instances(train, train_ann)))
    write_text(root / "annotations" / f"instances_val{year}.json", json.dumps(coco_instances(val, val_ann)))
    for _, name in train:
        write_image(root / f"train{year}" / name)
    val_dir = root / "images" / f"val{year}" if val_under_images else root / f"val{year}"
    for _, name in val:
        write_image(val_dir / name)
    return root


# ----------------------------------------------------------------------------------------------------------------------
# NUS-WIDE
# ----------------------------------------------------------------------------------------------------------------------

NUS_CONCEPTS = ["animal", "sky", "water"]
NUS_TRAIN = [
    # (image-list line, labels per concept)
    ("actor\\0001_2124494179.jpg", (1, 0, 1)),
    ("beach\\0002_1234.jpg", (0, 0, 0)),
    ("sky/0003_5678.jpg", (0, 1, 0)),
]
NUS_TEST = [("C:\\ImageData\\Flickr\\zebra\\0004_999.jpg", (1, 1, 0))]


def make_nus_wide(root: Path, concepts_in_subdir: bool = False) -> Path:
    concepts_file = root / "ConceptsList" / "Concepts81.txt" if concepts_in_subdir else root / "Concepts81.txt"
    write_text(concepts_file, "\r\n".join(NUS_CONCEPTS) + "\r\n")  # Windows line ends, as in the release
    for tag, rows in (("Train", NUS_TRAIN), ("Test", NUS_TEST)):
        write_text(root / "ImageList" / f"{tag}Imagelist.txt", "".join(line + "\r\n" for line, _ in rows))
        for c, concept in enumerate(NUS_CONCEPTS):
            values = "".join(f"{labels[c]}\r\n" for _, labels in rows)
            write_text(root / "Groundtruth" / "TrainTestLabels" / f"Labels_{concept}_{tag}.txt", values)
        for line, _ in rows:
            parts = line.replace("\\", "/").split("/")
            write_image(root / "Flickr" / parts[-2] / parts[-1])
    return root


# ----------------------------------------------------------------------------------------------------------------------
# Visual Genome
# ----------------------------------------------------------------------------------------------------------------------

VG_NAMES = ["man", "shirt", "tree", "sky"]


def make_vg_jsonl(root: Path) -> Path:
    write_text(root / "vg4_labels.txt", "\n".join(VG_NAMES) + "\n")
    write_jsonl(
        root / "train.jsonl",
        [
            {"file_name": "2345.jpg", "labels": ["man", "shirt"]},
            {"file_name": "sub/2346.jpg", "label_ids": [3, 2]},
            {"file_name": "2347.png", "labels": [], "image_id": "custom-7"},
        ],
    )
    write_jsonl(root / "test.jsonl", ["", {"file_name": "2400.jpg", "label_ids": [1]}])
    for name in ("2345.jpg", "sub/2346.jpg", "2347.png", "2400.jpg"):
        write_image(root / "images" / name)
    return root


def make_vg_ssgrl(root: Path, num_labels: int = 4, with_names: bool = False) -> Path:
    write_text(root / f"train_list_{num_labels}.txt", "11.jpg\n12.jpg\n")
    write_text(root / f"test_list_{num_labels}.txt", "13.jpg\n")
    index = {"11.jpg": [0, 2], "12.jpg": [3], "13.jpg": [1, 0]}
    write_text(root / f"vg_category_{num_labels}_labels_index.json", json.dumps(index))
    if with_names:
        write_text(root / f"vg{num_labels}_labels.txt", "\n".join(VG_NAMES) + "\n")
    write_image(root / "VG_100K" / "11.jpg")
    write_image(root / "VG_100K" / "12.jpg")
    write_image(root / "VG_100K_2" / "13.jpg")
    return root


def make_vg_pat(root: Path) -> Path:
    categories = {"man": ["man", "men"], "shirt": ["shirt"], "tree": ["tree", "trees"], "sky": ["sky"]}
    write_text(root / "vg4.json", json.dumps(categories))
    np.save(root / "formatted_train_images.npy", np.array(["VG_100K/21.jpg", "VG_100K/22.jpg"]))
    np.save(root / "formatted_train_labels.npy", np.array([[1.0, 0, 0, 1], [0, 1, 1, 0]]))
    np.save(root / "formatted_val_images.npy", np.array(["VG_100K/23.jpg"]))
    np.save(root / "formatted_val_labels.npy", np.array([[0.0, 0, 1, 0]]))
    for name in ("21.jpg", "22.jpg", "23.jpg"):
        write_image(root / "VG_100K" / name)
    return root


# ----------------------------------------------------------------------------------------------------------------------
# Image folder
# ----------------------------------------------------------------------------------------------------------------------


def make_folder(root: Path, with_labels_txt: bool = False) -> Path:
    write_jsonl(
        root / "train" / "metadata.jsonl",
        [
            {"file_name": "img1.jpg", "labels": ["dog", "cat"]},
            {"file_name": "nested/img2.png", "labels": ["bird"], "extra": "ignored"},
        ],
    )
    write_jsonl(root / "test" / "metadata.jsonl", [{"file_name": "img3.jpg", "labels": ["zebra"]}])
    (root / "notasplit").mkdir(parents=True)  # a folder without metadata is not a split
    for path in ("train/img1.jpg", "train/nested/img2.png", "test/img3.jpg"):
        write_image(root / path)
    if with_labels_txt:
        write_text(root / "labels.txt", "zebra\ndog\ncat\nbird\nfish\n")
    return root


def label_split(tmp_path: Path):
    """A 4-image, 3-label split in the mlic_hf column format with an ``ignore_mask``; the image paths do not exist,
    so decoding an image would fail (label readers must not decode)."""
    import datasets

    from mlic_hf.data.common import make_features

    names = ["cat", "dog", "sofa"]
    positives = [[0, 1], [2], [], [0, 2]]
    ignored = [[2], [], [0], []]
    multi_hot = [[1.0 if k in p else 0.0 for k in range(3)] for p in positives]
    mask = [[k in i for k in range(3)] for i in ignored]
    return datasets.Dataset.from_dict(
        {
            "image": [str(tmp_path / f"missing{n}.jpg") for n in range(4)],
            "labels": multi_hot,
            "label_ids": positives,
            "ignore_mask": mask,
            "image_id": [f"img{n}" for n in range(4)],
        },
        features=make_features(names, with_ignore_mask=True),
    )
