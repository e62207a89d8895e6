"""Shared column contract, split builder and bad-image policy of the ``mlic_hf.data`` loaders.

Every loader in :mod:`mlic_hf.data` returns a :class:`datasets.DatasetDict` (one :class:`datasets.Dataset` per split)
with these columns, in this order:

================  ==========================================================  ======================================
column            feature                                                     meaning
================  ==========================================================  ======================================
``image``         ``datasets.Image()``                                        the image, stored as a file *path*
                                                                              (decoded lazily to a ``PIL.Image``)
``labels``        ``datasets.Sequence(datasets.Value("float32"), length=C)``  multi-hot targets (1.0 = positive)
``label_ids``     ``datasets.Sequence(datasets.ClassLabel(names=...))``       sorted indices of the positive classes;
                                                                              the class names live in this feature
``ignore_mask``   ``datasets.Sequence(datasets.Value("bool"), length=C)``     only for datasets with such a notion
                                                                              (VOC "difficult"): True = leave this
                                                                              label out of the loss and the metrics
``image_id``      ``datasets.Value("string")``                                the dataset's image id or the file stem
================  ==========================================================  ======================================

``label_names_of(dataset)`` reads the class names back (``features["label_ids"].feature.names``).

Bad images: every loader takes ``on_bad_image`` (``"error"`` or ``"skip"``) and ``verify_images``. With
``verify_images=True`` each image is opened with PIL, checked with ``verify()`` (structure: e.g. PNG chunk CRCs) and
then fully decoded with ``load()``, the decode training does: ``verify()`` alone reads only the header of a JPEG, so a
truncated JPEG would pass it and fail later, mid-training. Cost, measured on the project's 2-core machine with other
jobs running (8 threads, warm page cache, 2,000 640×480 JPEGs of 59 kB): 0.06-0.13 s for ``verify()`` alone,
0.94-1.3 s with the decode (0.5-0.65 ms per image; 64×48 images: 0.06 s -> 0.2 s), so about 1-1.5 min for COCO
2014's 123k images, more when the files must first be read from disk. With ``verify_images=False`` only the file's
existence is checked (one ``stat`` per image: fast even for COCO or NUS-WIDE); a bad file then surfaces when it is
decoded, named by :func:`mlic_hf.data.transforms.decode_image` once decoding is deferred to the transforms
(:func:`~mlic_hf.data.transforms.defer_image_decoding`). A missing or unreadable image raises (``FileNotFoundError``
/ ``ValueError`` naming the file) with ``on_bad_image="error"``, and is dropped with ``on_bad_image="skip"``: one
warning ``skipped N of M images (first: <path>)`` is logged per split and the count is recorded in the split's
``info.description`` as ``skipped_images=N`` (read it back with :func:`skipped_images_of`). A split left without any
image (an empty annotation file, every image dropped or skipped) is an error naming the split and its annotation
file, never an empty dataset.

Image paths taken from annotation files (``file_name`` fields, image lists, image ids) go through :func:`join_inside`:
``/`` and ``\\`` both separate components, a leading separator is dropped (an absolute path is read as a relative
one), and a path whose ``..`` components lead out of the dataset folder is refused with an error naming the
annotation file, the line (or entry) and the value. The check is lexical: symlinks are not resolved, so a link inside
the dataset folder that points elsewhere is the user's own choice and is followed.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Literal, Union

import datasets
from datasets.utils.tqdm import tqdm
from PIL import Image

logger = logging.getLogger(__name__)

OnBadImage = Literal["error", "skip"]
PathLike = Union[str, "os.PathLike[str]"]

ON_BAD_IMAGE_CHOICES = ("error", "skip")
COLUMNS = ("image", "labels", "label_ids", "ignore_mask", "image_id")

# Show progress bars only for scans that take noticeable time.
_PROGRESS_MIN_ITEMS = 2000
_SKIPPED_RE = re.compile(r"skipped_images=(\d+)")


# ----------------------------------------------------------------------------------------------------------------------
# Features
# ----------------------------------------------------------------------------------------------------------------------


def _check_label_names(label_names: Sequence[str]) -> list[str]:
    names = list(label_names)
    if not names:
        raise ValueError("label_names: expected at least one class name, got an empty list")
    seen: dict[str, int] = {}
    for index, name in enumerate(names):
        if not isinstance(name, str) or not name:
            raise ValueError(f"label_names[{index}]: expected a non-empty string, got {name!r}")
        if name in seen:
            raise ValueError(f"label_names: duplicate class name {name!r} at positions {seen[name]} and {index}")
        seen[name] = index
    return names


def make_features(label_names: Sequence[str], with_ignore_mask: bool = False) -> datasets.Features:
    """The :class:`datasets.Features` of an ``mlic_hf`` split (see the module docstring for the column contract).

    Args:
        label_names: the ``C`` class names, in label-index order (unique, non-empty strings).
        with_ignore_mask: add the ``ignore_mask`` column (``Sequence(Value("bool"), length=C)``).
    """
    names = _check_label_names(label_names)
    num_labels = len(names)
    columns: dict[str, Any] = {
        "image": datasets.Image(),
        "labels": datasets.Sequence(datasets.Value("float32"), length=num_labels),
        "label_ids": datasets.Sequence(datasets.ClassLabel(names=names)),
    }
    if with_ignore_mask:
        columns["ignore_mask"] = datasets.Sequence(datasets.Value("bool"), length=num_labels)
    columns["image_id"] = datasets.Value("string")
    return datasets.Features(columns)


def label_names_of(dataset_or_dict: Any) -> list[str]:
    """The class names of a loader's output, read from ``features["label_ids"].feature.names``.

    Accepts a :class:`datasets.Dataset`, a :class:`datasets.DatasetDict` (all splits must agree), an
    :class:`datasets.IterableDataset` or a :class:`datasets.Features` / plain mapping of features.
    """
    if isinstance(dataset_or_dict, (datasets.DatasetDict, datasets.IterableDatasetDict)):
        if not dataset_or_dict:
            raise ValueError("label_names_of: the DatasetDict has no splits")
        per_split = {split: label_names_of(ds) for split, ds in dataset_or_dict.items()}
        first_split, first = next(iter(per_split.items()))
        for split, names in per_split.items():
            if names != first:
                raise ValueError(
                    f"label_names_of: splits {first_split!r} and {split!r} have different label names "
                    f"({len(first)} vs {len(names)} classes)"
                )
        return first
    features = getattr(dataset_or_dict, "features", dataset_or_dict)
    if not isinstance(features, Mapping) or "label_ids" not in features:
        raise ValueError(
            "label_names_of: expected a dataset (or features) with a 'label_ids' column of "
            f"Sequence(ClassLabel(names=...)), got {type(dataset_or_dict).__name__} without it"
        )
    inner = getattr(features["label_ids"], "feature", None)
    if not isinstance(inner, datasets.ClassLabel):
        raise ValueError(
            f"label_names_of: 'label_ids' must be a Sequence(ClassLabel(names=...)), got {features['label_ids']!r}"
        )
    return list(inner.names)


def skipped_images_of(dataset: datasets.Dataset) -> int:
    """The number of bad images dropped when the split was built (``skipped_images=N`` in ``info.description``)."""
    match = _SKIPPED_RE.search(dataset.info.description or "")
    return int(match.group(1)) if match else 0


# ----------------------------------------------------------------------------------------------------------------------
# Bad-image policy
# ----------------------------------------------------------------------------------------------------------------------


def check_on_bad_image(on_bad_image: str) -> None:
    """Raise a ``ValueError`` unless ``on_bad_image`` is ``"error"`` or ``"skip"``."""
    if on_bad_image not in ON_BAD_IMAGE_CHOICES:
        raise ValueError(f"on_bad_image: expected one of {ON_BAD_IMAGE_CHOICES}, got {on_bad_image!r}")


def _probe_exists(path: str) -> Exception | None:
    if os.path.isfile(path):
        return None
    if os.path.exists(path):
        return ValueError(f"image path is not a regular file: {path}")
    return FileNotFoundError(f"image file not found: {path}")


def _probe_image(path: str) -> Exception | None:
    try:
        with Image.open(path) as image:
            image.verify()  # structure checks that decoding skips (PNG chunk CRCs); leaves the image unusable
        with Image.open(path) as image:
            image.load()  # the pixels: a truncated JPEG passes verify() and fails only when decoded
    except FileNotFoundError:
        return FileNotFoundError(f"image file not found: {path}")
    except Exception as exc:  # PIL raises many types (UnidentifiedImageError, SyntaxError, struct.error, ...)
        return ValueError(f"cannot read image file {path}: {type(exc).__name__}: {exc}")
    return None


def check_images(
    paths: Iterable[PathLike],
    on_bad_image: OnBadImage = "error",
    *,
    verify: bool = True,
    num_workers: int = 8,
    desc: str = "Checking images",
) -> list[str]:
    """Check that images exist (and, with ``verify=True``, that PIL can decode them); return those kept.

    Args:
        paths: image files, in dataset order.
        on_bad_image: ``"error"`` raises at the first missing (``FileNotFoundError``) or unreadable (``ValueError``)
            file, naming it; ``"skip"`` drops bad files and logs one warning ``skipped N of M images (first: <path>)``.
        verify: open each file with ``PIL.Image.open``, call ``verify()`` and decode the pixels with ``load()``
            (catches truncated files; cost in the module docstring). ``False`` only checks that the file exists.
        num_workers: threads used for ``verify=True`` (PIL releases the GIL while decoding; ``1`` = sequential).
        desc: progress-bar label (a bar is shown for long scans only).

    Returns:
        The kept paths (as strings), in input order.
    """
    check_on_bad_image(on_bad_image)
    path_list = [os.fspath(path) for path in paths]
    probe = _probe_image if verify else _probe_exists
    kept: list[str] = []
    bad: list[tuple[str, Exception]] = []
    disable = True if len(path_list) < _PROGRESS_MIN_ITEMS else None
    use_threads = verify and num_workers > 1 and len(path_list) > 64
    executor = ThreadPoolExecutor(max_workers=num_workers) if use_threads else None
    try:
        results: Iterator[Exception | None] = (
            executor.map(probe, path_list) if executor is not None else map(probe, path_list)
        )
        for path, error in tqdm(zip(path_list, results), total=len(path_list), desc=desc, unit="img", disable=disable):
            if error is None:
                kept.append(path)
            elif on_bad_image == "error":
                raise error
            else:
                bad.append((path, error))
    finally:
        if executor is not None:
            executor.shutdown(wait=False, cancel_futures=True)
    if bad:
        logger.warning("skipped %d of %d images (first: %s)", len(bad), len(path_list), bad[0][0])
        logger.debug("first skipped image: %s", bad[0][1])
    return kept


# ----------------------------------------------------------------------------------------------------------------------
# Split builder
# ----------------------------------------------------------------------------------------------------------------------


def _check_indices(values: Any, field: str, image_id: str, num_labels: int) -> list[int]:
    if values is None:
        return []
    if isinstance(values, (str, bytes)) or not isinstance(values, Iterable):
        raise ValueError(f"record {image_id!r}: {field!r} must be a list of class indices, got {values!r}")
    out = set()
    for value in values:
        if isinstance(value, bool) or not isinstance(value, int) and not hasattr(value, "__index__"):
            raise ValueError(f"record {image_id!r}: {field!r} contains {value!r}, expected an integer class index")
        index = int(value)
        if not 0 <= index < num_labels:
            raise ValueError(
                f"record {image_id!r}: {field!r} contains class index {index}, expected 0 <= index < {num_labels}"
            )
        out.add(index)
    return sorted(out)


def build_split(
    records: Iterable[Mapping[str, Any]],
    label_names: Sequence[str],
    with_ignore_mask: bool = False,
    *,
    on_bad_image: OnBadImage = "error",
    verify_images: bool = True,
    split: str | None = None,
    description: str = "",
    source: str = "",
) -> datasets.Dataset:
    """Build one split with the ``mlic_hf`` column contract from plain records.

    Args:
        records: dicts with

            - ``"path"``: the image file (stored as a path; the pixels are decoded lazily),
            - ``"label_ids"``: indices of the positive classes (any iterable of ints in ``[0, C)``),
            - ``"ignore_ids"`` (optional): indices of the classes to ignore for this image (``ignore_mask`` True);
              must not overlap ``label_ids``,
            - ``"image_id"`` (optional): defaults to the file stem.
        label_names: the ``C`` class names in index order.
        with_ignore_mask: add the ``ignore_mask`` column. Records with ``ignore_ids`` require it.
        on_bad_image, verify_images: see :func:`check_images` (``verify_images=False`` only checks existence).
        split: the split name stored on the dataset.
        description: text stored in ``info.description``; ``skipped_images=N`` is appended.
        source: where the records come from (e.g. the annotation file), named by the errors for an empty split.

    Raises:
        ValueError: no records, or every image skipped as bad: an empty split would only fail later, far from its
            cause (or, worse, evaluate to meaningless metrics).
    """
    check_on_bad_image(on_bad_image)
    names = _check_label_names(label_names)
    num_labels = len(names)
    features = make_features(names, with_ignore_mask)

    rows: list[tuple[str, list[int], list[int], str]] = []
    for position, record in enumerate(records):
        if "path" not in record:
            raise ValueError(f"record #{position}: missing field 'path' (the image file)")
        path = os.fspath(record["path"])
        image_id = record.get("image_id")
        image_id = str(image_id) if image_id is not None else os.path.splitext(os.path.basename(path))[0]
        positives = _check_indices(record.get("label_ids"), "label_ids", image_id, num_labels)
        ignored = _check_indices(record.get("ignore_ids"), "ignore_ids", image_id, num_labels)
        if ignored and not with_ignore_mask:
            raise ValueError(f"record {image_id!r}: has 'ignore_ids' but the split is built without an ignore_mask")
        overlap = set(positives) & set(ignored)
        if overlap:
            raise ValueError(
                f"record {image_id!r}: classes {[names[i] for i in sorted(overlap)]} are both positive and ignored"
            )
        rows.append((path, positives, ignored, image_id))
    where = (f"split {split!r}" if split else "split") + (f" ({source})" if source else "")
    if not rows:
        raise ValueError(f"{where}: has no images")

    kept_paths = set(
        check_images(
            [row[0] for row in rows],
            on_bad_image,
            verify=verify_images,
            desc=f"Checking {split or 'split'} images",
        )
    )
    kept_rows = [row for row in rows if row[0] in kept_paths]
    skipped = len(rows) - len(kept_rows)
    if not kept_rows:
        probe = _probe_image if verify_images else _probe_exists
        raise ValueError(f"{where}: all {len(rows)} images are missing or unreadable (first: {probe(rows[0][0])})")

    columns: dict[str, list[Any]] = {"image": [], "labels": [], "label_ids": []}
    if with_ignore_mask:
        columns["ignore_mask"] = []
    columns["image_id"] = []
    for path, positives, ignored, image_id in kept_rows:
        multi_hot = [0.0] * num_labels
        for index in positives:
            multi_hot[index] = 1.0
        columns["image"].append(path)
        columns["labels"].append(multi_hot)
        columns["label_ids"].append(positives)
        if with_ignore_mask:
            mask = [False] * num_labels
            for index in ignored:
                mask[index] = True
            columns["ignore_mask"].append(mask)
        columns["image_id"].append(image_id)

    text = f"{description.strip()} skipped_images={skipped}".strip()
    info = datasets.DatasetInfo(description=text, features=features)
    dataset = datasets.Dataset.from_dict(columns, features=features, info=info, split=split)
    logger.info("built split %r: %d images, %d classes, %d skipped", split, len(dataset), num_labels, skipped)
    return dataset


# ----------------------------------------------------------------------------------------------------------------------
# Small file helpers shared by the loaders
# ----------------------------------------------------------------------------------------------------------------------


def normalize_splits(
    splits: str | Sequence[str], allowed: Sequence[str] | None = None, what: str = "splits"
) -> list[str]:
    """``splits`` as a non-empty list of unique split names (a single string is one split)."""
    names = [splits] if isinstance(splits, str) else list(splits)
    if not names:
        raise ValueError(f"{what}: expected at least one split name, got {splits!r}")
    for name in names:
        if not isinstance(name, str) or not name:
            raise ValueError(f"{what}: split names must be non-empty strings, got {name!r}")
        if allowed is not None and name not in allowed:
            raise ValueError(f"{what}: unknown split {name!r}, expected one of {tuple(allowed)}")
    if len(set(names)) != len(names):
        raise ValueError(f"{what}: duplicate split names in {names!r}")
    return names


def join_inside(base: str, relative: str, where: str, root: str | None = None) -> str:
    """``relative``, an image path read from an annotation file, joined to ``base`` and normalised lexically.

    ``/`` and ``\\`` both separate components and empty components are dropped, so an absolute path is read relative
    to ``base``. Raises ``ValueError`` naming ``where`` (the file, line and field it comes from, e.g.
    ``"<file>, line 3: file_name"``) and the value when its ``..`` components lead out of ``root`` (default
    ``base``): annotation files must not make a loader read files elsewhere on the machine. Symlinks are not
    resolved (a link inside ``root`` is the user's own choice), and the normalised path is returned, so the file
    opened is the one checked (``link/..`` does not go through the link).
    """
    if not isinstance(relative, str) or not relative.strip():
        raise ValueError(f"{where}: expected a non-empty image path, got {relative!r}")
    parts = [part for part in relative.replace("\\", "/").split("/") if part]
    path = os.path.normpath(os.path.join(base, *parts))
    boundary = os.path.normpath(root if root is not None else base)
    if os.path.commonpath([boundary, path]) != boundary:
        raise ValueError(
            f"{where} {relative!r} leads outside the dataset folder {boundary} (image paths must stay inside it)"
        )
    return path


def require_file(path: PathLike, what: str, hint: str = "") -> str:
    """Return ``path`` as a string, or raise ``FileNotFoundError`` naming it (and what it should contain)."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{what} not found: {path}" + (f" ({hint})" if hint else ""))
    return path


def read_text_lines(path: PathLike, *, skip_blank: bool = True) -> list[str]:
    """The lines of a UTF-8 text file (a BOM is tolerated), stripped of surrounding whitespace and ``\\r``."""
    with open(path, encoding="utf-8-sig") as handle:
        lines = [line.strip() for line in handle]
    return [line for line in lines if line] if skip_blank else lines


def read_label_names_file(path: PathLike) -> list[str]:
    """Class names from a text file, one per line (blank lines ignored, duplicates rejected with their lines)."""
    names: list[str] = []
    first_line: dict[str, int] = {}
    with open(path, encoding="utf-8-sig") as handle:
        for line_number, line in enumerate(handle, start=1):
            name = line.strip()
            if not name:
                continue
            if name in first_line:
                raise ValueError(
                    f"{os.fspath(path)}, line {line_number}: duplicate class name {name!r} "
                    f"(first on line {first_line[name]})"
                )
            first_line[name] = line_number
            names.append(name)
    if not names:
        raise ValueError(f"{os.fspath(path)}: expected one class name per line, the file has none")
    return names


def read_jsonl(path: PathLike) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield ``(line_number, object)`` for each non-blank line of a JSON-lines file.

    Raises ``ValueError`` naming the file and line for invalid JSON or a line that is not a JSON object.
    """
    path = os.fspath(path)
    with open(path, encoding="utf-8-sig") as handle:
        for line_number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(
                    f"{path}, line {line_number}: invalid JSON ({exc.msg} at column {exc.colno})"
                ) from None
            if not isinstance(obj, dict):
                raise ValueError(f"{path}, line {line_number}: expected a JSON object, got {type(obj).__name__}")
            yield line_number, obj


def load_json(path: PathLike) -> Any:
    """``json.load`` with an error that names the file."""
    path = os.fspath(path)
    try:
        with open(path, encoding="utf-8-sig") as handle:
            return json.load(handle)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: invalid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno})") from None
