"""The label groups the ML-VPT authors published for MS-COCO and NUS-WIDE (5 CO and 5 DC groups each).

ML-VPT's public code (github.com/yu-gi-oh-leilei/ML-VPT, commit 4fd40e48) reads its groups from
``data/aux_data/<dataset>/<dataset>_coocurrence5_0.json`` (CO) and ``..._cluster5_0.json`` (DC)
(``code/MLIC-MoE/models/builder_network.py:22-68``): a list of 5 objects, the ``t``-th mapping the label indices of
group ``t`` (in the order of ``DATA.classnames`` of the dataset's configs, e.g.
``config/vpt-group-moe-g5e3/vit_base_patch16_224/coco14_224.yaml``) to their rank in the group. Here the same facts
are stored by label *name*, so they apply to a label set in any order (mlic_hf's COCO loader orders the categories by
id, its NUS-WIDE loader by ``Concepts81.txt``; both give these names).

Why ship them: the DC groups cannot be recomputed reliably. As measured on COCO's training labels (not available
offline here), many DC partitions have nearly the same normalised-cut value, and neither
:func:`~.grouping.compute_label_groups` nor CPSD's own partition code recovers the published COCO DC groups (adjusted
Rand index at most 0.38 over 30 seeds); the CO groups are recomputed exactly (adjusted Rand index 1.0 on COCO and
NUS-WIDE). ``MultiLabelVPTConfig(label_groups_preset="coco")`` (or
``"nus-wide"``, or ``"auto"``: whichever matches the labels) uses these groups, so the paper's grouping is reproduced
exactly. Group ``t`` here is the ``t``-th object of the authors' file.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["COCO_LABELS", "NUS_WIDE_LABELS", "PUBLISHED_GROUPS", "PublishedGroups", "match_published_groups",
           "published_label_groups"]

#: The 80 MS-COCO categories in the authors' order (``DATA.classnames`` of their ``coco14_224.yaml``; category-id
#: order, as mlic_hf's COCO loader).
COCO_LABELS = ['person', 'bicycle', 'car', 'motorcycle', 'airplane', 'bus', 'train', 'truck', 'boat', 'traffic light',
               'fire hydrant', 'stop sign', 'parking meter', 'bench', 'bird', 'cat', 'dog', 'horse', 'sheep', 'cow',
               'elephant', 'bear', 'zebra', 'giraffe', 'backpack', 'umbrella', 'handbag', 'tie', 'suitcase',
               'frisbee', 'skis', 'snowboard', 'sports ball', 'kite', 'baseball bat', 'baseball glove', 'skateboard',
               'surfboard', 'tennis racket', 'bottle', 'wine glass', 'cup', 'fork', 'knife', 'spoon', 'bowl',
               'banana', 'apple', 'sandwich', 'orange', 'broccoli', 'carrot', 'hot dog', 'pizza', 'donut', 'cake',
               'chair', 'couch', 'potted plant', 'bed', 'dining table', 'toilet', 'tv', 'laptop', 'mouse', 'remote',
               'keyboard', 'cell phone', 'microwave', 'oven', 'toaster', 'sink', 'refrigerator', 'book', 'clock',
               'vase', 'scissors', 'teddy bear', 'hair drier', 'toothbrush']

#: The 81 NUS-WIDE concepts in the authors' order (``DATA.classnames`` of their ``nus_224.yaml``; the order of
#: ``Concepts81.txt`` and of the ground-truth columns, as mlic_hf's NUS-WIDE loader).
NUS_WIDE_LABELS = ['airport', 'animal', 'beach', 'bear', 'birds', 'boats', 'book', 'bridge', 'buildings', 'cars',
                   'castle', 'cat', 'cityscape', 'clouds', 'computer', 'coral', 'cow', 'dancing', 'dog', 'earthquake',
                   'elk', 'fire', 'fish', 'flags', 'flowers', 'food', 'fox', 'frost', 'garden', 'glacier', 'grass',
                   'harbor', 'horses', 'house', 'lake', 'leaf', 'map', 'military', 'moon', 'mountain', 'nighttime',
                   'ocean', 'person', 'plane', 'plants', 'police', 'protest', 'railroad', 'rainbow', 'reflection',
                   'road', 'rocks', 'running', 'sand', 'sign', 'sky', 'snow', 'soccer', 'sports', 'statue', 'street',
                   'sun', 'sunset', 'surf', 'swimmers', 'tattoo', 'temple', 'tiger', 'tower', 'town', 'toy', 'train',
                   'tree', 'valley', 'vehicle', 'water', 'waterfall', 'wedding', 'whales', 'window', 'zebra']

_COCO_CO = [  # data/aux_data/coco/coco_coocurrence5_0.json, group t = the file's t-th object
    ['sports ball', 'baseball bat', 'baseball glove', 'tennis racket'],
    ['bottle', 'wine glass', 'cup', 'fork', 'knife', 'spoon', 'bowl', 'banana', 'apple', 'sandwich', 'orange',
     'broccoli', 'carrot', 'hot dog', 'pizza', 'donut', 'cake', 'dining table', 'microwave', 'oven', 'toaster',
     'refrigerator'],
    ['bird', 'sheep', 'cow', 'elephant', 'bear', 'zebra', 'giraffe'],
    ['cat', 'dog', 'chair', 'couch', 'potted plant', 'bed', 'toilet', 'tv', 'laptop', 'mouse', 'remote', 'keyboard',
     'cell phone', 'sink', 'book', 'clock', 'vase', 'scissors', 'teddy bear', 'hair drier', 'toothbrush'],
    ['person', 'bicycle', 'car', 'motorcycle', 'airplane', 'bus', 'train', 'truck', 'boat', 'traffic light',
     'fire hydrant', 'stop sign', 'parking meter', 'bench', 'horse', 'backpack', 'umbrella', 'handbag', 'tie',
     'suitcase', 'frisbee', 'skis', 'snowboard', 'kite', 'skateboard', 'surfboard'],
]

_COCO_DC = [  # data/aux_data/coco/coco_cluster5_0.json, group t = the file's t-th object
    ['bicycle', 'car', 'truck', 'bench', 'umbrella', 'tie', 'baseball bat', 'banana', 'sandwich', 'carrot', 'hot dog',
     'pizza', 'donut', 'cake', 'tv', 'laptop', 'remote', 'microwave', 'toaster', 'hair drier', 'toothbrush'],
    ['airplane', 'train', 'boat', 'stop sign', 'parking meter', 'bird', 'cat', 'dog', 'cow', 'elephant', 'bear',
     'zebra', 'backpack', 'handbag', 'snowboard', 'bottle', 'cup', 'spoon', 'apple', 'orange', 'broccoli',
     'potted plant', 'cell phone', 'sink', 'book', 'clock', 'vase', 'scissors', 'teddy bear'],
    ['motorcycle', 'bus', 'traffic light', 'fire hydrant', 'horse', 'sheep', 'giraffe', 'suitcase', 'frisbee', 'skis',
     'sports ball', 'kite', 'skateboard', 'surfboard', 'wine glass', 'chair', 'couch', 'toilet', 'mouse',
     'refrigerator'],
    ['person'],
    ['baseball glove', 'tennis racket', 'fork', 'knife', 'bowl', 'bed', 'dining table', 'keyboard', 'oven'],
]

_NUS_WIDE_CO = [  # data/aux_data/nus/nus_coocurrence5_0.json, group t = the file's t-th object
    ['airport', 'buildings', 'cars', 'cityscape', 'earthquake', 'fire', 'flags', 'military', 'nighttime', 'plane',
     'police', 'protest', 'railroad', 'road', 'sign', 'street', 'tower', 'town', 'train', 'vehicle', 'window'],
    ['beach', 'boats', 'bridge', 'castle', 'clouds', 'frost', 'garden', 'glacier', 'grass', 'harbor', 'house', 'lake',
     'moon', 'mountain', 'ocean', 'plants', 'rainbow', 'reflection', 'rocks', 'sand', 'sky', 'snow', 'statue', 'sun',
     'sunset', 'temple', 'tree', 'valley', 'water', 'waterfall', 'wedding'],
    ['coral', 'fish', 'map', 'whales'],
    ['dancing', 'person', 'running', 'soccer', 'sports', 'surf', 'swimmers', 'tattoo'],
    ['animal', 'bear', 'birds', 'book', 'cat', 'computer', 'cow', 'dog', 'elk', 'flowers', 'food', 'fox', 'horses',
     'leaf', 'tiger', 'toy', 'zebra'],
]

_NUS_WIDE_DC = [  # data/aux_data/nus/nus_cluster5_0.json, group t = the file's t-th object
    ['cat', 'clouds', 'fish', 'grass', 'leaf', 'map', 'moon', 'mountain', 'police', 'reflection', 'rocks', 'running',
     'sand', 'sky', 'snow', 'sunset', 'surf', 'tattoo', 'vehicle'],
    ['beach', 'book', 'computer', 'coral', 'cow', 'dancing', 'earthquake', 'flags', 'fox', 'frost', 'glacier',
     'nighttime', 'ocean', 'plane', 'plants', 'railroad', 'rainbow', 'road', 'soccer', 'street', 'swimmers', 'temple',
     'town', 'toy', 'wedding', 'zebra'],
    ['bear', 'birds', 'bridge', 'buildings', 'dog', 'elk', 'flowers', 'food', 'horses', 'house', 'military', 'person',
     'sun', 'tiger', 'tower', 'tree', 'valley', 'waterfall', 'whales', 'window'],
    ['airport', 'boats', 'cars', 'castle', 'cityscape', 'fire', 'garden', 'harbor', 'lake', 'protest', 'sign',
     'sports', 'statue', 'train'],
    ['animal', 'water'],
]


@dataclass(frozen=True)
class PublishedGroups:
    """One dataset's published groups: ``co[t]`` / ``dc[t]`` are the label names of CO / DC group ``t``."""

    name: str
    labels: tuple[str, ...]
    co: tuple[tuple[str, ...], ...]
    dc: tuple[tuple[str, ...], ...]
    source: str

    @property
    def num_groups(self) -> int:
        return len(self.co)

    def assignment(self, kind: str) -> dict[str, int]:
        """``{label name: group}`` of ``kind`` (``"co"`` or ``"dc"``)."""
        groups = {"co": self.co, "dc": self.dc}[kind]
        return {label: group for group, members in enumerate(groups) for label in members}


def _published(name: str, labels: list[str], co: list[list[str]], dc: list[list[str]], folder: str,
               prefix: str) -> PublishedGroups:
    source = (f"ML-VPT authors' published groups (github.com/yu-gi-oh-leilei/ML-VPT data/aux_data/{folder}/"
              f"{prefix}_coocurrence5_0.json, {prefix}_cluster5_0.json)")
    return PublishedGroups(name, tuple(labels), tuple(map(tuple, co)), tuple(map(tuple, dc)), source)


#: ``label_groups_preset`` name -> the published groups.
PUBLISHED_GROUPS: dict[str, PublishedGroups] = {
    "coco": _published("coco", COCO_LABELS, _COCO_CO, _COCO_DC, "coco", "coco"),
    "nus-wide": _published("nus-wide", NUS_WIDE_LABELS, _NUS_WIDE_CO, _NUS_WIDE_DC, "nus", "nus"),
}


def match_published_groups(label_names: Sequence[str]) -> str | None:
    """The name of the published groups whose labels are exactly ``label_names`` (in any order), or ``None``."""
    names = set(map(str, label_names))
    if len(names) != len(label_names):
        return None
    return next((key for key, groups in PUBLISHED_GROUPS.items() if names == set(groups.labels)), None)


def published_label_groups(name: str, label_names: Sequence[str]) -> tuple[list[int], list[int]]:
    """``(co_groups, dc_groups)``: the group of every label of ``label_names`` (matched by name, in that order) in
    the published groups ``name``. A ``ValueError`` names the labels that are not in them, or missing."""
    if name not in PUBLISHED_GROUPS:
        raise ValueError(f"no published label groups {name!r}; available: {sorted(PUBLISHED_GROUPS)}")
    groups = PUBLISHED_GROUPS[name]
    label_names = [str(label) for label in label_names]
    unknown = [label for label in label_names if label not in groups.labels]
    missing = sorted(set(groups.labels) - set(label_names))
    if unknown or missing or len(set(label_names)) != len(label_names):
        raise ValueError(
            f"the published {name!r} groups cover {len(groups.labels)} labels ({', '.join(groups.labels[:4])}, ...) "
            f"and need exactly those label names: "
            + "; ".join(part for part in (f"not among them: {unknown[:8]}" if unknown else "",
                                          f"missing: {missing[:8]}" if missing else "",
                                          "duplicate names" if len(set(label_names)) != len(label_names) else "")
                        if part))
    co, dc = groups.assignment("co"), groups.assignment("dc")
    return [co[label] for label in label_names], [dc[label] for label in label_names]
