"""Model cards for mlic_hf checkpoints: [`write_model_card`] renders ``model_card_template.md`` (next to this module)
into the checkpoint's ``README.md`` and draws its plots.

A checkpoint directory written by training holds ``config.json``, ``model.safetensors`` and
``preprocessor_config.json`` (from ``save_pretrained``), and usually ``mlic_run.json`` (run settings and test metrics)
and ``test_predictions.npz`` (test-set probabilities ``scores`` and labels ``labels``, ``-1`` = ignored).

Writing a card: [`check_checkpoint_dir`]; read the config, the run file and the predictions (`_load_checkpoint`);
per-class APs (`_card_per_class_aps`); plots (`_write_plots`); Hub metadata with the ``model-index``
(`_card_data`); the template's variables for the model, the run and the metrics (`_model_context`, `_run_context`,
`_metrics_context`); rendering (`_render`). Method specifics come only from the config (``config.method_info``,
``config.model_card_sections()``), so this module knows no method.

Everything from the checkpoint (label names, dataset names and ids, metric keys, config and run values, the folder
name) is untrusted: [`escape_markdown`] / `_md_code` escape it where it enters the card's Markdown, the YAML metadata
is written by a YAML dumper (``ModelCardData.to_yaml``), and fenced blocks are built so that their content cannot
close them.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import logging
import math
import os
import re
import unicodedata
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..file_utils import atomic_write_text

from .plots import plot_per_class_ap, plot_precision_recall


if TYPE_CHECKING:
    from huggingface_hub import EvalResult, ModelCardData

    from ..configuration_utils import MLICConfig

logger = logging.getLogger(__name__)

__all__ = [
    "MODEL_CARD_TEMPLATE",
    "PER_CLASS_AP_PLOT",
    "PLOTS_DIR",
    "PRECISION_RECALL_PLOT",
    "PREDICTIONS_FILE",
    "REQUIRED_FILES",
    "RUN_FILE",
    "check_checkpoint_dir",
    "escape_markdown",
    "find_model_card_template",
    "write_model_card",
]

MODEL_CARD_TEMPLATE = "model_card_template.md"
"""File name of the model-card template, looked up by [`find_model_card_template`]."""

RUN_FILE = "mlic_run.json"
PREDICTIONS_FILE = "test_predictions.npz"
PLOTS_DIR = "plots"
PER_CLASS_AP_PLOT = f"{PLOTS_DIR}/per_class_ap.png"
PRECISION_RECALL_PLOT = f"{PLOTS_DIR}/precision_recall.png"
#: Drawn by the training script (it needs the model and a test image), shown by the card when present.
LABEL_MAPS_PLOT = f"{PLOTS_DIR}/label_maps.png"

REQUIRED_FILES: tuple[str, ...] = ("config.json", "model.safetensors")
"""Files a checkpoint directory must contain (a sharded ``model.safetensors.index.json`` replaces the weights file)."""

_TEMPLATE_DIR = Path(__file__).resolve().parent
"""Where [`find_model_card_template`] looks: this package, whose ``*.md`` files are package data (``pyproject.toml``)."""

# Headline metrics: key -> (model-index metric type, model-index config, description).
_HEADLINE_METRICS: dict[str, tuple[str, str | None, str]] = {
    "mAP": ("map", "macro", "mean average precision over classes"),
    "CP": ("precision", "macro", "per-class precision, averaged over classes"),
    "CR": ("recall", "macro", "per-class recall, averaged over classes"),
    "CF1": ("f1", "macro", "harmonic mean of CP and CR"),
    "OP": ("precision", "micro", "overall precision, pooled over all labels"),
    "OR": ("recall", "micro", "overall recall, pooled over all labels"),
    "OF1": ("f1", "micro", "harmonic mean of OP and OR"),
}
# Order of the metrics in the model-index (what the Hub shows first).
_MODEL_INDEX_ORDER: tuple[str, ...] = ("mAP", "CF1", "OF1", "CP", "CR", "OP", "OR")

# Training settings shown first, with readable names; other keys of `training_args` follow in their own order.
_TRAINING_KEYS: dict[str, str] = {
    "num_train_epochs": "Epochs",
    "max_steps": "Max steps",
    "learning_rate": "Learning rate",
    "weight_decay": "Weight decay",
    "per_device_train_batch_size": "Batch size (per device)",
    "gradient_accumulation_steps": "Gradient accumulation steps",
    "optim": "Optimizer",
    "one_cycle": "One-cycle LR schedule",
    "one_cycle_pct_start": "One-cycle warm-up fraction",
    "ema_decay": "EMA decay",
    "ema_warmup": "EMA warm-up",
    "early_stopping_patience": "Early-stopping patience",
    "bf16": "bf16",
    "fp16": "fp16",
    "channels_last": "channels_last",
    "seed": "Seed",
}


# ---------------------------------------------------------------------------------------------------------------------
# Checkpoint inspection
# ---------------------------------------------------------------------------------------------------------------------


def check_checkpoint_dir(checkpoint_dir: str | os.PathLike) -> Path:
    """Checks that ``checkpoint_dir`` is a complete checkpoint (``config.json`` and ``model.safetensors``).

    Returns:
        `Path`: the directory.

    Raises:
        `FileNotFoundError`: naming the directory or the first missing file.
    """
    path = Path(checkpoint_dir)
    if not path.is_dir():
        raise FileNotFoundError(f"checkpoint directory {str(path)!r} does not exist (or is not a directory).")
    for name in REQUIRED_FILES:
        if (path / name).is_file():
            continue
        if name == "model.safetensors" and (path / "model.safetensors.index.json").is_file():
            continue  # sharded weights
        hint = (
            " Save the model with `model.save_pretrained(dir)` (safetensors); pickled `pytorch_model.bin` / `.pt` "
            "weights are not supported."
            if name == "model.safetensors"
            else " Save the model with `model.save_pretrained(dir)`."
        )
        raise FileNotFoundError(f"incomplete checkpoint {str(path)!r}: {name} is missing.{hint}")
    return path


def _load_config(checkpoint_dir: Path):
    import mlic_hf  # noqa: F401  (registers the mlic_hf model types with AutoConfig)
    from transformers import AutoConfig

    from ..configuration_utils import MLICConfig

    try:
        config = AutoConfig.from_pretrained(checkpoint_dir)
    except (ValueError, KeyError, OSError) as err:
        raise ValueError(f"cannot read the config of {str(checkpoint_dir)!r}: {err}") from err
    if not isinstance(config, MLICConfig):
        raise ValueError(
            f"{str(checkpoint_dir)!r} holds a {type(config).__name__} (model_type={config.model_type!r}), not an "
            "mlic_hf method config."
        )
    return config


def _read_run_file(checkpoint_dir: Path) -> dict[str, Any] | None:
    path = checkpoint_dir / RUN_FILE
    if not path.is_file():
        logger.info("%s has no %s: the model card will say that metrics are unavailable.", checkpoint_dir, RUN_FILE)
        return None
    try:
        run = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"{path} is not valid JSON: {err}") from err
    if not isinstance(run, dict):
        raise ValueError(f"{path} must hold a JSON object, got {type(run).__name__}.")
    return run


def _read_predictions(checkpoint_dir: Path, num_labels: int) -> tuple[np.ndarray, np.ndarray] | None:
    path = checkpoint_dir / PREDICTIONS_FILE
    if not path.is_file():
        return None
    with np.load(path, allow_pickle=False) as data:
        missing = [key for key in ("scores", "labels") if key not in data.files]
        if missing:
            raise ValueError(f"{path} must contain the arrays 'scores' and 'labels'; missing {missing}.")
        scores, labels = data["scores"], data["labels"]
    if scores.ndim != 2 or scores.shape != labels.shape:
        raise ValueError(
            f"{path}: 'scores' and 'labels' must both have shape (num_samples, num_labels), got {scores.shape} and "
            f"{labels.shape}."
        )
    if scores.shape[1] != num_labels:
        raise ValueError(f"{path}: 'scores' has {scores.shape[1]} columns but the model has {num_labels} labels.")
    return scores, labels


def _parameter_count(checkpoint_dir: Path) -> int | None:
    """Number of weights in ``model.safetensors``, read from the file header (no tensor is loaded)."""
    path = checkpoint_dir / "model.safetensors"
    if not path.is_file():
        return None
    try:
        with open(path, "rb") as handle:
            header_size = int.from_bytes(handle.read(8), "little")
            header = json.loads(handle.read(header_size))
    except (OSError, ValueError) as err:
        logger.warning("Could not read the safetensors header of %s: %s", path, err)
        return None
    return sum(math.prod(entry["shape"]) for key, entry in header.items() if key != "__metadata__")


@dataclasses.dataclass(frozen=True)
class _RunSummary:
    """What the card reports from ``mlic_run.json`` (all unknown / empty when the checkpoint has none)."""

    raw: dict[str, Any]  # the run file's contents ({} without one)
    source: str  # its path, for messages
    dataset_name: str | None  # mlic_hf's dataset name, e.g. "fashion_mosaic"
    dataset_ref: str | None  # the Hub dataset id, else the dataset name: card metadata and plot titles
    dataset_display: str  # Markdown: a link to the Hub dataset, the name as code, or "unknown"
    test_split: str
    threshold: Any
    test_metrics: dict[str, Any]  # keys without "test_"/"eval_"; headline values checked to be fractions
    metrics_available: bool  # at least one headline metric: else no metrics section, model-index or per-class APs


@dataclasses.dataclass(frozen=True)
class _Checkpoint:
    """Everything a card is made from."""

    path: Path
    config: MLICConfig
    label_names: list[str]  # in class-index order
    run: _RunSummary
    predictions: tuple[np.ndarray, np.ndarray] | None  # test (scores, labels), from test_predictions.npz


def _summarize_run(run: dict[str, Any], source: str, config: MLICConfig) -> _RunSummary:
    """The card's view of a run file (``{}`` if there is none); a method other than the config's is only warned about.

    Raises:
        `ValueError`: if a headline metric is not a fraction (e.g. stored in %).
    """
    if run.get("method") and str(run["method"]) not in (config.model_type, config.model_type.removeprefix("mlic-")):
        logger.warning("%s says method=%r but config.json has model_type=%r.", source, run["method"],
                       config.model_type)
    dataset_name = run.get("dataset")
    dataset_id = run.get("dataset_id")
    test_metrics = {
        _strip_prefix(str(key)): _check_fraction(str(key), value, source)
        if _strip_prefix(str(key)).split("_top")[0] in _HEADLINE_METRICS
        else value
        for key, value in (run.get("test_metrics") or {}).items()
        if isinstance(value, (int, float)) or value is None
    }
    return _RunSummary(
        raw=run,
        source=source,
        dataset_name=dataset_name,
        dataset_ref=str(dataset_id or dataset_name) if (dataset_id or dataset_name) else None,
        dataset_display=_dataset_display(dataset_id, dataset_name),
        test_split=str((run.get("splits") or {}).get("test") or "test"),
        threshold=(run.get("data_args") or {}).get("threshold", 0.5),
        test_metrics=test_metrics,
        metrics_available=any(key in test_metrics for key in _HEADLINE_METRICS),
    )


def _load_checkpoint(checkpoint_dir: Path) -> _Checkpoint:
    """Reads the config, the run file and the test predictions of a checked checkpoint directory."""
    config = _load_config(checkpoint_dir)
    run = _read_run_file(checkpoint_dir)
    label_names = [str(config.id2label[i]) for i in range(config.num_labels)]
    predictions = _read_predictions(checkpoint_dir, config.num_labels)
    run_summary = _summarize_run(run or {}, str(checkpoint_dir / RUN_FILE), config)
    return _Checkpoint(checkpoint_dir, config, label_names, run_summary, predictions)


# ---------------------------------------------------------------------------------------------------------------------
# Formatting helpers
# ---------------------------------------------------------------------------------------------------------------------


# Characters [`escape_markdown`] keeps as they are: none of them is Markdown, HTML or table syntax anywhere in a line
# (unicode letters and digits are kept too). Everything else becomes a numeric character reference, which CommonMark
# and HTML show as the character but never read as syntax.
_PLAIN_PUNCTUATION = frozenset(" ,-/")  # "/" opens nothing without ":" or "." (Hub ids read as typed)
# Values shown verbatim in a code span: no backtick (would end it), no `|` (would split a table cell), no `<`, `:` or
# `(`; anything else is shown in a <code> element with escaped text instead.
_CODE_SPAN_SAFE = re.compile(r"[A-Za-z0-9 _.,+\-=/\[\]{}\"']*")
# A Hub repository id (`name` or `namespace/name`): the only dataset ids the card links to.
_HUB_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]*(/[A-Za-z0-9][A-Za-z0-9_.\-]*)?")


def escape_markdown(value: Any) -> str:
    """Untrusted text (a label name, a dataset name, a metric key...) made inert for a model card's Markdown.

    Guarantees, for any input: the result is one line (whitespace runs become one space, control and format
    characters become U+FFFD) whose only ASCII characters are letters, digits, spaces, ``,``, ``-`` and ``/``; every other
    character is written as a numeric character reference (``&#60;`` for ``<``). So it cannot open an HTML tag or
    comment, a link, an image, an autolink (no ``:``, ``.`` or ``@``), emphasis, a code span, a heading or a list, nor
    split or end a table cell or row, wherever it is put in a line of Markdown text, a table cell or an HTML element's
    text. Renderers show the original text (the references are decoded); Markdown code spans and fenced blocks do not
    decode references, so this is not for them (see `_md_code`).
    """
    text = " ".join(str(value).split())
    out = []
    for char in text:
        if unicodedata.category(char).startswith("C"):
            char = "\ufffd"  # invisible or bidi-reordering characters could disguise the text
        if char in _PLAIN_PUNCTUATION or (char.isascii() and char.isalnum()) or (
                not char.isascii() and unicodedata.category(char)[0] in "LN"):
            out.append(char)
        else:
            out.append(f"&#{ord(char)};")
    return "".join(out)


def _md_code(value: Any) -> str:
    """Untrusted text shown as code: a Markdown code span when it is made of harmless characters
    (`_CODE_SPAN_SAFE`), else a ``<code>`` element around [`escape_markdown`] text; safe in text and table cells."""
    text = str(value)
    if text and _CODE_SPAN_SAFE.fullmatch(text):
        return f"`{text}`"
    return f"<code>{escape_markdown(text)}</code>"


def _number(value: Any) -> str:
    """A number as is (`_fmt`), anything else escaped ([`escape_markdown`]): e.g. a threshold from the run file."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return _fmt(value)
    return escape_markdown(_fmt(value))


def _md(value: Any) -> str:
    """A table cell built from escaped pieces: a last guard, so that no `|` or line break can change the table."""
    return str(value).replace("|", "&#124;").replace("\r", " ").replace("\n", " ")


def _fence(content: str, char: str = "`") -> str:
    """An opening/closing fence longer than any run of ``char`` in ``content``, which then cannot close it."""
    longest = max((len(run) for run in re.findall(f"{re.escape(char)}+", content)), default=0)
    return char * max(3, longest + 1)


def _html_safe_json(value: Any) -> str:
    """Indented JSON whose ``<``, ``>`` and ``&`` are ``\\u`` escapes (they only occur inside strings): the same
    data, and no HTML even for a renderer that would not treat the fenced block as code. No line of it starts with a
    backtick (strings keep their line breaks escaped), so it cannot close its fence."""
    text = json.dumps(value, indent=2, default=str)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _dataset_display(dataset_id: Any, dataset_name: Any) -> str:
    """The dataset as Markdown: a link to its Hub page only for a well-formed Hub id, else code, else "unknown"."""
    if dataset_id:
        if _HUB_ID.fullmatch(str(dataset_id)) and ".." not in str(dataset_id):
            return f"[{escape_markdown(dataset_id)}](https://huggingface.co/datasets/{dataset_id})"
        return _md_code(dataset_id)
    return _md_code(dataset_name) if dataset_name else "unknown"


def _repo_name(name: str) -> str:
    """``name`` (e.g. a local folder's name) as a valid Hub repository name, for the placeholder repo id of the card's
    usage snippet (a quote or backtick in it would break the Python code or its fenced block)."""
    cleaned = re.sub(r"-{2,}", "-", re.sub(r"[^A-Za-z0-9_.\-]+", "-", name)).replace("..", ".").strip(".-")
    return cleaned[:96] or "model"


def _percent(value: Any) -> str:
    if value is None:
        return "n/a"
    value = float(value)
    return "n/a" if not math.isfinite(value) else f"{100.0 * value:.2f}"


def _fmt(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, (list, tuple, dict)):
        return json.dumps(value)
    return str(value)


def _duration(seconds: Any) -> str | None:
    try:
        seconds = float(seconds)
    except (TypeError, ValueError):
        return None
    if not math.isfinite(seconds) or seconds <= 0:
        return None
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min {secs:02d} s"


def _check_fraction(name: str, value: Any, source: str) -> float | None:
    if value is None:
        return None
    try:
        value = float(value)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{source}: {name}={value!r} is not a number.") from err
    if math.isfinite(value) and not -1e-9 <= value <= 1.0 + 1e-9:
        raise ValueError(
            f"{source}: {name}={value} is not a fraction in [0, 1] (metric values must not be stored in %)."
        )
    return value


def _strip_prefix(key: str) -> str:
    for prefix in ("test_", "eval_"):
        if key.startswith(prefix):
            return key[len(prefix):]
    return key


# ---------------------------------------------------------------------------------------------------------------------
# Card contents
# ---------------------------------------------------------------------------------------------------------------------


def _image_size(config) -> int:
    """``config.image_size``, checked to be an integer: it is written into the card's Python snippet."""
    size = config.image_size
    if isinstance(size, bool) or not isinstance(size, int):
        raise ValueError(f"config.image_size must be an integer, got {size!r}.")
    return size


def _architecture_rows(config, checkpoint_dir: Path) -> list[tuple[str, str]]:
    from ..configuration_utils import MLICConfig

    size = _image_size(config)
    rows = [
        ("Model type", _md_code(config.model_type)),
        ("Backbone (timm)", _md_code(config.backbone)),
        ("Input resolution", f"{size}×{size}"),
        ("Number of labels", str(int(config.num_labels))),
    ]
    base_fields = {field.name for field in dataclasses.fields(MLICConfig)}
    for field in dataclasses.fields(config):
        if field.name not in base_fields:  # the method's own hyper-parameters
            value = getattr(config, field.name)
            if isinstance(value, (list, tuple)) and len(value) > 12:  # e.g. one entry per label: shown elsewhere
                rows.append((_md_code(field.name), f"{len(value)} values (in `config.json`)"))
            else:
                rows.append((_md_code(field.name), _md_code(_fmt(value))))
    num_parameters = _parameter_count(checkpoint_dir)
    if num_parameters is not None:
        rows.append(("Parameters", f"{num_parameters / 1e6:.2f} M"))
    return rows


def _loss_info(config) -> tuple[str, list[tuple[str, str]]]:
    """The loss's display name and its settings' rows, both from the loss registry (:mod:`mlic_hf.losses`)."""
    from ..losses import LOSSES

    rows = [("`loss`", _md_code(config.loss)), ("`loss_reduction`", _md_code(config.loss_reduction))]
    spec = LOSSES.get(config.loss)
    if spec is None:  # not registered in this process: no display name nor fields to show
        return escape_markdown(config.loss), rows
    # a missing field (a loss registered without a config dataclass field) means its default, as in training
    for field, param in spec.config_fields.items():
        rows.append((_md_code(field), _md_code(_fmt(getattr(config, field, spec.defaults[param])))))
    return spec.display_name, rows  # the registry's (code)


def _training_rows(run: Mapping[str, Any], dataset_display: str) -> list[tuple[str, str]]:
    splits = run.get("splits") or {}
    rows: list[tuple[str, str]] = [("Dataset", dataset_display)]
    for key, name in (("train", "Training split"), ("eval", "Model-selection split"), ("test", "Test split")):
        if splits.get(key):
            rows.append((name, _md_code(splits[key])))
    if run.get("num_train_samples") is not None:
        rows.append(("Training images", f"{int(run['num_train_samples']):,}"))
    if run.get("num_test_samples") is not None:
        rows.append(("Test images", f"{int(run['num_test_samples']):,}"))
    training_args = dict(run.get("training_args") or {})
    max_steps = training_args.get("max_steps")
    if isinstance(max_steps, (int, float)) and max_steps > 0:
        training_args.pop("num_train_epochs", None)  # overridden by max_steps
    else:
        training_args.pop("max_steps", None)  # -1 / None: unused
    for key, name in _TRAINING_KEYS.items():
        if key in training_args and training_args[key] is not None:
            rows.append((name, _md_code(_fmt(training_args.pop(key)))))
    for key, value in training_args.items():
        if value is not None:
            rows.append((_md_code(key), _md_code(_fmt(value))))
    if run.get("world_size") and int(run["world_size"]) > 1:
        rows.append(("Processes (data parallel)", str(int(run["world_size"]))))
    if "used_ema_weights" in run:
        rows.append(("Released weights", "EMA (exponential moving average)" if run["used_ema_weights"] else "raw"))
    runtime = _duration(run.get("train_runtime_s"))
    if runtime:
        rows.append(("Training time", runtime))
    return [(name, _md(value)) for name, value in rows]


def _metric_rows(test_metrics: Mapping[str, float | None]) -> tuple[list[str], list[list[str]], list[tuple[str, Any]]]:
    """(top-k suffixes, headline rows, other rows) of the metrics table."""
    # only well-formed `<metric>_top<k>` keys make columns (a column header is built from the key)
    suffixes = sorted(
        {key.split("_", 1)[1] for key in test_metrics
         if re.fullmatch(r"[A-Za-z0-9]+_top[0-9]+", key) and key.split("_", 1)[0] in _HEADLINE_METRICS},
        key=lambda s: int(s[3:]),
    )
    if any(key.endswith("_calibrated") and key.split("_", 1)[0] in _HEADLINE_METRICS for key in test_metrics):
        suffixes.append("calibrated")  # at the per-class thresholds chosen on the validation split
    rows = []
    for key, (_, _, description) in _HEADLINE_METRICS.items():
        if key not in test_metrics and not any(f"{key}_{s}" in test_metrics for s in suffixes):
            continue
        values = [_percent(test_metrics.get(key))]
        values += [_percent(test_metrics[f"{key}_{s}"]) if f"{key}_{s}" in test_metrics else "–" for s in suffixes]
        rows.append([key, description, *values])
    shown = set(_HEADLINE_METRICS) | {f"{k}_{s}" for k in _HEADLINE_METRICS for s in suffixes}
    other = [(key, value) for key, value in test_metrics.items() if key not in shown]
    return suffixes, rows, other


def _per_class_aps(
    label_names: list[str], per_class_ap: Mapping[str, Any] | None, source: str
) -> dict[str, float | None] | None:
    """``{label: AP}`` in class-index order (labels unknown to the config last), or ``None``."""
    if not per_class_ap:
        return None
    per_class_ap = {str(name): _check_fraction(f"AP of {name!r}", ap, source) for name, ap in per_class_ap.items()}
    unknown = [name for name in per_class_ap if name not in label_names]
    missing = [name for name in label_names if name not in per_class_ap]
    if unknown or missing:
        logger.warning(
            "The per-class APs of %s do not match the model's labels (unknown: %s, missing: %s).",
            source,
            unknown[:5],
            missing[:5],
        )
    return {name: per_class_ap.get(name) for name in label_names + unknown}


def _card_per_class_aps(checkpoint: _Checkpoint) -> dict[str, float | None] | None:
    """The per-class APs of the card: the run file's, else computed from the test predictions; only with headline
    metrics (they are shown in the metrics section)."""
    if not checkpoint.run.metrics_available:
        return None
    per_class_ap = checkpoint.run.raw.get("per_class_AP")
    if not per_class_ap and checkpoint.predictions is not None:
        from ..metrics import average_precision

        scores, labels = checkpoint.predictions
        ignore = labels < 0
        ap = average_precision(scores, np.where(ignore, 0, labels), ignore_mask=ignore)
        per_class_ap = {name: float(value) for name, value in zip(checkpoint.label_names, ap)}
    return _per_class_aps(checkpoint.label_names, per_class_ap, checkpoint.run.source)


def _write_plots(checkpoint: _Checkpoint, per_class_aps: dict[str, float | None] | None) -> dict[str, str | None]:
    """Draws the plots the data allows into ``<checkpoint>/plots/`` and removes stale ones (so the card and the
    uploaded files agree).

    Returns:
        `dict`: ``{"per_class_ap": ..., "precision_recall": ..., "label_maps": ...}``, each a path relative to the
        checkpoint or None (``label_maps`` is the training script's example, shown when the file exists).
    """
    run, directory = checkpoint.run, checkpoint.path
    plots: dict[str, str | None] = {"per_class_ap": None, "precision_recall": None}
    if per_class_aps:
        plot_per_class_ap(per_class_aps, directory / PER_CLASS_AP_PLOT, map_value=run.test_metrics.get("mAP"),
                          title=f"Per-class AP on {run.dataset_ref or 'the test set'} ({run.test_split})")
        plots["per_class_ap"] = PER_CLASS_AP_PLOT
    if checkpoint.predictions is not None:
        scores, labels = checkpoint.predictions
        if np.any(labels == 1):
            plot_precision_recall(scores, labels, directory / PRECISION_RECALL_PLOT,
                                  label_names=checkpoint.label_names,
                                  title=f"Precision-recall on {run.dataset_ref or 'the test set'} ({run.test_split})")
            plots["precision_recall"] = PRECISION_RECALL_PLOT
        else:
            logger.warning("%s has no positive label: no precision-recall plot.", directory / PREDICTIONS_FILE)
    plots["label_maps"] = LABEL_MAPS_PLOT if (directory / LABEL_MAPS_PLOT).is_file() else None
    for key, relative in (("per_class_ap", PER_CLASS_AP_PLOT), ("precision_recall", PRECISION_RECALL_PLOT)):
        stale = directory / relative
        if plots[key] is None and stale.is_file():
            logger.info("Removing the stale plot %s (its data is not available any more).", stale)
            stale.unlink()
    return plots


def _eval_results(run: _RunSummary) -> list[EvalResult] | None:
    """The ``model-index`` results: the headline test metrics in %, in [`_MODEL_INDEX_ORDER`] (``None``: none)."""
    from huggingface_hub import EvalResult

    if not run.metrics_available:
        return None
    return [
        EvalResult(
            task_type="image-classification",
            task_name="Multi-label image classification",
            dataset_type=run.dataset_ref or "unknown",
            dataset_name=run.dataset_ref or "unknown",
            dataset_split=run.test_split,
            metric_type=_HEADLINE_METRICS[key][0],
            metric_config=_HEADLINE_METRICS[key][1],
            metric_name=key,
            metric_value=round(100.0 * float(run.test_metrics[key]), 2),
        )
        for key in _MODEL_INDEX_ORDER
        if run.test_metrics.get(key) is not None and math.isfinite(float(run.test_metrics[key]))
    ] or None


def _card_data(checkpoint: _Checkpoint, model_name: str) -> ModelCardData:
    """The card's YAML metadata (library, task, tags, dataset, metrics, ``model-index``)."""
    from huggingface_hub import ModelCardData

    dataset_ref = checkpoint.run.dataset_ref
    return ModelCardData(
        library_name="mlic_hf",
        pipeline_tag="image-classification",
        tags=["multi-label-image-classification", "mlic_hf", checkpoint.config.model_type],
        datasets=[dataset_ref] if dataset_ref else None,
        metrics=["map", "f1", "precision", "recall"],
        model_name=model_name,
        eval_results=_eval_results(checkpoint.run),
    )


def _model_context(checkpoint: _Checkpoint) -> dict[str, Any]:
    """Template variables about the model: the method and paper, the architecture and loss tables, the labels and the
    method's own sections."""
    config = checkpoint.config
    # The method's description is trusted Markdown from the config *class* (code); config.json can set an instance
    # attribute of the same name, which is ignored.
    method_info = {"name": escape_markdown(config.model_type), "paper_title": None, "paper_authors": None,
                   "paper_url": None, "summary": None, "citation": None,
                   **(getattr(type(config), "method_info", None) or {})}
    loss_name, loss_rows = _loss_info(config)
    return {
        "method": method_info,
        "model_type": _md_code(config.model_type),
        "architecture_rows": _architecture_rows(config, checkpoint.path),
        "loss_name": loss_name,
        "loss_rows": loss_rows,
        "label_names": [escape_markdown(name) for name in checkpoint.label_names],
        "extra_sections": _extra_sections(config),
        "num_labels": int(config.num_labels),
        "image_size": _image_size(config),
        "citation_fence": _fence(str(method_info.get("citation") or "")),
    }


def _extra_sections(config) -> list[tuple[str, str]]:
    """The method's own sections (``config.model_card_sections()``), made from a copy of the config whose label names
    are escaped ([`escape_markdown`]); their titles are escaped and their bodies, Markdown text and tables by
    contract, lose any HTML, link / image syntax and autolink (a body may quote other config strings)."""
    if not hasattr(config, "model_card_sections"):
        return []
    escaped = copy.copy(config)
    escaped.id2label = {index: escape_markdown(name) for index, name in config.id2label.items()}
    sections = []
    for title, body in escaped.model_card_sections():
        body = str(body).replace("<", "&lt;").replace(">", "&gt;").replace("![", "&#33;[").replace("](", "]&#40;")
        # nor bare autolinks (GitHub-flavoured Markdown links "https://...", "www...." and e-mail addresses)
        body = body.replace("://", "&#58;//").replace("www.", "www&#46;").replace("@", "&#64;")
        sections.append((escape_markdown(title), body))
    return sections


def _run_context(run: _RunSummary) -> dict[str, Any]:
    """Template variables about the training run: dataset, splits, the training table and the run's arguments."""
    raw = run.raw
    arguments = {key: raw[key] for key in ("model_args", "data_args", "training_args") if raw.get(key)}
    return {
        "dataset_display": run.dataset_display,
        "dataset_name": escape_markdown(run.dataset_ref) if run.dataset_ref else None,
        "is_fashion_mosaic": run.dataset_name == "fashion_mosaic",
        "test_split": _md_code(run.test_split),
        "training_rows": _training_rows(raw, run.dataset_display) if raw else None,
        "run_arguments": _html_safe_json(arguments) if raw else None,
        "used_ema_weights": bool(raw.get("used_ema_weights")),
    }


def _metrics_context(run: _RunSummary, per_class_aps: dict[str, float | None] | None) -> dict[str, Any]:
    """Template variables of the metrics section: the headline table (with top-k columns), other metrics, the
    threshold and the per-class AP table."""
    suffixes, metric_rows, other_metric_rows = _metric_rows(run.test_metrics) if run.metrics_available else ([], [], [])
    return {
        "metrics_available": run.metrics_available,
        "metric_suffixes": suffixes,
        "metric_columns": [escape_markdown(suffix.replace("top", "Top-")) for suffix in suffixes],
        "metric_rows": [[_md(cell) for cell in row] for row in metric_rows],  # our names and numbers
        "other_metric_rows": [(escape_markdown(k), _number(v)) for k, v in other_metric_rows],
        "threshold": _number(run.threshold),
        "per_class_rows": [(i, escape_markdown(name), _percent(ap))
                           for i, (name, ap) in enumerate(per_class_aps.items())]
        if per_class_aps
        else None,
    }


# ---------------------------------------------------------------------------------------------------------------------
# Template
# ---------------------------------------------------------------------------------------------------------------------


def find_model_card_template(name: str = MODEL_CARD_TEMPLATE) -> Path:
    """Path of a model-card template: ``mlic_hf/hub/<name>``, shipped as package data (in a wheel too).

    Raises:
        `FileNotFoundError`: naming the searched path.
    """
    path = _TEMPLATE_DIR / name
    if not path.is_file():
        raise FileNotFoundError(
            f"model-card template {name!r} not found; looked in: {path}. Reinstall mlic_hf with its data files (the "
            "template must be packaged as mlic_hf/hub/*.md)."
        )
    return path


def _render(template_path: Path, **context: Any) -> str:
    try:
        import jinja2
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError("writing model cards needs jinja2: `pip install jinja2`.") from err
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(template_path.parent)),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,
    )
    return environment.get_template(template_path.name).render(**context)


def _validate_repo_id(repo_id: str) -> None:
    from huggingface_hub.utils import validate_repo_id

    if not isinstance(repo_id, str) or repo_id.count("/") != 1:
        raise ValueError(f"repo_id must look like 'user_or_org/model_name', got {repo_id!r}.")
    validate_repo_id(repo_id)


def write_model_card(checkpoint_dir: str | os.PathLike, repo_id: str | None = None) -> Path:
    """Writes ``README.md`` (the Hub model card) and the plots of a trained checkpoint.

    The card is rendered from ``mlic_hf/hub/model_card_template.md`` with:

    - YAML metadata: ``library_name: mlic_hf``, ``pipeline_tag: image-classification``, tags, dataset, metrics and a
      ``model-index`` with the test mAP, CF1, OF1, CP, CR, OP and OR in % (from ``mlic_run.json``);
    - the method (``config.method_info``: name, summary, paper, citation), the architecture and loss from the config,
      the training settings, the metrics and per-class AP tables, the plots, a usage snippet and the limitations.

    Without ``mlic_run.json`` the card says that metrics are unavailable (no ``model-index``). The plots are written to
    ``plots/per_class_ap.png`` (if per-class APs are known) and ``plots/precision_recall.png`` (if
    ``test_predictions.npz`` exists); stale copies of plots that can no longer be drawn are removed.

    Args:
        checkpoint_dir (`str` or `os.PathLike`):
            Directory written by ``save_pretrained`` (``config.json`` and ``model.safetensors`` required).
        repo_id (`str`, *optional*):
            Hub repository id (``"user/name"``) used in the title and the usage snippet; defaults to a
            ``"your-username/<directory name>"`` placeholder.

    Returns:
        `Path`: the path of ``README.md``.

    Raises:
        `FileNotFoundError`: if the checkpoint is incomplete or the template cannot be found.
        `ValueError`: if the config, ``mlic_run.json`` or ``test_predictions.npz`` is inconsistent (e.g. metrics stored
        in % instead of fractions, predictions with the wrong number of labels).
    """
    from huggingface_hub import ModelCard

    checkpoint_dir = check_checkpoint_dir(checkpoint_dir)
    if repo_id is not None:
        _validate_repo_id(repo_id)
    template_path = find_model_card_template()
    checkpoint = _load_checkpoint(checkpoint_dir)
    per_class_aps = _card_per_class_aps(checkpoint)
    plots = _write_plots(checkpoint, per_class_aps)
    # a local folder's name is untrusted text (the repo id is validated): the placeholder repo id is made valid
    model_name = repo_id.split("/")[-1] if repo_id else checkpoint_dir.resolve().name
    card_data = _card_data(checkpoint, model_name)
    content = _render(
        template_path,
        card_data=card_data.to_yaml(),  # a YAML dumper: values cannot add keys
        model_name=escape_markdown(model_name),
        repo_id=repo_id or f"your-username/{_repo_name(model_name)}",
        plots=plots,
        **_model_context(checkpoint),
        **_run_context(checkpoint.run),
        **_metrics_context(checkpoint.run, per_class_aps),
    )
    card = ModelCard(content)  # parses (and so checks) the YAML header
    readme = checkpoint_dir / "README.md"
    atomic_write_text(readme, str(card))  # a card killed mid-write must not replace a good README.md
    logger.info("Wrote the model card %s", readme)
    return readme
